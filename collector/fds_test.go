package collector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"

	"github.com/go-kit/log"
)

// The fixture's java runs as pid 200 (15 fds, limit 16) and pid 201 (1 fd,
// limit 4096): the family shows pid 200, never a sum over both.
func TestProcessFDsNearestPid(t *testing.T) {
	t.Parallel()
	e, err := NewExporter(fixtureOptions(t), []string{"process"})
	if err != nil {
		t.Fatal(err)
	}
	fams := gather(t, e)
	for _, tc := range []struct {
		process   string
		open, max float64
	}{{"java", 15, 16}, {"python3", 3, 1024}, {"sshd", 2, 1024}} {
		labels := map[string]string{"process": tc.process, "netns": "host"}
		if v, ok := gauge(t, fams, "tcpstate_process_open_fds", labels); !ok || v != tc.open {
			t.Errorf("%s open fds = %v (present %v), want %v", tc.process, v, ok, tc.open)
		}
		if v, ok := gauge(t, fams, "tcpstate_process_max_fds", labels); !ok || v != tc.max {
			t.Errorf("%s max fds = %v (present %v), want %v", tc.process, v, ok, tc.max)
		}
	}
	// worker (pid 500) and idle (600) hold no TCP socket of their own.
	for _, p := range []string{"worker", "idle"} {
		if v, ok := gauge(t, fams, "tcpstate_process_open_fds", map[string]string{"process": p}); ok {
			t.Errorf("%s has open fds %v, want no series (no TCP socket)", p, v)
		}
	}
}

// Folded processes keep the nearest of them in "other", not a sum.
func TestProcessFDsFolded(t *testing.T) {
	t.Parallel()
	o := fixtureOptions(t)
	o.MaxSeries = 1
	e, err := NewExporter(o, []string{"process"})
	if err != nil {
		t.Fatal(err)
	}
	fams := gather(t, e)
	for labels, want := range map[[2]string][2]float64{
		{"java", "host"}:   {15, 16},
		{"other", "other"}: {3, 1024}, // python3's 3/1024, nearer than sshd's 2/1024
	} {
		l := map[string]string{"process": labels[0], "netns": labels[1]}
		o, _ := gauge(t, fams, "tcpstate_process_open_fds", l)
		m, _ := gauge(t, fams, "tcpstate_process_max_fds", l)
		if o != want[0] || m != want[1] {
			t.Errorf("%v: %v/%v, want %v/%v", labels, o, m, want[0], want[1])
		}
	}
	for _, name := range []string{"tcpstate_process_open_fds", "tcpstate_process_max_fds"} {
		if v, _ := gauge(t, fams, "tcpstate_series_truncated", map[string]string{"metric": name}); v != 2 {
			t.Errorf("truncated %s = %v, want 2", name, v)
		}
	}
}

// A malformed limits file: the error names the file and the line, the
// process collector reports success 0, the process has no fd series (its
// other pid is not the nearest), and every other process keeps its own.
func TestProcessFDsMalformedLimits(t *testing.T) {
	t.Parallel()
	root := testutil.CopyTree(t, "../testdata/proc")
	path := filepath.Join(root, "200", "limits")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), "Max open files            16 ", "Max open files            1x ", 1)
	if bad == string(b) {
		t.Fatal("fixture's limits line not found")
	}
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	o := fixtureOptions(t)
	o.ProcRoot = root
	logs := &logLines{}
	o.Logger = log.Logger(logs)
	e, err := NewExporter(o, []string{"process"})
	if err != nil {
		t.Fatal(err)
	}
	fams := gather(t, e)
	if v, _ := gauge(t, fams, "tcpstate_scrape_collector_success", map[string]string{"collector": "process"}); v != 0 {
		t.Errorf("process collector success = %v, want 0", v)
	}
	if v, ok := gauge(t, fams, "tcpstate_process_open_fds", map[string]string{"process": "java"}); ok {
		t.Errorf("java open fds = %v, want no series", v)
	}
	if v, _ := gauge(t, fams, "tcpstate_process_max_fds", map[string]string{"process": "python3"}); v != 1024 {
		t.Errorf("python3 max fds = %v, want 1024", v)
	}
	gather(t, e) // logged once, not per scrape
	want := path + `: line 9: soft limit "1x" is not a number`
	if got := strings.Join(logs.all(), "\n"); strings.Count(got, want) != 1 {
		t.Errorf("log should name %q once:\n%s", want, got)
	}
}
