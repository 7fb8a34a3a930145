package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// Every line the real binary writes, its own and exporter-toolkit's, has
// the same keys in the same order, the time in UTC under ts, one set of
// level names and file:line callers, in both log formats. The process runs
// in a time zone east of UTC so that a local time stamp would show.
func TestLogLinesShareOneDialect(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/share/zoneinfo/Asia/Kolkata"); err != nil {
		t.Skip("no time zone data (tzdata) to run the exporter outside UTC")
	}
	logfmtLine := regexp.MustCompile(`^level=(debug|info|warn|error) ts=(\S+) caller=([\w.-]+\.go:\d+) msg=`)
	caller := regexp.MustCompile(`^[\w.-]+\.go:\d+$`)
	levelName := regexp.MustCompile(`^(debug|info|warn|error)$`)
	for _, format := range []string{"logfmt", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			addr := testutil.FreeAddr(t)
			cmd := exec.Command(binary, "--web.listen-address="+addr, "--log.format="+format)
			cmd.Env = append(os.Environ(), "TZ=Asia/Kolkata")
			e := launch(t, cmd, addr)
			e.waitServing(t)
			e.stop(t)

			sources := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSpace(e.stderr.String()), "\n") {
				var lvl, ts, call, msg string
				if format == "logfmt" {
					m := logfmtLine.FindStringSubmatch(line)
					if m == nil {
						t.Errorf("not level=, ts=, caller=, msg= in that order: %s", line)
						continue
					}
					lvl, ts, call, msg = m[1], m[2], m[3], line[len(m[0]):]
				} else {
					var fields map[string]any
					if err := json.Unmarshal([]byte(line), &fields); err != nil {
						t.Errorf("not JSON: %s", line)
						continue
					}
					if _, ok := fields["time"]; ok {
						t.Errorf("a time key beside ts: %s", line)
					}
					lvl, _ = fields["level"].(string)
					ts, _ = fields["ts"].(string)
					call, _ = fields["caller"].(string)
					msg, _ = fields["msg"].(string)
					if !levelName.MatchString(lvl) || !caller.MatchString(call) {
						t.Errorf("level %q, caller %q: %s", lvl, call, line)
					}
				}
				if when, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || time.Since(when) > time.Minute {
					t.Errorf("ts %q is not a recent RFC 3339 time in UTC: %s", ts, line)
				}
				if strings.Contains(msg, "Listening on") {
					sources["exporter-toolkit"] = true
				}
				if strings.Contains(msg, "starting tcpstate_exporter") {
					sources["tcpstate_exporter"] = true
				}
			}
			if !sources["exporter-toolkit"] || !sources["tcpstate_exporter"] {
				t.Errorf("want lines from both tcpstate_exporter and exporter-toolkit, found %v:\n%s", sources, e.stderr)
			}
		})
	}
}
