package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCheckTelemetryPath: what the HTTP mux takes as a plain path and the
// exporter does not serve itself.
func TestCheckTelemetryPath(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"/metrics", "/a/b", "/metrics/", "/x-y_z.~1"} {
		if err := checkTelemetryPath(p); err != nil {
			t.Errorf("%q refused: %v", p, err)
		}
	}
	for p, want := range map[string]string{
		"":             "empty",
		"metrics":      "does not start with /",
		"/m etrics":    "only letters",
		"/{id}":        "only letters",
		"/a%20b":       "only letters",
		"/":            "landing page",
		"/-/reload":    "/-/",
		"/-/healthy":   "/-/",
		"/debug/pprof": "profiles",
		"/a/../b":      "did you mean /b?",
		"/a/./b":       "did you mean /a/b?",
	} {
		if err := checkTelemetryPath(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", p, err, want)
		}
	}
}

func TestCheckListenAddress(t *testing.T) {
	t.Parallel()
	for _, a := range []string{":9951", "127.0.0.1:0", "[::1]:9951", "vsock://:9951", "vsock://3:70000"} {
		if err := checkListenAddress(a); err != nil {
			t.Errorf("%q refused: %v", a, err)
		}
	}
	for a, want := range map[string]string{
		"":                "empty",
		" ":               "empty",
		"127.0.0.1":       "not HOST:PORT",
		"127.0.0.1:70000": `port "70000" is not a number from 0 to 65535`,
		":http":           `port "http" is not a number`,
		"vsock://":        "empty",
	} {
		if err := checkListenAddress(a); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", a, err, want)
		}
	}
}

// TestJoinNegativeValues: only a flag that takes a value, followed by a
// negative number, is joined; switches and arguments after -- are not.
func TestJoinNegativeValues(t *testing.T) {
	t.Parallel()
	app, _ := newApp()
	for _, c := range []struct{ in, want []string }{
		{[]string{"top", "--limit", "-1"}, []string{"top", "--limit=-1"}},
		{[]string{"--web.max-requests", "-5", "--log.level", "info"}, []string{"--web.max-requests=-5", "--log.level", "info"}},
		{[]string{"top", "--interval", "-1s", "--watch"}, []string{"top", "--interval=-1s", "--watch"}},
		{[]string{"top", "--watch", "-1"}, []string{"top", "--watch", "-1"}},
		{[]string{"--", "--limit", "-1"}, []string{"--", "--limit", "-1"}},
		{[]string{"top", "--limit", "-h"}, []string{"top", "--limit", "-h"}},
	} {
		if got := joinNegativeValues(app, c.in); !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}

// TestExpandArgFiles: @files nest, and one that names itself ends in an
// error, not in endless recursion.
func TestExpandArgFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	inner, outer, self := filepath.Join(dir, "inner"), filepath.Join(dir, "outer"), filepath.Join(dir, "self")
	for path, text := range map[string]string{
		inner: "--limit=3\n# a comment\n\n--watch\n",
		outer: "top\n@" + inner + "\n",
		self:  "@" + self + "\n",
	} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := expandArgFiles([]string{"@" + outer, "--count=1", "--", "@" + outer}, 0)
	if want := []string{"top", "--limit=3", "--watch", "--count=1", "--", "@" + outer}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	if _, err := expandArgFiles([]string{"@" + self}, 0); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("a file naming itself: %v", err)
	}
	if _, err := expandArgFiles([]string{"@" + filepath.Join(dir, "absent")}, 0); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("a missing file: %v", err)
	}
}
