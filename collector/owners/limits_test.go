package owners

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMaxOpenFiles(t *testing.T) {
	t.Parallel()
	real, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		t.Fatal(err)
	}
	header := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max processes             96367                96367                processes \n"
	for _, tc := range []struct {
		name, text string
		want       int64
		wantErr    string
	}{
		{"soft below hard", header + "Max open files            1024                 524288               files     \n", 1024, ""},
		{"at the hard limit", header + "Max open files            20000                20000                files     \n", 20000, ""},
		{"last line without newline", header + "Max open files 256 4096 files", 256, ""},
		{"unlimited", header + "Max open files            unlimited            unlimited            files     \n", Unlimited, ""},
		{"no such line", header, 0, `no "Max open files" line`},
		{"empty", "", 0, `no "Max open files" line`},
		{"soft not a number", header + "Max open files            1O24                 524288               files     \n", 0, `line 3: soft limit "1O24" is not a number`},
		{"negative", header + "Max open files            -1                   524288               files     \n", 0, `line 3: soft limit "-1" is not a number`},
		{"cut short", header + "Max open files            1024\n", 0, `line 3: "Max open files            1024": want "Max open files", a soft and a hard limit, and "files"`},
		{"wrong units", header + "Max open files            1024                 4096                 bytes\n", 0, `line 3: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMaxOpenFiles([]byte(tc.text))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %d, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
	// This process's own file, as the kernel writes it.
	if _, err := parseMaxOpenFiles(real); err != nil {
		t.Errorf("/proc/self/limits: %v", err)
	}
}

// BenchmarkMaxOpenFiles reads and parses this process's /proc/PID/limits,
// as ReadFDUsage does once per process with TCP sockets whose fd count or
// start time changed (and for every such process at each walk of every
// process, at most every completeWalkInterval).
func BenchmarkMaxOpenFiles(b *testing.B) {
	root, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(root)
	r := procReader{root: root, rootPath: "/proc"}
	pid := int32(os.Getpid())
	for b.Loop() {
		if _, err := r.maxOpenFiles(pid); err != nil {
			b.Fatal(err)
		}
	}
}

// writeLimits writes a limits file for pid in a fixture tree with the
// given "Max open files" line.
func writeLimits(t *testing.T, root string, pid int, maxOpenFiles string) {
	t.Helper()
	text := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max cpu time              unlimited            unlimited            seconds   \n" +
		maxOpenFiles + "\n" +
		"Max processes             63422                63422                processes \n"
	if err := os.WriteFile(filepath.Join(root, strconv.Itoa(pid), "limits"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLimitsPrefetched: the limits PrefetchLimits read beside the tables
// are the ones ReadFDUsage reports (a limits file changed after the
// prefetch does not show until the process's fd count changes), and a
// malformed one read there is reported as ReadFDUsage reports its own.
func TestLimitsPrefetched(t *testing.T) {
	tree := newProcTree(t)
	tree.process(100, "client", 5000)
	tree.process(200, "server", 6000)
	tree.fd(100, 3, "socket:[1]")
	tree.fd(200, 3, "socket:[2]")
	writeLimits(t, tree.root, 100, "Max open files            4096                 524288               files     ")
	writeLimits(t, tree.root, 200, "Max open files            lots                 524288               files     ")
	o := &SocketOwners{Root: tree.root, Workers: 2}
	_, w := walkOwners(t, o, 1, 2)
	o.PrefetchLimits(context.Background(), w)
	if w.limits == nil {
		t.Fatal("nothing prefetched for two processes with sockets and no known limit")
	}
	<-w.limits.done
	writeLimits(t, tree.root, 100, "Max open files            1024                 524288               files     ")
	pids := []int32{100, 200}
	out := make([]FDUsage, 2)
	err := o.ReadFDUsage(context.Background(), w, pids, out)
	if out[0].Max != 4096 || !out[0].Known {
		t.Errorf("pid 100: %+v, want the prefetched limit 4096", out[0])
	}
	if !out[1].Malformed || err == nil || !strings.Contains(err.Error(), filepath.Join(tree.root, "200", "limits")) {
		t.Errorf("pid 200: %+v, error %v; want malformed, the error naming %s/200/limits", out[1], err, tree.root)
	}
	// Known now: the next walk prefetches nothing for pid 100 (its fd
	// count is unchanged), and reports the limit kept.
	_, w = walkOwners(t, o, 1, 2)
	o.PrefetchLimits(context.Background(), w)
	if w.limits != nil && slices.Contains(w.limits.pids, 100) {
		t.Errorf("pid 100's known limit prefetched again: %v", w.limits.pids)
	}
	if err := o.ReadFDUsage(context.Background(), w, pids, out); err == nil || out[0].Max != 4096 {
		t.Errorf("second reading: pid 100 %+v (want 4096, kept), error %v (want pid 200's again)", out[0], err)
	}
}
