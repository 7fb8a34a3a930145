package main

import (
	"strings"
	"testing"
)

func TestTopOnFixtureTree(t *testing.T) {
	code, out := runToExit(t, "top", "--path.procfs=testdata/proc", "--config.file=testdata/config.yml")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// The rows are the tcpstate_process_remote_connections series of the
	// golden exposition, sorted by CLOSE_WAIT; the pids are those whose comm
	// is the process name; the pool is the first declared one that matches.
	want := `CLOSE_WAIT 6  ESTABLISHED 5  (1 CLOSE_WAIT sockets have no known process: run as root or with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE)
  PROCESS     PIDS               REMOTE  CLOSE_WAIT  ESTABLISHED           POOL  MAX  OLDEST
     java  200,201        10.1.2.3:9000           3            2  search-engine    8       -
     java  200,201        10.1.2.4:9000           1            0  search-engine    8       -
     java  200,201  [2001:db8::10]:9000           1            0  search-engine    8       -
  python3      300     192.168.1.1:5432           0            1              -    -       -
`
	if out != want {
		t.Errorf("top printed:\n%s\nwant:\n%s", out, want)
	}
}

func TestTopLimitAndWatch(t *testing.T) {
	code, out := runToExit(t, "top", "--path.procfs=testdata/proc", "--limit=1", "--watch", "--interval=10ms", "--count=3")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if n := strings.Count(out, "\033[H\033[2J"); n != 3 {
		t.Errorf("%d refreshes, want 3:\n%q", n, out)
	}
	if n := strings.Count(out, "(3 more rows; --limit shows more)"); n != 3 {
		t.Errorf("--limit=1 should leave 3 rows out on each refresh:\n%s", out)
	}
}
