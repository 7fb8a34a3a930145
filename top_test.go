package main

import (
	"encoding/json"
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

// TestTopSocketsOnFixtureTree lists the fixture's CLOSE_WAIT sockets one by
// one: the procfs text has no kernel clock, so a single run knows no age
// and says why; unread bytes leave out the FIN's sequence number.
func TestTopSocketsOnFixtureTree(t *testing.T) {
	code, out := runToExit(t, "top", "--sockets", "--path.procfs=testdata/proc", "--config.file=testdata/config.yml", "--log.level=error")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	want := `CLOSE_WAIT 6
  PID  PROCESS                LOCAL               REMOTE  AGE  AGE FROM  RECV-Q           POOL
  200     java       10.0.0.5:40001        10.1.2.3:9000    -         -      15  search-engine
  200     java       10.0.0.5:40002        10.1.2.3:9000    -         -      31  search-engine
  200     java       10.0.0.5:41001        10.1.2.3:9000    -         -      63  search-engine
  201     java       10.0.0.5:40003        10.1.2.4:9000    -         -       0  search-engine
  200     java  [2001:db8::5]:41000  [2001:db8::10]:9000    -         -       0  search-engine
    -        -       10.0.0.5:40008        10.1.2.3:9000    -         -       0  search-engine
AGE -: the kernel gives no age for these sockets (procfs source, or another network namespace) and this run saw them once; --watch counts from now.
`
	if out != want {
		t.Errorf("top --sockets printed:\n%s\nwant:\n%s", out, want)
	}

	// Filters, the pool column following --pool, and --limit.
	code, out = runToExit(t, "top", "--sockets", "--path.procfs=testdata/proc", "--config.file=testdata/config.yml", "--log.level=error",
		"--pool=search-java-v4", "--remote-address=10.1.2.3", "--limit=2")
	want = `CLOSE_WAIT 6  matching 3
  PID  PROCESS           LOCAL         REMOTE  AGE  AGE FROM  RECV-Q            POOL
  200     java  10.0.0.5:40001  10.1.2.3:9000    -         -      15  search-java-v4
  200     java  10.0.0.5:40002  10.1.2.3:9000    -         -      31  search-java-v4
(1 more sockets; --limit shows more)
AGE -: the kernel gives no age for these sockets (procfs source, or another network namespace) and this run saw them once; --watch counts from now.
`
	if code != 0 || out != want {
		t.Errorf("filtered (exit %d):\n%s\nwant:\n%s", code, out, want)
	}

	// The second refresh of --watch has first-seen ages; JSON parses.
	code, out = runToExit(t, "top", "--sockets", "--path.procfs=testdata/proc", "--log.level=error", "--output=json", "--watch", "--count=2", "--interval=100ms", "--limit=0")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for refresh := 0; refresh < 2; refresh++ {
		var l struct {
			Sockets []struct {
				Pid        int      `json:"pid"`
				Local      string   `json:"local"`
				AgeSeconds *float64 `json:"age_seconds"`
				AgeSource  string   `json:"age_source"`
				Unread     uint64   `json:"unread_bytes"`
			} `json:"sockets"`
			Matched int `json:"matched"`
			Total   int `json:"close_wait_total"`
		}
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("refresh %d: %v\n%s", refresh, err, out)
		}
		if l.Total != 6 || l.Matched != 6 || len(l.Sockets) != 6 || l.Sockets[0].Local != "10.0.0.5:40001" || l.Sockets[0].Pid != 200 || l.Sockets[0].Unread != 15 {
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
		code, out := runToExit(t, append([]string{"top", "--sockets", "--path.procfs=testdata/proc", "--config.file=testdata/config.yml"}, bad...)...)
		if code == 0 || !strings.Contains(out, strings.SplitN(bad[0], "=", 2)[0]) {
			t.Errorf("%v: exit %d, want an error naming the flag:\n%s", bad, code, out)
		}
	}
}
