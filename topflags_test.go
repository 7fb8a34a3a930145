package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestTopRefusesWhatItWouldIgnore: a flag that would do nothing is an
// error naming what it needs, with exit 2.
func TestTopRefusesWhatItWouldIgnore(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--count=3"}, "--count needs --watch"},
		{[]string{"--interval=5s"}, "--interval needs --watch"},
	} {
		stdout, stderr, code := runPiped(t, append([]string{"top", "--no-exporter", "--path.procfs=testdata/proc"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) || stdout != "" {
			t.Errorf("top %v: exit %d, stdout %q, stderr %q; want 2, nothing and %q", c.args, code, stdout, stderr, c.want)
		}
	}
}

// TestNumbersOutOfSenseAreRefused: numbers that parse but make no sense
// are refused as the command line is parsed, naming flag and value.
func TestNumbersOutOfSenseAreRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"top", "--no-exporter", "--limit=-1"}, "--limit=-1: out of range; it takes 0 (all) or more"},
		{[]string{"top", "--no-exporter", "--limit=2.5"}, `--limit="2.5": not a whole number`},
		{[]string{"top", "--no-exporter", "--watch", "--interval=0s"}, "--interval=0s: out of range; it takes 100ms or more"},
		{[]string{"top", "--no-exporter", "--watch", "--interval=99ms"}, "--interval=99ms: out of range"},
		{[]string{"top", "--no-exporter", "--watch", "--count=-1"}, "--count=-1: out of range"},
		{[]string{"top", "--no-exporter", "--remote-port=0"}, "--remote-port=0: out of range; it takes a port from 1 to 65535"},
		{[]string{"top", "--no-exporter", "--remote-port=70000"}, "--remote-port=70000: out of range"},
		{[]string{"--collector.max-series=0"}, "--collector.max-series=0: out of range; it takes 1 or more"},
		{[]string{"--collector.process.workers=0"}, "--collector.process.workers=0: out of range"},
		{[]string{"--web.max-requests=-1"}, "--web.max-requests=-1: out of range"},
		{[]string{"--collector.close-wait.max-tracked=-1"}, "--collector.close-wait.max-tracked=-1: out of range"},
		{[]string{"--collector.close-wait.stuck-after=0s"}, "--collector.close-wait.stuck-after=0s: out of range; it takes 1s or more"},
		{[]string{"--collector.close-wait.sample-interval=10ms"}, "--collector.close-wait.sample-interval=10ms: out of range; it takes 0 (off) or 1s or more"},
	} {
		code, out := runToExit(t, c.args...)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, want 2 and %q in:\n%s", c.args, code, c.want, out)
		}
	}
	// The floors themselves are taken.
	stdout, stderr, code := runPiped(t, "top", "--no-exporter", "--path.procfs=testdata/proc", "--watch", "--interval=100ms", "--count=1", "--limit=0")
	if code != 0 || !strings.Contains(stdout, "PROCESS") {
		t.Errorf("--interval=100ms --count=1 --limit=0: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestEveryNumericFlagNamesItself finds every flag of `--help` and
// `top --help` whose default is a number or a duration, gives it "abc",
// and wants exit 2 and an error naming the flag and "abc", without Go's
// strconv text: flags added later are covered too.
func TestEveryNumericFlagNamesItself(t *testing.T) {
	numeric := regexp.MustCompile(`--([a-z0-9.-]+)=([0-9][0-9a-z.]*)\s`)
	seen := 0
	for _, cmd := range [][]string{nil, {"top"}} {
		help, _, _ := runPiped(t, append(cmd, "--help")...)
		for _, m := range numeric.FindAllStringSubmatch(help, -1) {
			args := append(append([]string{}, cmd...), "--"+m[1]+"=abc")
			if cmd != nil {
				args = append(args, "--watch") // --interval and --count need it
			}
			seen++
			code, out := runToExit(t, args...)
			if code != 2 || !strings.Contains(out, "--"+m[1]+`="abc"`) || strings.Contains(out, "strconv") {
				t.Errorf("%v: exit %d, want 2 and an error naming --%s=\"abc\":\n%s", args, code, m[1], out)
			}
		}
	}
	if seen < 9 {
		t.Errorf("found %d numeric flags in --help, want at least 9 (the pattern no longer matches the help?)", seen)
	}
	code, out := runToExit(t, "top", "--no-exporter", "--remote-port=abc")
	if code != 2 || !strings.Contains(out, `--remote-port="abc": not a whole number`) {
		t.Errorf("--remote-port=abc: exit %d:\n%s", code, out)
	}
}

// TestTopRoutesHonourFiltersAndJSON: without --sockets, the filters pick
// routes and --output json writes them, one object per refresh.
func TestTopRoutesHonourFiltersAndJSON(t *testing.T) {
	base := []string{"top", "--no-exporter", "--path.procfs=testdata/proc", "--config.file=testdata/config.yml"}
	for _, c := range []struct {
		args []string
		want string // the rows, REMOTE column
	}{
		{[]string{"--process=^py"}, "192.168.1.1:5432"},
		{[]string{"--remote-address=10.1.2.0/24"}, "10.1.2.3:9000 10.1.2.4:9000"},
		{[]string{"--remote-port=5432"}, "192.168.1.1:5432"},
		{[]string{"--pool=db-v6"}, "[2001:db8::10]:9000"},
		{[]string{"--pool=search-java-v4", "--remote-address=10.1.2.4"}, "10.1.2.4:9000"},
		{[]string{"--process=^nginx$"}, ""},
	} {
		stdout, stderr, code := runPiped(t, append(base, c.args...)...)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s", c.args, code, stderr)
			continue
		}
		var remotes []string
		lines := strings.Split(stdout, "\n")
		for _, l := range lines {
			if f := strings.Fields(l); len(f) >= 3 && (f[0] == "java" || f[0] == "python3") {
				remotes = append(remotes, f[2])
			}
		}
		if got := strings.Join(remotes, " "); got != c.want {
			t.Errorf("%v: rows toward %q, want %q:\n%s", c.args, got, c.want, stdout)
		}
		if c.want == "" && !strings.Contains(stdout, "(no rows: no route matches the filters)") {
			t.Errorf("%v: an empty table should say the filters left nothing:\n%s", c.args, stdout)
		}
	}

	stdout, stderr, code := runPiped(t, append(base, "--output=json", "--pool=search-java-v4", "--limit=1", "--watch", "--count=2", "--interval=100ms")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	for refresh := 0; refresh < 2; refresh++ {
		var v struct {
			Routes []struct {
				Process       string   `json:"process"`
				Pids          []int    `json:"pids"`
				Address       string   `json:"remote_address"`
				Port          int      `json:"remote_port"`
				CloseWait     float64  `json:"close_wait"`
				Established   float64  `json:"established"`
				Pool          string   `json:"pool"`
				PoolMax       int      `json:"pool_max"`
				PoolInUse     *float64 `json:"pool_in_use"`
				PoolCloseWait *float64 `json:"pool_close_wait"`
				PoolFull      bool     `json:"pool_full"`
			} `json:"routes"`
			CloseWait *float64 `json:"close_wait_total"`
			Matched   int      `json:"matched"`
		}
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("refresh %d: %v\n%s", refresh, err, stdout)
		}
		if len(v.Routes) != 1 || v.Matched != 2 || v.CloseWait == nil || *v.CloseWait != 6 {
			t.Fatalf("refresh %d: %+v", refresh, v)
		}
		r := v.Routes[0]
		if r.Process != "java" || r.Address != "10.1.2.3" || r.Port != 9000 || r.CloseWait != 3 || r.Established != 2 ||
			len(r.Pids) != 1 || r.Pids[0] != 200 || r.Pool != "search-java-v4" || r.PoolMax != 4 ||
			r.PoolInUse == nil || *r.PoolInUse != 7 || *r.PoolCloseWait != 4 || !r.PoolFull {
			t.Errorf("refresh %d: %+v", refresh, r)
		}
	}
	if strings.Contains(stdout, "tcpstate_exporter top —") {
		t.Errorf("a text header in the JSON output:\n%s", stdout)
	}
}
