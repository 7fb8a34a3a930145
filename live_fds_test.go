package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// countFDs counts a process's open fds as `ls /proc/PID/fd | wc -l` does.
func countFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestLiveProcessFDs holds real sockets on loopback in processes started
// under known limits (prlimit) and checks tcpstate_process_open_fds and
// tcpstate_process_max_fds exactly: a process at its limit (every fd used,
// its last connect() failed with EMFILE), two processes of one name whose
// nearest one is shown rather than a sum, and a limit raised by
// `prlimit --pid` on a running process.
func TestLiveProcessFDs(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) is needed: %v", err)
	}
	const full, pair = "tcpst-fdfull", "tcpst-fdpair"
	srv := startHelper(t, "serve", "-comm", "tcpst-fdsrv", "-listen", "127.0.0.2:0")
	addr := srv.lines[0][strings.LastIndexByte(srv.lines[0], ' ')+1:]
	// At its limit: 5 CLOSE_WAIT sockets, then connections until EMFILE.
	fullH := startHelperIn(t, []string{"prlimit", "--nofile=64:64"}, "connect", "-comm", full, "-close-wait", addr+"=5", "-fill", addr)
	// (Go raises its soft limit to the hard one at start: both are set.)
	// Two pids of one name: 40 fds of 1000 and about 15 of 100. The
	// second is nearer its limit and is the one shown.
	far := startHelperIn(t, []string{"prlimit", "--nofile=1000:1000"}, "connect", "-comm", pair, "-established", addr+"=30")
	near := startHelperIn(t, []string{"prlimit", "--nofile=100:100"}, "connect", "-comm", pair, "-established", addr+"=5")

	e := startExporter(t)
	check := func(step, process string, pid, wantMax int) {
		t.Helper()
		code, body := e.get(t, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("%s: GET /metrics: %d", step, code)
		}
		got := parseExposition(t, body)
		wantOpen := countFDs(t, pid) // the helpers hold still: no race
		labels := `{netns="host",process="` + process + `"}`
		if v, ok := got["tcpstate_process_open_fds"+labels]; !ok || v != float64(wantOpen) {
			t.Errorf("%s: tcpstate_process_open_fds%s = %v (present %v), want %d (ls /proc/%d/fd)", step, labels, v, ok, wantOpen, pid)
		}
		if v, ok := got["tcpstate_process_max_fds"+labels]; !ok || v != float64(wantMax) {
			t.Errorf("%s: tcpstate_process_max_fds%s = %v (present %v), want %d", step, labels, v, ok, wantMax)
		}
		if got[`tcpstate_scrape_collector_success{collector="process"}`] != 1 {
			t.Errorf("%s: process collector did not succeed", step)
		}
	}
	fullPid := fullH.cmd.Process.Pid
	// Every fd number below the limit is taken (fds inherited above it,
	// such as a test runner's pipe, count too: the process holds them).
	if !slices.ContainsFunc(fullH.lines, func(l string) bool { return strings.HasPrefix(l, "filled ") }) {
		t.Fatalf("the helper did not reach EMFILE: %q", fullH.lines)
	}
	before := countFDs(t, fullPid)
	if before < 64 {
		t.Fatalf("the filled helper holds %d fds, want at least 64 (its limit)", before)
	}
	check("at the limit", full, fullPid, 64)
	check("nearest pid", pair, near.cmd.Process.Pid, 100)
	_ = far

	// prlimit lowers the running process's soft limit; the exporter reads
	// the limit again once the process's fd count changes (here: it closes
	// one connection), and shows it over its new limit.
	out, err := exec.Command("prlimit", "--pid", strconv.Itoa(fullPid), "--nofile=48:64").CombinedOutput()
	if err != nil {
		t.Fatalf("prlimit --pid: %v\n%s", err, out)
	}
	if st, err := os.Stat("/proc/self/fd"); err == nil && st.Size() > 0 {
		// The kernel reports fd counts (Linux >= 6.2): the exporter's cache
		// is on and keeps the limit while the fd count stays put.
		check("limit lowered, fd count unchanged: the limit read before", full, fullPid, 64)
	}
	if _, err := fmt.Fprintln(fullH.stdin, "close"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for countFDs(t, fullPid) != before-1 {
		if time.Now().After(deadline) {
			t.Fatalf("helper holds %d fds 30 s after close, want %d", countFDs(t, fullPid), before-1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	check("limit lowered, one fd closed", full, fullPid, 48)

	// top shows the same on the process's route, as numbers in JSON and
	// marked in the table (over 90% of its limit).
	topOut, topErr, code := runPiped(t, "top", "--no-exporter", "--process=^"+full+"$", "--output=json", "--log.level=error")
	if code != 0 {
		t.Fatalf("top: exit %d\n%s%s", code, topOut, topErr)
	}
	var v struct {
		Routes []struct {
			Open *float64 `json:"open_fds"`
			Max  *float64 `json:"max_fds"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(topOut), &v); err != nil {
		t.Fatalf("top --output=json: %v\n%s", err, topOut)
	}
	wantOpen := float64(countFDs(t, fullPid))
	if len(v.Routes) == 0 {
		t.Fatalf("top lists no route of %s:\n%s", full, topOut)
	}
	for _, r := range v.Routes {
		if r.Open == nil || r.Max == nil || *r.Open != wantOpen || *r.Max != 48 {
			t.Errorf("top route of %s: open_fds %v, max_fds %v, want %v and 48", full, r.Open, r.Max, wantOpen)
		}
	}
	code, topOut = runToExit(t, "top", "--no-exporter", "--process=^"+full+"$", "--log.level=error")
	if want := fmt.Sprintf("%.0f/48!", wantOpen); code != 0 || !strings.Contains(topOut, want) {
		t.Errorf("top: exit %d, want %q in its table:\n%s", code, want, topOut)
	}
}
