package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// ruleFileContent is the part of a Prometheus rule file the test reads.
type ruleFileContent struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			For    string `yaml:"for"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func parseRules(text []byte) (ruleFileContent, error) {
	var f ruleFileContent
	err := yaml.Unmarshal(text, &f)
	return f, err
}

// ruleCopy is the rule pack as the test loads it.
type ruleCopy struct {
	path  string
	rules []string // "group/name" of every rule
}

// forLine is a `for:` line of the rule file; the copy rewrites its value.
var forLine = regexp.MustCompile(`(?m)^(\s+for:[ \t]*)(\S+)[ \t]*$`)

// rewriteFor returns the rule file with every `for:` duration replaced by d,
// and how many it replaced. Only those lines change, so every expression,
// label and annotation is byte for byte the real file's.
func rewriteFor(text []byte, d string) ([]byte, int) {
	n := 0
	out := forLine.ReplaceAllFunc(text, func(line []byte) []byte {
		n++
		return forLine.ReplaceAll(line, []byte("${1}"+d))
	})
	return out, n
}

// testRuleCopy writes a copy of the rule pack whose alerts wait testFor
// instead of minutes, and checks that the rewrite reached every alert and
// nothing else.
func testRuleCopy(t *testing.T) ruleCopy {
	t.Helper()
	text, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := parseRules(text)
	if err != nil {
		t.Fatalf("%s: %v", ruleFile, err)
	}
	short, n := rewriteFor(text, testFor)
	copied, err := parseRules(short)
	if err != nil {
		t.Fatalf("%s with for: %s: %v", ruleFile, testFor, err)
	}
	var c ruleCopy
	alerts := 0
	for gi, g := range copied.Groups {
		for ri, r := range g.Rules {
			name := r.Record
			if r.Alert != "" {
				name = r.Alert
				alerts++
				if r.For != testFor {
					t.Errorf("the test copy of alert %s has for: %q, want %q (was %q)", r.Alert, r.For, testFor, orig.Groups[gi].Rules[ri].For)
				}
			}
			c.rules = append(c.rules, g.Name+"/"+name)
		}
	}
	if n != alerts {
		t.Fatalf("rewrote %d for: lines in %s, but it has %d alerts", n, ruleFile, alerts)
	}
	c.path = filepath.Join(t.TempDir(), "tcpstate_exporter.rules.yml")
	if err := os.WriteFile(c.path, short, 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRewriteFor checks the rewrite the end-to-end test relies on; it needs
// no Prometheus and always runs.
func TestRewriteFor(t *testing.T) {
	t.Parallel()
	in := "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        for: 5m\n      - alert: B\n        expr: x\n        for:   15m  \n        annotations:\n          summary: waits for: 15m\n"
	want := "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        for: 2s\n      - alert: B\n        expr: x\n        for:   2s\n        annotations:\n          summary: waits for: 15m\n"
	if out, n := rewriteFor([]byte(in), "2s"); n != 2 || string(out) != want {
		t.Errorf("rewriteFor replaced %d lines:\n%s", n, out)
	}
	// The real file: one for: per alert.
	text, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseRules(text)
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts++
			}
		}
	}
	if _, n := rewriteFor(text, "2s"); n != alerts || alerts == 0 {
		t.Errorf("%s: %d for: lines, %d alerts", ruleFile, n, alerts)
	}
}

// apiRules is the data of /api/v1/rules.
type apiRules struct {
	Groups []struct {
		Name  string `json:"name"`
		File  string `json:"file"`
		Rules []struct {
			Name           string    `json:"name"`
			Type           string    `json:"type"`
			Health         string    `json:"health"`
			LastError      string    `json:"lastError"`
			LastEvaluation time.Time `json:"lastEvaluation"`
		} `json:"rules"`
	} `json:"groups"`
}

// checkRulesHealthy waits until Prometheus has evaluated every rule of the
// copy after the exporter's series were already stored, then requires each
// to be healthy: no rule of the pack may fail to evaluate against the real
// exporter's series. (A rule evaluated before the first scrape sees no
// series and is healthy whatever its matching.)
func checkRulesHealthy(t *testing.T, prom *process, rules ruleCopy) {
	t.Helper()
	since := time.Now()
	deadline := time.Now().Add(startupTimeout)
	for {
		r, err := api(prom, "/api/v1/rules", nil)
		if err != nil {
			t.Fatalf("/api/v1/rules: %v", err)
		}
		var data apiRules
		if err := json.Unmarshal(r.Data, &data); err != nil {
			t.Fatalf("/api/v1/rules: %v", err)
		}
		var loaded, pending, bad []string
		for _, g := range data.Groups {
			for _, rule := range g.Rules {
				loaded = append(loaded, g.Name+"/"+rule.Name)
				switch {
				case !rule.LastEvaluation.After(since) || rule.Health == "unknown":
					pending = append(pending, rule.Name)
				case rule.Health != "ok":
					bad = append(bad, fmt.Sprintf("%s/%s (%s): health %q: %s", g.Name, rule.Name, rule.Type, rule.Health, rule.LastError))
				}
			}
		}
		// Prometheus lists groups by name, not in file order.
		slices.Sort(loaded)
		if !slices.Equal(loaded, slices.Sorted(slices.Values(rules.rules))) {
			t.Fatalf("Prometheus loaded rules %v, the file has %v", loaded, rules.rules)
		}
		for _, b := range bad {
			t.Error(b)
		}
		if len(bad) > 0 {
			return
		}
		if len(pending) == 0 {
			t.Logf("all %d rules evaluated on the exporter's series, health ok", len(loaded))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rules not evaluated after %v: %v", startupTimeout, pending)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
