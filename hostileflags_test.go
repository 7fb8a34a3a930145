package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// hostileValues are given to every flag that takes a value. A NUL byte
// cannot travel in argv; it comes through kingpin's @file expansion, as a
// user's argument file would bring it.
var hostileValues = []string{"", "rel/dir", "a b", "/-/reload", "/", "-1", "70000", maxInt64, "99999999999999999999", "a\x00b"}

// maxInt64 is a number in range for the flags without a maximum.
const maxInt64 = "9223372036854775807"

// hostileOutcome is what a value must lead to.
type hostileOutcome int

const (
	// refused: exit 2 and an error naming the flag, before anything runs.
	refused hostileOutcome = iota
	// failsNamingIt: the value is legitimately valid as written (a
	// relative path, a file name), but what it names is not there: exit 1
	// and an error quoting the value, nothing served.
	failsNamingIt
	// runs: legitimately valid; the exporter serves, top prints.
	runs
)

// legitimate lists, per flag, the hostile values that are legitimately
// valid and what follows from them; every other value of these flags, and
// every hostile value of the other flags in knownFlags, is refused.
var legitimate = map[string]map[string]hostileOutcome{
	// Empty: no config file, as by default. Any other name is a file name.
	"config.file": allBut(failsNamingIt, "", runs),
	// Empty: no web config (no TLS, no auth), as by default.
	"web.config.file": allBut(failsNamingIt, "", runs),
	// Any non-empty string is a path; only a tree with net/tcp serves.
	"path.procfs": allBut(failsNamingIt, "", refused),
	// Every non-empty hostile value is a valid regexp.
	"process": allBut(runs, "", refused),
	// Any non-empty string may be a pool's name; none of these is declared.
	"pool": allBut(failsNamingIt, "", refused),
	// 70000 and the largest int are in range.
	"web.max-requests":                 {"70000": runs, maxInt64: runs},
	"collector.max-series":             {"70000": runs, maxInt64: runs},
	"collector.close-wait.max-tracked": {"70000": runs, maxInt64: runs},
	"limit":                            {"70000": runs, maxInt64: runs},
}

// allBut gives every non-empty, NUL-free hostile value the outcome o, and
// value the outcome other.
func allBut(o hostileOutcome, value string, other hostileOutcome) map[string]hostileOutcome {
	m := map[string]hostileOutcome{}
	for _, v := range hostileValues {
		if v != "" && !strings.ContainsRune(v, 0) {
			m[v] = o
		}
	}
	m[value] = other
	return m
}

// knownFlags are the flags this test knows (in either command's --help).
// A flag it does not know (added later) gets the default: empty and NUL
// refused with exit 2 naming it; any other value may be valid, but must
// not panic, and if refused must name the flag.
var knownFlags = []string{
	"web.telemetry-path", "web.max-requests", "web.enable-lifecycle", "web.enable-pprof", "path.procfs", "config.file",
	"collector.max-series", "collector.process.remote-states", "collector.process.workers", "collector.close-wait.stuck-after",
	"collector.close-wait.max-tracked", "collector.tcp.source", "collector.netns", "collector.close-wait.sample-interval",
	"log.level", "log.format", "web.systemd-socket", "web.listen-address", "web.config.file",
	"collector.connections", "collector.queues", "collector.ports", "collector.ephemeral", "collector.acceptqueue",
	"collector.process", "collector.pools", "collector.disable-defaults",
	"limit", "watch", "interval", "count", "sockets", "output", "process", "remote-address", "remote-port", "pool",
}

// helpFlag is one line of --help: a flag's name and whether it is a switch.
var helpFlag = regexp.MustCompile(`(?m)^(?:  -\w, |      )--(\[no-\])?([a-z0-9][a-z0-9.-]*)`)

// flagsOf lists the flags of `--help` (cmd nil) or `top --help`.
func flagsOf(t *testing.T, cmd []string) (valued, switches []string) {
	t.Helper()
	help, stderr, code := runPiped(t, append(cmd, "--help")...)
	if code != 0 {
		t.Fatalf("%v --help: exit %d\n%s", cmd, code, stderr)
	}
	for _, m := range helpFlag.FindAllStringSubmatch(help, -1) {
		if m[2] == "help" || m[2] == "version" {
			continue
		}
		if m[1] != "" {
			switches = append(switches, m[2])
		} else {
			valued = append(valued, m[2])
		}
	}
	return valued, switches
}

// hostileRun is how one run ended.
type hostileRun struct {
	code   int  // exit status
	served bool // it listened (stopped by SIGTERM after that)
	scrape int  // the HTTP status of GET /metrics, when it served
	out    string
}

// listening is exporter-toolkit's log line once it listens.
var listening = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

// runHostile runs the binary with args until it exits or, serving, says
// "Listening on" (then scrapes /metrics once and stops it): at most 10 s.
func runHostile(t *testing.T, args []string) hostileRun {
	t.Helper()
	cmd := exec.Command(binary, args...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	code := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	// logfmt escapes quotes; the tests look for the text a person reads.
	text := func() string { return strings.ReplaceAll(out.String(), `\"`, `"`) }
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return hostileRun{code: code(err), out: text()}
		case <-time.After(10 * time.Millisecond):
		}
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			scrape := 0
			client := http.Client{Timeout: 10 * time.Second}
			if resp, err := client.Get("http://" + m[1] + "/metrics"); err == nil {
				scrape = resp.StatusCode
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				return hostileRun{code: code(err), served: true, scrape: scrape, out: text()}
			case <-time.After(5 * time.Second):
			}
			break
		}
	}
	_ = cmd.Process.Kill()
	<-done
	t.Fatalf("%q neither exited nor served within 10s:\n%s", args, out)
	return hostileRun{}
}

// withArgsFile passes args through a kingpin @file, so a NUL byte can be
// in them.
func withArgsFile(t *testing.T, args []string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "args")
	if err := os.WriteFile(path, []byte(strings.Join(args, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"@" + path}
}

// TestHostileFlagValues gives every flag of both commands, as their
// --help lists them, hostile values: none may panic; each is refused with
// exit 2 and an error naming the flag, unless legitimate says the value is
// valid for that flag, and then the program runs, or stops with an error
// quoting the value.
func TestHostileFlagValues(t *testing.T) {
	seen := map[string]bool{}
	for _, cmd := range [][]string{nil, {"top"}} {
		valued, switches := flagsOf(t, cmd)
		if len(valued) < 10 || len(switches) < 5 {
			t.Fatalf("%v --help: %d flags with values, %d switches: the pattern no longer reads the help?", cmd, len(valued), len(switches))
		}
		// base keeps every other flag harmless: a fixture tree, a free
		// loopback port.
		base := func(flag string) []string {
			args := slices.Clone(cmd)
			if flag != "path.procfs" {
				args = append(args, "--path.procfs=testdata/proc")
			}
			if cmd == nil && flag != "web.listen-address" {
				args = append(args, "--web.listen-address=127.0.0.1:0")
			}
			return args
		}
		for _, flag := range valued {
			seen[flag] = true
			for _, v := range hostileValues {
				args := append(base(flag), "--"+flag+"="+v)
				if strings.ContainsRune(v, 0) {
					args = withArgsFile(t, args)
				}
				r := runHostile(t, args)
				checkHostile(t, cmd, flag, v, r)
				if v == "-1" {
					// The space form reads the same (`top --limit -1`).
					sr := runHostile(t, append(base(flag), "--"+flag, v))
					if sr.code != r.code || sr.served != r.served || (r.code == 2 && errorLine(sr.out, flag) != errorLine(r.out, flag)) {
						t.Errorf("%v --%s %s: exit %d %q; --%s=%s: exit %d %q", cmd, flag, v, sr.code, errorLine(sr.out, flag), flag, v, r.code, errorLine(r.out, flag))
					}
				}
			}
		}
		for _, flag := range switches {
			seen[flag] = true
			for _, v := range []string{"", "yes", "a\x00b"} {
				args := append(base(flag), "--"+flag+"="+v)
				if strings.ContainsRune(v, 0) {
					args = withArgsFile(t, args)
				}
				r := runHostile(t, args)
				noPanic(t, args, r)
				if r.code != 2 || !strings.Contains(r.out, "--"+flag+"=") {
					t.Errorf("%v --%s=%q: exit %d, want 2 and an error naming --%s:\n%s", cmd, flag, v, r.code, flag, r.out)
				}
			}
		}
	}
	for _, f := range knownFlags {
		if !seen[f] {
			t.Errorf("--%s is in knownFlags but in neither --help: the table is stale", f)
		}
	}
}

// checkHostile checks one run of --flag=value against what legitimate
// (or the default for a flag this test does not know) expects.
func checkHostile(t *testing.T, cmd []string, flag, value string, r hostileRun) {
	t.Helper()
	where := strings.TrimSpace(strings.Join(cmd, " ") + " --" + flag + "=" + strconv.Quote(value))
	noPanic(t, []string{where}, r)
	want, ok := legitimate[flag][value]
	if !ok && !slices.Contains(knownFlags, flag) {
		// A flag added later: empty and NUL are never valid.
		if value != "" && !strings.ContainsRune(value, 0) {
			if r.code == 2 && !strings.Contains(r.out, "--"+flag) {
				t.Errorf("%s: exit 2 without naming --%s:\n%s", where, flag, r.out)
			}
			return
		}
		want = refused
	}
	switch want {
	case refused:
		if r.code != 2 || r.served || !strings.Contains(r.out, "--"+flag) {
			t.Errorf("%s: exit %d (served %v), want 2 and an error naming --%s:\n%s", where, r.code, r.served, flag, r.out)
		}
	case failsNamingIt:
		if r.code != 1 || r.served || !(strings.Contains(r.out, value) || strings.Contains(r.out, strconv.Quote(value))) {
			t.Errorf("%s: exit %d (served %v), want 1 and an error quoting %q:\n%s", where, r.code, r.served, value, r.out)
		}
	case runs:
		if cmd == nil && (!r.served || r.scrape != http.StatusOK || r.code != 0) {
			t.Errorf("%s: served %v, scrape %d, exit %d; want it to serve, answer a scrape and stop cleanly:\n%s", where, r.served, r.scrape, r.code, r.out)
		}
		if cmd != nil && r.code != 0 {
			t.Errorf("%s: exit %d, want 0:\n%s", where, r.code, r.out)
		}
	}
}

func noPanic(t *testing.T, args []string, r hostileRun) {
	t.Helper()
	if strings.Contains(r.out, "panic") || strings.Contains(r.out, "goroutine ") {
		t.Errorf("%q: a panic or stack trace:\n%s", args, r.out)
	}
}

// errorLine is the first line naming --flag, without its time stamp.
func errorLine(out, flag string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "--"+flag) {
			return timeStamp.ReplaceAllString(line, "")
		}
	}
	return ""
}

var timeStamp = regexp.MustCompile(`ts=\S+ `)

// TestFlagValuesNamedPrecisely: the values of issue 23 get the exact
// error a user reads, and nothing listens.
func TestFlagValuesNamedPrecisely(t *testing.T) {
	selfRef := filepath.Join(t.TempDir(), "args")
	if err := os.WriteFile(selfRef, []byte("@"+selfRef+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--web.telemetry-path=metrics"}, 2, `--web.telemetry-path="metrics": does not start with /; it takes a path such as /metrics`},
		{[]string{"--web.telemetry-path="}, 2, `--web.telemetry-path="": empty`},
		{[]string{"--web.telemetry-path=/-/reload"}, 2, `--web.telemetry-path="/-/reload": /-/ holds the exporter's own endpoints`},
		{[]string{"--web.telemetry-path=/m etrics"}, 2, `--web.telemetry-path="/m etrics": only letters, digits and - . _ ~ / may appear in it`},
		{[]string{"--web.telemetry-path=/"}, 2, `--web.telemetry-path="/": / is the landing page`},
		{[]string{"--web.telemetry-path=/a//b"}, 2, `--web.telemetry-path="/a//b": not a clean path (did you mean /a/b?)`},
		{[]string{"--web.telemetry-path=/{x}"}, 2, `--web.telemetry-path="/{x}": only letters`},
		{[]string{"--web.listen-address="}, 2, `--web.listen-address="": empty; it takes HOST:PORT`},
		{[]string{"--web.listen-address=127.0.0.1"}, 2, `--web.listen-address="127.0.0.1": not HOST:PORT`},
		{[]string{"--web.listen-address=127.0.0.1:70000"}, 2, `--web.listen-address="127.0.0.1:70000": port "70000" is not a number from 0 to 65535`},
		{[]string{"--collector.process.remote-states="}, 2, `--collector.process.remote-states="": empty; it takes comma-separated TCP states`},
		{[]string{"--collector.process.remote-states=,"}, 2, `--collector.process.remote-states=",": empty`},
		{[]string{"--web.enable-lifecycle=true"}, 2, `--web.enable-lifecycle="true": a switch takes no value; write --web.enable-lifecycle or --no-web.enable-lifecycle`},
		{[]string{"--no-collector.netns=false"}, 2, `--no-collector.netns="false": a switch takes no value`},
		{[]string{"top", "--limit", "-1"}, 2, "--limit=-1: out of range; it takes 0 (all) or more"},
		{[]string{"--web.max-requests", "-1"}, 2, "--web.max-requests=-1: out of range; it takes 0 (no limit) or more"},
		{[]string{"top", "--process="}, 2, `--process="": empty; it takes a regexp`},
		{[]string{"top", "--pool="}, 2, `--pool="": empty`},
		{[]string{"top", "--remote-address="}, 2, `--remote-address="": empty`},
		{[]string{"@" + selfRef}, 2, "argument files nested more than 8 deep (does one name itself?)"},
		{[]string{"--path.procfs=/nonexistent"}, 1, `--path.procfs="/nonexistent": cannot list it`},
		{[]string{"top", "--path.procfs=/nonexistent"}, 1, `--path.procfs="/nonexistent": cannot list it`},
		{[]string{"--path.procfs=testdata"}, 1, `--path.procfs="testdata": cannot read testdata/net/tcp, the TCP table of --collector.tcp.source=auto`},
		{[]string{"--path.procfs=" + "testdata", "--collector.tcp.source=procfs"}, 1, "the TCP table of --collector.tcp.source=procfs"},
	} {
		args := c.args
		if len(args) == 0 || args[0] != "top" {
			args = append(slices.Clone(args), "--web.listen-address=127.0.0.1:0")
			if strings.HasPrefix(c.args[0], "--web.listen-address") {
				args = c.args
			}
		}
		r := runHostile(t, args)
		noPanic(t, args, r)
		if r.code != c.code || r.served || !strings.Contains(r.out, c.want) {
			t.Errorf("%q: exit %d (served %v), want %d and %q in:\n%s", c.args, r.code, r.served, c.code, c.want, r.out)
		}
	}
	// With netlink alone the tables do not come from --path.procfs: a
	// tree without net/tcp is enough (here, for top, a listable one).
	dir := t.TempDir()
	if r := runHostile(t, []string{"top", "--path.procfs=" + dir, "--collector.tcp.source=netlink", "--no-collector.ephemeral"}); r.code == 1 || strings.Contains(r.out, "--path.procfs") {
		t.Errorf("netlink with an empty --path.procfs tree: exit %d:\n%s", r.code, r.out)
	}
}
