package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigReportsEveryProblemOfAPool: one pool with several problems
// gets one error each, in the order of the lines.
func TestConfigReportsEveryProblemOfAPool(t *testing.T) {
	t.Parallel()
	doc := `pools:
  - name: search
    process: "java("
    remote_address: 10.0.0.1/8
    remote_prot: 9000
    remote_port: 0
    max: 0
  - process: x
`
	_, err := ParseConfig([]byte(doc))
	var list ConfigErrors
	if !errors.As(err, &list) {
		t.Fatalf("got %v (%T), want ConfigErrors", err, err)
	}
	want := []string{
		`3: pool "search": process "java(": invalid regexp: missing closing ) in "java("`,
		`4: pool "search": remote_address "10.0.0.1/8": host bits set in CIDR (did you mean 10.0.0.0/8?)`,
		`5: pool "search": unknown field "remote_prot"`,
		`6: pool "search": remote_port "0": must be a port number from 1 to 65535`,
		`7: pool "search": max "0": must be a whole number greater than 0`,
		`8: pool #2: name: missing`,
		`8: pool #2: max: missing`,
	}
	if len(list) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(list), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(list[i].Error(), w) {
			t.Errorf("problem %d: %q, want it to start with %q", i+1, list[i], w)
		}
	}
}

// TestYAMLSyntaxErrorsNameTheLine: the YAML parser names the line where
// the enclosing block began; the error names the line with the problem.
func TestYAMLSyntaxErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml, want string
	}{
		{"field indented too little", "pools:\n  - name: a\n    max: 1\n   remote_port: 80\n",
			":4: yaml: did not find expected '-' indicator (is this line indented like the fields of its pool?)"},
		{"field at the list's indentation", "pools:\n  - name: a\n    max: 1\n  remote_port: 80\n",
			":4: yaml: did not find expected '-' indicator"},
		{"field indented too much, second pool", "# pools\npools:\n  - name: a\n    max: 1\n  - name: b\n    max: 2\n      remote_port: 9\n",
			":7: yaml: mapping values are not allowed in this context"},
		{"tab", "pools:\n  - name: a\n    max: 1\n\tremote_port: 80\n",
			":4: yaml: found a tab character that violates indentation (indent with spaces)"},
		{"unclosed flow list", "pools: [\n", ":1: yaml: did not find expected node content"},
	}
	dir := t.TempDir()
	for i, c := range cases {
		path := filepath.Join(dir, "config"+string(rune('a'+i))+".yml")
		if err := os.WriteFile(path, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.name, err, path+c.want)
		}
	}
}

// TestConfigRefusesKeysWrittenTwice: a field written twice in one pool
// (the last one would win) is refused naming both lines, and so is a
// second "pools" list.
func TestConfigRefusesKeysWrittenTwice(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, doc string
		want      []string
	}{
		{"max twice", "pools:\n  - name: search\n    max: 10\n    remote_port: 9000\n    max: 20\n",
			[]string{`5: pool "search": max written twice, on lines 3 and 5`}},
		{"name twice", "pools:\n  - name: a\n    name: b\n    max: 1\n",
			[]string{`3: pool "a": name written twice, on lines 2 and 3`}},
		{"three times, beside another problem", "pools:\n  - name: s\n    max: 1\n    max: 2\n    remote_port: 0\n    max: 3\n",
			[]string{`4: pool "s": max written twice, on lines 3 and 4`, `5: pool "s": remote_port "0"`, `6: pool "s": max written twice, on lines 3 and 6`}},
		{"pools twice", "pools:\n  - name: a\n    max: 1\npools:\n  - name: b\n    max: 1\n",
			[]string{`4: "pools" written twice, on lines 1 and 4`}},
	} {
		_, err := ParseConfig([]byte(c.doc))
		var list ConfigErrors
		if !errors.As(err, &list) {
			t.Errorf("%s: got %v, want ConfigErrors", c.name, err)
			continue
		}
		if len(list) != len(c.want) {
			t.Errorf("%s: %d problems, want %d: %v", c.name, len(list), len(c.want), err)
			continue
		}
		for i, w := range c.want {
			if !strings.HasPrefix(list[i].Error(), w) {
				t.Errorf("%s: problem %d: %q, want it to start with %q", c.name, i+1, list[i], w)
			}
		}
	}
	// Each key once is fine.
	if _, err := ParseConfig([]byte("pools:\n  - name: a\n    max: 1\n  - name: b\n    max: 1\n")); err != nil {
		t.Errorf("a valid config refused: %v", err)
	}
}

// TestDuplicatePoolNameBesideOtherProblems: a duplicate name is reported
// even when one of the two pools (or both) has another problem.
func TestDuplicatePoolNameBesideOtherProblems(t *testing.T) {
	t.Parallel()
	doc := `pools:
  - name: search
    max: 0
  - name: search
    remote_address: 10.0.0.300
    max: 4
  - name: db
    max: 1
  - name: db
    max: 2
`
	_, err := ParseConfig([]byte(doc))
	var list ConfigErrors
	if !errors.As(err, &list) {
		t.Fatalf("got %v, want ConfigErrors", err)
	}
	want := []string{
		`3: pool "search": max "0": must be a whole number greater than 0`,
		`5: pool "search": remote_address "10.0.0.300": not an IP address or CIDR`,
		`4: pool "search": name: duplicate of the pool on line 2`,
		`9: pool "db": name: duplicate of the pool on line 7`,
	}
	if len(list) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(list), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(list[i].Error(), w) {
			t.Errorf("problem %d: %q, want it to start with %q", i+1, list[i], w)
		}
	}
}
