package config

import (
	"os"
	"testing"
)

func FuzzParseConfig(f *testing.F) {
	for _, p := range []string{"../../testdata/config.yml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	for _, seed := range []string{
		"pools:\n  - name: a\n    max: 1\n",
		"pools:\n  - name: a\n    remote_address: 10.0.0.300/8\n    max: 4\n",
		"pools:\n  - {name: a, process: '(', max: 2}\n",
		"pools: [",
		"pools:\n  - name: a\n    max: 1\n  - name: a\n    max: 1\n",
		"pools:\n  - name: &x a\n    max: *x\n",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		cfg, err := ParseConfig([]byte(doc))
		if err != nil {
			return
		}
		// Whatever is accepted satisfies the documented rules.
		names := map[string]bool{}
		for _, p := range cfg.Pools {
			if p.Name == "" || names[p.Name] || p.Max <= 0 {
				t.Fatalf("accepted an invalid pool %+v from %q", p, doc)
			}
			names[p.Name] = true
		}
	})
}
