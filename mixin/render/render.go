// Command render writes rules/tcpstate_exporter.rules.yml from the
// tcpstate_exporter monitoring mixin (mixin/mixin.libsonnet): it evaluates
// the mixin with go-jsonnet, lays its rule groups out with
// rulefile.jsonnet, and prints them as YAML for people to read (comments,
// block scalars). With -dashboards it writes the mixin's dashboards
// (dashboards/*.json) instead. Its own module, so the exporter does not
// depend on go-jsonnet.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/google/go-jsonnet"
)

// Options are the _config overrides of one rendering.
type Options struct {
	// Config is a jsonnet object merged into the mixin's _config, e.g.
	// `{ tcpstateSelector: 'job="tcpstate"' }`; empty for none.
	Config string
	// RunbookURLBase, when not empty, replaces _config.runbookURLBase. It is
	// passed as a string, so a URL needs no jsonnet quoting.
	RunbookURLBase string
}

// ruleFile is what rulefile.jsonnet hands on.
type ruleFile struct {
	Header string      `json:"header"`
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	// Group holds the group's fields but its rules.
	Group map[string]any `json:"group"`
	Rules []rule         `json:"rules"`
}

type rule struct {
	Rule    map[string]any `json:"rule"`
	Comment *string        `json:"comment"`
	// Folded holds, per annotation, the lines a description was written
	// in; the writer prints them folded (>-) when they join to its value.
	Folded map[string][]string `json:"folded"`
}

// mixinSnippet is the mixin with the overrides of o applied.
func mixinSnippet(o Options) string {
	s := "(import 'mixin.libsonnet')"
	if o.Config != "" {
		s += " + { _config+:: (" + o.Config + ") }"
	}
	if o.RunbookURLBase != "" {
		s += " + { _config+:: { runbookURLBase: std.extVar('runbookURLBase') } }"
	}
	return s
}

// evaluate evaluates expr, in which mixin stands for the mixin with the
// overrides of o, with mixinDir as the import path, and returns its JSON.
func evaluate(mixinDir string, o Options, expr string) ([]byte, error) {
	abs, err := filepath.Abs(mixinDir)
	if err != nil {
		return nil, err
	}
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{JPaths: []string{abs}})
	if o.RunbookURLBase != "" {
		vm.ExtVar("runbookURLBase", o.RunbookURLBase)
	}
	snippet := "local mixin = " + mixinSnippet(o) + ";\n" + expr
	out, err := vm.EvaluateAnonymousSnippet(filepath.Join(abs, "render.jsonnet"), snippet)
	if err != nil {
		return nil, fmt.Errorf("evaluating the mixin in %s: %w", mixinDir, err)
	}
	return []byte(out), nil
}

// Render returns the rule file the mixin in mixinDir renders to.
func Render(mixinDir string, o Options) ([]byte, error) {
	out, err := evaluate(mixinDir, o, "(import 'render/rulefile.jsonnet')(mixin)")
	if err != nil {
		return nil, err
	}
	var rf ruleFile
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rf); err != nil {
		return nil, fmt.Errorf("reading the layout of render/rulefile.jsonnet: %w", err)
	}
	return writeRuleFile(&rf)
}

// RenderDashboards returns the mixin's dashboards by file name, each as
// indented JSON with a final newline: the files of dashboards/.
func RenderDashboards(mixinDir string, o Options) (map[string][]byte, error) {
	out, err := evaluate(mixinDir, o, "mixin.grafanaDashboards")
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("reading grafanaDashboards: %w", err)
	}
	files := map[string][]byte{}
	for name, d := range raw {
		if filepath.Base(name) != name || filepath.Ext(name) != ".json" {
			return nil, fmt.Errorf("grafanaDashboards: %q is not a file name ending in .json", name)
		}
		var b bytes.Buffer
		if err := json.Indent(&b, d, "", "  "); err != nil {
			return nil, fmt.Errorf("grafanaDashboards[%q]: %w", name, err)
		}
		b.WriteByte('\n')
		files[name] = b.Bytes()
	}
	return files, nil
}
