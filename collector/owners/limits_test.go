package owners

import (
	"os"
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
