package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-kit/log"
	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// logLines is a go-kit logger that keeps what is logged.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Log(kv ...any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(kv...))
	return nil
}

func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// scrapeTree runs n scrapes of the tree at root and returns the last one's
// series and everything logged.
func scrapeTree(t *testing.T, root string, n int) ([]string, []string) {
	t.Helper()
	o := fixtureOptions(t)
	o.ProcRoot = root
	logs := &logLines{}
	o.Logger = log.Logger(logs)
	e, err := NewExporter(o, Names())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range n {
		got = render(t, e.Collect)
	}
	return got, logs.all()
}

func has(lines []string, want ...string) func(t *testing.T) {
	return func(t *testing.T) {
		t.Helper()
		for _, w := range want {
			if !slices.Contains(lines, w) {
				t.Errorf("missing %q", w)
			}
		}
	}
}

func successes(lines []string) map[string]string {
	out := map[string]string{}
	for _, l := range lines {
		if c, ok := strings.CutPrefix(l, "collector="); ok {
			name, val, _ := strings.Cut(c, " ")
			if !strings.Contains(val, ".") && !strings.Contains(val, "e") { // skip durations
				out[name] = val
			}
		}
	}
	return out
}

func TestFaultVanishedProcessIsNormal(t *testing.T) {
	t.Parallel()
	baseline, _ := scrapeTree(t, "../testdata/proc", 1)
	root := testutil.CopyTree(t, "../testdata/proc")
	// Listed, but gone by the time its fd folder is opened.
	if err := os.Symlink("/nonexistent/800", filepath.Join(root, "800")); err != nil {
		t.Fatal(err)
	}
	// Gone after its fd folder was listed: links that lead nowhere.
	if err := os.MkdirAll(filepath.Join(root, "801", "fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, logs := scrapeTree(t, root, 3)
	stable := func(l []string) []string {
		return slices.DeleteFunc(slices.Clone(l), func(s string) bool { return strings.HasPrefix(s, "collector=") || strings.HasPrefix(s, "stage=") })
	}
	if !slices.Equal(stable(got), stable(baseline)) {
		t.Errorf("a vanished process changed the counts")
	}
	for c, v := range successes(got) {
		if v != "1" {
			t.Errorf("collector %s success %s, want 1", c, v)
		}
	}
	if len(logs) != 0 {
		t.Errorf("a vanished process is normal, yet logged: %q", logs)
	}
}

func TestFaultLinkChangesTarget(t *testing.T) {
	t.Parallel()
	root := testutil.CopyTree(t, "../testdata/proc")
	o := fixtureOptions(t)
	o.ProcRoot = root
	e, err := NewExporter(o, Names())
	if err != nil {
		t.Fatal(err)
	}
	route := func(addr, n string) string {
		return "netns=host,process=java,remote_address=" + addr + ",remote_port=9000,state=close_wait " + n
	}
	before := render(t, e.Collect)
	has(before, route("10.1.2.3", "3"), route("10.1.2.4", "1"), "state=close_wait 1")(t)

	// Process 201 closes socket 1006 and the fd number is reused for 1010,
	// the socket nobody held before.
	link := filepath.Join(root, "201", "fd", "3")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("socket:[1010]", link); err != nil {
		t.Fatal(err)
	}
	after := render(t, e.Collect)
	has(after, route("10.1.2.3", "4"), "state=close_wait 1")(t)
	if slices.Contains(after, route("10.1.2.4", "1")) {
		t.Errorf("socket 1006 still attributed to java after its link changed")
	}
}

func TestFaultBrokenTables(t *testing.T) {
	t.Parallel()
	type fault struct {
		name   string
		break_ func(t *testing.T, root string)
		want   []string // series that must still be right
		fails  bool     // whether the table collectors report success 0
		log    string   // what the one log line says, if any
	}
	writeFile := func(name, text string) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			if err := os.WriteFile(filepath.Join(root, "net", name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	v4, err := os.ReadFile("../testdata/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(v4), "\n")
	faults := []fault{
		{
			name:   "tcp6 missing (IPv6 disabled)",
			break_: func(t *testing.T, root string) { os.Remove(filepath.Join(root, "net", "tcp6")) },
			want:   []string{"family=ipv4,state=close_wait 4", "family=ipv6,state=close_wait 0"},
		},
		{
			name: "tcp6 unreadable",
			break_: func(t *testing.T, root string) {
				p := filepath.Join(root, "net", "tcp6")
				os.Remove(p)
				if err := os.Mkdir(p, 0o755); err != nil { // reading a directory fails
					t.Fatal(err)
				}
			},
			want:  []string{"family=ipv4,state=close_wait 4", "family=ipv6,state=close_wait 0"},
			fails: true,
			log:   "net/tcp6",
		},
		{
			name:   "tcp truncated mid-line",
			break_: writeFile("tcp", strings.Join(lines[:5], "")+lines[5][:30]),
			// Lines 2-5 are complete: two listeners, one inbound, one close_wait.
			want:  []string{"family=ipv4,state=listen 2", "family=ipv4,state=established 1", "family=ipv4,state=close_wait 1"},
			fails: true,
			log:   "net/tcp:6: missing",
		},
		{
			name:   "garbage in a state column",
			break_: writeFile("tcp", strings.Join(lines[:4], "")+strings.Replace(lines[4], " 08 ", " ZZ ", 1)+strings.Join(lines[5:], "")),
			want:   []string{"family=ipv4,state=close_wait 3", "family=ipv4,state=listen 2"},
			fails:  true,
			log:    `state \"ZZ\": not a two-digit hex code`,
		},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			root := testutil.CopyTree(t, "../testdata/proc")
			f.break_(t, root)
			got, logs := scrapeTree(t, root, 3)
			has(got, f.want...)(t)
			ok := successes(got)
			for _, c := range []string{"connections", "queues", "ports", "process", "pools"} {
				want := "1"
				if f.fails {
					want = "0"
				}
				if ok[c] != want {
					t.Errorf("collector %s success = %s, want %s", c, ok[c], want)
				}
			}
			if f.log == "" {
				if len(logs) != 0 {
					t.Errorf("logged %q, want nothing", logs)
				}
				return
			}
			// One line for three scrapes, naming the problem.
			if len(logs) != 1 || !strings.Contains(fmt.Sprintf("%q", logs[0]), f.log) {
				t.Errorf("want one log line containing %q, got %q", f.log, logs)
			}
		})
	}
}
