// Package testutil holds what the exporter's end-to-end tests share: building
// the binaries once, a free loopback address, and a buffer that collects a
// child process's output while a test reads it.
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Build compiles each package (a path as `go build` takes it) into its
// output file, printing the compiler's errors to stderr.
func Build(outputs map[string]string) error {
	for out, pkg := range outputs {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building %s: %w", pkg, err)
		}
	}
	return nil
}

// BuildIn compiles the package pkg of the module in dir (one the main
// module does not include, such as mixin/render) into out.
func BuildIn(dir, out, pkg string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	build := exec.Command("go", "build", "-o", abs, pkg)
	build.Dir = dir
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building %s in %s: %w", pkg, dir, err)
	}
	return nil
}

// FreeAddr returns a loopback address whose port was free when asked.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// SyncBuffer collects a process's output while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// CopyTree copies a fixture tree such as testdata/proc, symlinks included,
// into a temporary directory, so that a test can break its copy.
func CopyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.IsDir():
			return os.MkdirAll(target, 0o755)
		default:
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func WritePortFiles(t *testing.T, rangeText, reserved string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "sys", "net", "ipv4")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if rangeText != "" {
		if err := os.WriteFile(filepath.Join(dir, "ip_local_port_range"), []byte(rangeText), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if reserved != "-" {
		if err := os.WriteFile(filepath.Join(dir, "ip_local_reserved_ports"), []byte(reserved), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
