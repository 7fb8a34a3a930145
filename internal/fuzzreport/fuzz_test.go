// Package fuzzreport holds fuzz.sh, which `make fuzz` runs, and its test: a
// fuzz failure in CI must leave in the log the input and the command that
// replays it.
package fuzzreport

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A module with a deliberately broken parser: it accepts ports outside
// 1-65535, which its fuzz target forbids.
const brokenModule = `package portparse

import "strconv"

// ParsePort is broken on purpose: it takes any integer.
func ParsePort(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil
}
`

const fuzzTarget = `package portparse

import "testing"

func FuzzParsePort(f *testing.F) {
	f.Add("80")
	f.Fuzz(func(t *testing.T, s string) {
		if n, ok := ParsePort(s); ok && (n < 1 || n > 65535) {
			t.Fatalf("ParsePort(%q) accepted %d", s, n)
		}
	})
}
`

func writeModule(t *testing.T, parser string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "portparse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"go.mod":        "module example.com/portparse\n\ngo 1.22\n",
		"parse.go":      parser,
		"parse_test.go": fuzzTarget,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runFuzz(t *testing.T, dir, fuzztime string) (string, int) {
	t.Helper()
	script, err := filepath.Abs("fuzz.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, dir, fuzztime, "FuzzParsePort")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestFailureIsReproducibleFromTheLog fuzzes the broken parser: the report
// must quote the failing input and a replay command that, run against a
// fresh copy of the module with only the quoted file added, fails the same
// way.
func TestFailureIsReproducibleFromTheLog(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the fuzzer")
	}
	out, code := runFuzz(t, writeModule(t, brokenModule), "60s")
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	m := regexp.MustCompile(`(?s)--- failing input (testdata/fuzz/FuzzParsePort/\w+) .*?---\n(.*?)--- end of `).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "replay:   go test ./portparse -run '^FuzzParsePort/") {
		t.Fatalf("the report lacks the input or the replay command:\n%s", out)
	}
	// Someone with only the log: a fresh module, the quoted file, the
	// quoted command.
	fresh := writeModule(t, brokenModule)
	if err := os.MkdirAll(filepath.Join(fresh, filepath.Dir(m[1])), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fresh, m[1]), []byte(m[2]), 0o644); err != nil {
		t.Fatal(err)
	}
	replay := exec.Command("go", "test", ".", "-run", "^FuzzParsePort/"+filepath.Base(m[1])+"$")
	replay.Dir = fresh
	rout, err := replay.CombinedOutput()
	if err == nil || !strings.Contains(string(rout), "ParsePort(") {
		t.Fatalf("replaying the quoted input did not fail (%v):\n%s", err, rout)
	}
	t.Logf("reported:\n%s", out[strings.Index(out, "=== FuzzParsePort FAILED"):])
}

// TestPassingTargetExitsZero: a correct parser fuzzes clean.
func TestPassingTargetExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the fuzzer")
	}
	fixed := strings.Replace(brokenModule, "return n, err == nil", "return n, err == nil && n >= 1 && n <= 65535", 1)
	if out, code := runFuzz(t, writeModule(t, fixed), "2s"); code != 0 || strings.Contains(out, "FAILED") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
