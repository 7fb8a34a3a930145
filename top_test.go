package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTopOnFixtureTree(t *testing.T) {
	code, out := runToExit(t, "top", "--no-exporter", "--path.procfs=testdata/proc", "--config.file=testdata/config.yml")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// The rows are the tcpstate_process_remote_connections series of the
	// golden exposition, sorted by CLOSE_WAIT; the pids are those that hold
	// the route's sockets (pid 201, also java, holds only 10.1.2.4's); the
	// pool is the fullest of those the route belongs to, marked (+N) when
	// there are more, and its use is its CLOSE_WAIT, CLOSE and ESTABLISHED
	// sockets on every route: 6 + 1 + 2 of 8 for search-engine, 4 + 1 + 2
	// of 4 for search-java-v4; both full, both named under the table.
	want := `source: the kernel, read by top itself (--no-exporter)
top cannot know what a running exporter remembers: the routes and pools of sockets held after a reset (state close) that were dropped before this reading: they count per process only; ages counted from a first sighting before this reading
CLOSE_WAIT 6  ESTABLISHED 5  (1 CLOSE_WAIT sockets have no known process: run as root or with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE)
  PROCESS  PIDS               REMOTE  CLOSE_WAIT  CLOSE  ESTABLISHED                POOL  IN USE/MAX  OLDEST     FDS
     java   200        10.1.2.3:9000           3      1            2  search-java-v4(+1)    7/4 FULL       -  15/16!
     java   201        10.1.2.4:9000           1      0            0  search-java-v4(+1)    7/4 FULL       -  15/16!
     java   200  [2001:db8::10]:9000           1      0            0   search-engine(+1)    9/8 FULL       -  15/16!
  python3   300     192.168.1.1:5432           0      0            1                   -           -       -  3/1024
POOL (+N): the route belongs to N more pools; the table shows the fullest, FULL lines name every full one, --output json lists them all.
FULL: pool search-engine holds 9 connections (6 in CLOSE_WAIT, 1 in CLOSE (reset, still held), 2 ESTABLISHED) for a maximum of 8
FULL: pool search-java-v4 holds 7 connections (4 in CLOSE_WAIT, 1 in CLOSE (reset, still held), 2 ESTABLISHED) for a maximum of 4
FDS: process java has 15 of its 16 file descriptors open (94%); at the limit, accept(), connect() and open() fail with EMFILE
`
	if out != want {
		t.Errorf("top printed:\n%s\nwant:\n%s", out, want)
	}
}

// TestTopLimitAndWatch runs top --watch through a pipe: each refresh is
// appended as plain text, without the escape codes that clear a terminal.
func TestTopLimitAndWatch(t *testing.T) {
	stdout, stderr, code := runPiped(t, "top", "--no-exporter", "--path.procfs=testdata/proc", "--limit=1", "--watch", "--interval=100ms", "--count=3")
	if code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	if strings.Contains(stdout, "\033") {
		t.Errorf("escape codes written to a pipe:\n%q", stdout)
	}
	if n := strings.Count(stdout, "tcpstate_exporter top — "); n != 3 {
		t.Errorf("%d refreshes, want 3:\n%s", n, stdout)
	}
	if n := strings.Count(stdout, "(3 more rows; --limit shows more)"); n != 3 {
		t.Errorf("--limit=1 should leave 3 rows out on each refresh:\n%s", stdout)
	}
}

// runPiped runs the binary with standard output and standard error on
// separate pipes, as `top > file` would.
func runPiped(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

// TestTopWatchOnATerminal runs top --watch with its standard output on a
// pseudo-terminal: there, each refresh clears the screen.
func TestTopWatchOnATerminal(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "top", "--no-exporter", "--path.procfs=testdata/proc", "--watch", "--interval=100ms", "--count=2")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = pts, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&out, ptmx); close(copied) }() // ends with EIO once the child is gone
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
		t.Fatal("the terminal's output did not end")
	}
	if n := strings.Count(out.String(), "\033[H\033[2J"); n != 2 {
		t.Errorf("%d screen clears on a terminal, want 2:\n%q", n, out.String())
	}
}

// TestTopHelpListsWhatTopUses: `top --help` leaves out the flags only
// serving uses; the exporter's own --help keeps them.
func TestTopHelpListsWhatTopUses(t *testing.T) {
	stdout, stderr, code := runPiped(t, "top", "--no-exporter", "--help")
	if code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"--limit", "--watch", "--path.procfs", "--config.file", "--log.level"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("top --help lacks %s:\n%s", want, stdout)
		}
	}
	for _, hidden := range serveOnlyFlags {
		if strings.Contains(stdout, hidden) { // boolean flags read --[no-]NAME
			t.Errorf("top --help lists --%s, which top does not use", hidden)
		}
	}
	stdout, _, _ = runPiped(t, "--help")
	for _, flag := range serveOnlyFlags {
		if !strings.Contains(stdout, flag) {
			t.Errorf("the exporter's --help lost --%s", flag)
		}
	}
}

// TestTopKeepsTheLogOffTheTable: top logs nothing below errors unless
// --log.level says so, and then on standard error only.
func TestTopKeepsTheLogOffTheTable(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"top", "--no-exporter", "--path.procfs=testdata/proc", "--config.file=" + empty}
	stdout, stderr, code := runPiped(t, args...)
	if code != 0 || stderr != "" {
		t.Errorf("top by default: exit %d, standard error %q, want 0 and nothing", code, stderr)
	}
	if strings.Contains(stdout, "level=") {
		t.Errorf("a log line in the table:\n%s", stdout)
	}
	stdout, stderr, _ = runPiped(t, append(args, "--log.level=warn")...)
	if !strings.Contains(stderr, "declares no pools") || strings.Contains(stdout, "level=") {
		t.Errorf("with --log.level=warn the warning belongs on standard error only:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

// TestTopEmptyTableSaysWhy: an empty table names its reason.
func TestTopEmptyTableSaysWhy(t *testing.T) {
	// A tree whose sockets no process holds: every CLOSE_WAIT socket is
	// unresolved, as for an exporter without privileges.
	orphans := t.TempDir()
	copyTables(t, orphans, "testdata/proc/net/tcp", "testdata/proc/net/tcp6")
	// A tree with no socket at all.
	none := t.TempDir()
	if err := os.MkdirAll(filepath.Join(none, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(none, "net", "tcp"), []byte("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--path.procfs=testdata/proc", "--no-collector.process"}, "(no rows: the process collector is off"},
		// These trees have no sys/ for the ephemeral collector: without it
		// the numbers are complete (top exits 0).
		{[]string{"--path.procfs=" + orphans, "--no-collector.ephemeral", "--no-collector.hostlimits"}, "(no rows: the 6 CLOSE_WAIT sockets have no known process"},
		{[]string{"--path.procfs=" + none, "--no-collector.ephemeral", "--no-collector.hostlimits"}, "(no rows: no outbound socket in CLOSE_WAIT or ESTABLISHED has a known process)"},
		{[]string{"--path.procfs=testdata/proc", "--collector.process.remote-states=time_wait"}, "(no rows: the 6 CLOSE_WAIT sockets are not outbound"},
	}
	for _, c := range cases {
		stdout, stderr, code := runPiped(t, append([]string{"top", "--no-exporter"}, c.args...)...)
		if code != 0 || !strings.Contains(stdout, c.want) {
			t.Errorf("top %v: exit %d, want %q in:\n%s%s", c.args, code, c.want, stdout, stderr)
		}
	}
	// A table with rows gives no such reason.
	if stdout, _, _ := runPiped(t, "top", "--no-exporter", "--path.procfs=testdata/proc"); strings.Contains(stdout, "(no rows") {
		t.Errorf("a reason for an empty table under rows:\n%s", stdout)
	}
}

func copyTables(t *testing.T, root string, files ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "net", filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTopSocketsOnFixtureTree lists the fixture's CLOSE_WAIT sockets one by
// one: the procfs text has no kernel clock, so a single run knows no age
// and says why; unread bytes leave out the FIN's sequence number.
func TestTopSocketsOnFixtureTree(t *testing.T) {
	code, out := runToExit(t, "top", "--no-exporter", "--sockets", "--path.procfs=testdata/proc", "--config.file=testdata/config.yml", "--log.level=error")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	want := `source: the kernel, read by top itself (--no-exporter)
top cannot know what a running exporter remembers: the routes and pools of sockets held after a reset (state close) that were dropped before this reading: they count per process only; ages counted from a first sighting before this reading
CLOSE_WAIT 6
  PID  PROCESS       STATE                LOCAL               REMOTE  AGE  AGE FROM  RECV-Q               POOL
  200     java  CLOSE_WAIT       10.0.0.5:40001        10.1.2.3:9000    -         -      15  search-engine(+1)
  200     java  CLOSE_WAIT       10.0.0.5:40002        10.1.2.3:9000    -         -      31  search-engine(+1)
  200     java  CLOSE_WAIT       10.0.0.5:41001        10.1.2.3:9000    -         -      63  search-engine(+1)
  201     java  CLOSE_WAIT       10.0.0.5:40003        10.1.2.4:9000    -         -       0  search-engine(+1)
  200     java  CLOSE_WAIT  [2001:db8::5]:41000  [2001:db8::10]:9000    -         -       0  search-engine(+1)
    -        -  CLOSE_WAIT       10.0.0.5:40008        10.1.2.3:9000    -         -       0      search-engine
AGE -: the kernel gives no age for these sockets (procfs source, or another network namespace) and this run saw them once; --watch counts from now.
`
	if out != want {
		t.Errorf("top --sockets printed:\n%s\nwant:\n%s", out, want)
	}

	// Filters, the pool column following --pool (+1: the sockets belong
	// to search-engine too), and --limit.
	code, out = runToExit(t, "top", "--no-exporter", "--sockets", "--path.procfs=testdata/proc", "--config.file=testdata/config.yml", "--log.level=error",
		"--pool=search-java-v4", "--remote-address=10.1.2.3", "--limit=2")
	want = `source: the kernel, read by top itself (--no-exporter)
top cannot know what a running exporter remembers: the routes and pools of sockets held after a reset (state close) that were dropped before this reading: they count per process only; ages counted from a first sighting before this reading
CLOSE_WAIT 6  matching 3
  PID  PROCESS       STATE           LOCAL         REMOTE  AGE  AGE FROM  RECV-Q                POOL
  200     java  CLOSE_WAIT  10.0.0.5:40001  10.1.2.3:9000    -         -      15  search-java-v4(+1)
  200     java  CLOSE_WAIT  10.0.0.5:40002  10.1.2.3:9000    -         -      31  search-java-v4(+1)
(1 more sockets; --limit shows more)
AGE -: the kernel gives no age for these sockets (procfs source, or another network namespace) and this run saw them once; --watch counts from now.
`
	if code != 0 || out != want {
		t.Errorf("filtered (exit %d):\n%s\nwant:\n%s", code, out, want)
	}

	// The second refresh of --watch has first-seen ages; JSON parses.
	code, out = runToExit(t, "top", "--no-exporter", "--sockets", "--path.procfs=testdata/proc", "--log.level=error", "--output=json", "--watch", "--count=2", "--interval=100ms", "--limit=0")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for refresh := 0; refresh < 2; refresh++ {
		var l struct {
			Sockets []struct {
				Pid        int      `json:"pid"`
				State      string   `json:"state"`
				Local      string   `json:"local"`
				AgeSeconds *float64 `json:"age_seconds"`
				AgeSource  string   `json:"age_source"`
				Unread     uint64   `json:"unread_bytes"`
			} `json:"sockets"`
			Matched int `json:"matched"`
			Total   int `json:"close_wait_total"`
			Closed  int `json:"close_total"`
		}
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("refresh %d: %v\n%s", refresh, err, out)
		}
		if l.Total != 6 || l.Closed != 0 || l.Matched != 6 || len(l.Sockets) != 6 || l.Sockets[0].State != "close_wait" || l.Sockets[0].Local != "10.0.0.5:40001" || l.Sockets[0].Pid != 200 || l.Sockets[0].Unread != 15 {
			t.Fatalf("refresh %d: %+v", refresh, l)
		}
		for _, s := range l.Sockets {
			switch {
			case refresh == 0 && (s.AgeSeconds != nil || s.AgeSource != "none"):
				t.Errorf("first refresh: %+v has an age", s)
			case refresh == 1 && (s.AgeSeconds == nil || *s.AgeSeconds < 0.09 || s.AgeSource != "first_seen"):
				t.Errorf("second refresh: %+v; want a first-seen age of about 100ms", s)
			}
		}
	}

	for _, bad := range [][]string{{"--pool=nope"}, {"--remote-address=10.0.0.300"}, {"--process=("}, {"--remote-port=70000"}, {"--output=yaml"}} {
		code, out := runToExit(t, append([]string{"top", "--no-exporter", "--sockets", "--path.procfs=testdata/proc", "--config.file=testdata/config.yml"}, bad...)...)
		if code == 0 || !strings.Contains(out, strings.SplitN(bad[0], "=", 2)[0]) {
			t.Errorf("%v: exit %d, want an error naming the flag:\n%s", bad, code, out)
		}
	}
}
