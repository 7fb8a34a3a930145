package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig("../../testdata/config.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Pools) != 3 {
		t.Fatalf("got %d pools, want 3", len(cfg.Pools))
	}
	p := cfg.Pools[1]
	if p.Name != "search-java-v4" || p.Max != 4 || p.RemotePort != 9000 || p.RemoteAddress != netip.MustParsePrefix("10.1.2.0/24") || p.Process.String() != "^java$" {
		t.Errorf("pool parsed as %+v", p)
	}
	if got := cfg.Pools[2].RemoteAddress; got != netip.MustParsePrefix("2001:db8::10/128") {
		t.Errorf("single address parsed as %v", got)
	}
	if !cfg.NeedsOwners() {
		t.Error("a pool with a process matcher needs the process view")
	}
}

func TestPoolMatches(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig([]byte("pools:\n- {name: a, process: '^java$', remote_address: 10.1.2.0/24, remote_port: 9000, max: 1}\n- {name: b, max: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Pools[0], cfg.Pools[1]
	cases := []struct {
		remote string
		owner  string
		known  bool
		want   bool
	}{
		{"10.1.2.3:9000", "java", true, true},
		{"[::ffff:10.1.2.3]:9000", "java", true, true}, // IPv4-mapped counts as IPv4
		{"10.1.3.3:9000", "java", true, false},
		{"10.1.2.3:9001", "java", true, false},
		{"10.1.2.3:9000", "javac", true, false},
		{"10.1.2.3:9000", "", false, false}, // owner unknown: no process match
	}
	for _, c := range cases {
		if got := a.Matches(ap(c.remote), c.owner, c.known); got != c.want {
			t.Errorf("pool a, %s held by %q: got %v, want %v", c.remote, c.owner, got, c.want)
		}
		if !b.Matches(ap(c.remote), c.owner, c.known) {
			t.Errorf("pool b without matchers must match %s", c.remote)
		}
	}
}

func TestConfigErrorsNameFilePoolAndField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml, want string
	}{
		{"bad CIDR", "pools:\n  - name: search\n    remote_address: 10.0.0.300/8\n    max: 4\n",
			`:3: pool "search": remote_address "10.0.0.300/8": not an IP address or CIDR`},
		{"host bits", "pools:\n  - name: search\n    remote_address: 10.0.0.1/8\n    max: 4\n",
			`:3: pool "search": remote_address "10.0.0.1/8": host bits set in CIDR (did you mean 10.0.0.0/8?)`},
		{"bad regexp", "pools:\n  - name: search\n    process: \"java(\"\n    max: 4\n",
			`:3: pool "search": process "java(": invalid regexp: missing closing )`},
		{"unknown field", "pools:\n  - name: search\n    remote_prot: 9000\n    max: 4\n",
			`:3: pool "search": unknown field "remote_prot"`},
		{"unknown top-level key", "pool:\n  - name: search\n",
			`:1: unknown key "pool"`},
		{"duplicate name", "pools:\n  - name: a\n    max: 1\n  - name: a\n    max: 2\n",
			`:4: pool "a": name: duplicate of the pool on line 2`},
		{"missing max", "pools:\n  - name: a\n    remote_port: 80\n",
			`:2: pool "a": max: missing`},
		{"zero max", "pools:\n  - name: a\n    max: 0\n",
			`:3: pool "a": max "0": must be a whole number greater than 0`},
		{"negative max", "pools:\n  - name: a\n    max: -3\n",
			`pool "a": max "-3": must be a whole number greater than 0`},
		{"fractional max", "pools:\n  - name: a\n    max: 2.5\n",
			`pool "a": max "2.5"`},
		{"missing name", "pools:\n  - max: 3\n",
			`:2: pool #1: name: missing`},
		{"bad port", "pools:\n  - name: a\n    remote_port: 70000\n    max: 3\n",
			`:3: pool "a": remote_port "70000": must be a port number from 1 to 65535`},
		{"port zero", "pools:\n  - name: a\n    remote_port: 0\n    max: 3\n",
			`remote_port "0"`},
		{"pools not a list", "pools: 3\n", `:1: "pools" must be a list`},
		{"pool not a mapping", "pools:\n  - just-a-name\n", `:2: pool #1: must be a mapping`},
		{"list as a value", "pools:\n  - name: a\n    remote_port: [80, 81]\n    max: 3\n", `:3: pool "a": remote_port: must be a single value`},
		{"not YAML", "pools: [\n", "yaml:"},
	}
	dir := t.TempDir()
	for i, c := range cases {
		path := filepath.Join(dir, "config"+string(rune('a'+i))+".yml")
		if err := os.WriteFile(path, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(path)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), path+":") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %q\nwant it to start with %q and contain %q", c.name, err, path+":", c.want)
		}
	}
}

func TestEmptyConfigDeclaresNoPools(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{"", "pools:\n", "pools: []\n", "# nothing\n"} {
		cfg, err := ParseConfig([]byte(doc))
		if err != nil || len(cfg.Pools) != 0 {
			t.Errorf("%q: got %v, %v", doc, cfg, err)
		}
	}
}

func TestMissingConfigFile(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yml") {
		t.Fatalf("got %v", err)
	}
}

func TestConfigReportsEveryBadPool(t *testing.T) {
	t.Parallel()
	doc := `pools:
  - name: search
    remote_address: 10.0.0.300/8
    max: 400
  - name: good
    max: 3
  - name: db
    remote_port: 70000
    max: 10
  - name: good
    max: 4
  - max: 5
`
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	var list ConfigErrors
	if !errors.As(err, &list) {
		t.Fatalf("got %v (%T), want ConfigErrors", err, err)
	}
	want := []string{
		path + `:3: pool "search": remote_address "10.0.0.300/8": not an IP address or CIDR`,
		path + `:8: pool "db": remote_port "70000": must be a port number from 1 to 65535`,
		path + `:10: pool "good": name: duplicate of the pool on line 5`,
		path + `:12: pool #5: name: missing`,
	}
	if len(list) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(list), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(list[i].Error(), w) {
			t.Errorf("problem %d: %q, want it to start with %q", i+1, list[i], w)
		}
	}
	if !strings.Contains(err.Error(), want[0]+"; "+want[1]) {
		t.Errorf("one line for the log should name them all: %q", err)
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
