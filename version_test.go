package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionWithoutLdflags: a binary built without the Makefile's
// ldflags (as TestMain builds it, as `go build` does) reports the VERSION
// file's version, not "".
func TestVersionWithoutLdflags(t *testing.T) {
	want, err := os.ReadFile("VERSION")
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(want))
	code, out := runToExit(t, "--version")
	if code != 0 || !strings.Contains(out, "tcpstate_exporter, version "+v+" ") {
		t.Errorf("--version: exit %d, want version %s:\n%s", code, v, out)
	}
	r := runHostile(t, []string{"--path.procfs=testdata/proc", "--web.listen-address=127.0.0.1:0"})
	if !r.served || !strings.Contains(r.out, `version="(version=`+v+`,`) {
		t.Errorf("the start-up log does not carry version %s:\n%s", v, r.out)
	}
}

// TestVersionFromAGitCheckout builds the committed tree in a fresh git
// clone, as a user's `go build` would (VCS stamping on): the binary
// reports the VERSION file and the commit, "-modified" once a file
// changed, and ldflags still win over both.
func TestVersionFromAGitCheckout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the exporter three times in a fresh clone")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").CombinedOutput()
	if err != nil {
		if strings.Contains(string(top), "not a git repository") {
			t.Skip("not a git checkout (a source tarball): nothing to stamp")
		}
		t.Fatalf("git rev-parse: %v\n%s", err, top)
	}
	clone := filepath.Join(t.TempDir(), "src")
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", clone}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "clone", "-q", "--depth=1", "file://"+strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	rev := git("rev-parse", "HEAD")
	v, err := os.ReadFile(filepath.Join(clone, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	build := func(extra ...string) string {
		t.Helper()
		bin := filepath.Join(clone, "tcpstate_exporter")
		cmd := exec.Command("go", append(append([]string{"build", "-o", bin}, extra...), ".")...)
		cmd.Dir = clone
		// The machine's go env may turn stamping off; a user's default is on.
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", extra, err, out)
		}
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("--version: %v\n%s", err, out)
		}
		return string(out)
	}
	wantV := "version " + strings.TrimSpace(string(v)) + " "
	if out := build(); !strings.Contains(out, wantV) || !strings.Contains(out, "revision: "+rev+")") {
		t.Errorf("plain go build: want %q and revision %s in:\n%s", wantV, rev, out)
	}
	if err := os.WriteFile(filepath.Join(clone, "README.md"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := build(); !strings.Contains(out, "revision: "+rev+"-modified)") {
		t.Errorf("a changed checkout: want revision %s-modified in:\n%s", rev, out)
	}
	const pkg = "github.com/prometheus/common/version"
	out := build("-ldflags", "-X "+pkg+".Version=9.9.9 -X "+pkg+".Revision=abc123 -X "+pkg+".Branch=release")
	if !strings.Contains(out, "version 9.9.9 (branch: release, revision: abc123)") {
		t.Errorf("ldflags must keep precedence:\n%s", out)
	}
}
