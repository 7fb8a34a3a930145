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
