package validate

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// A site's multi-cluster rendering of the mixin: a cluster label of its own
// name and a selector, so both knobs show where they reach.
const (
	siteClusterLabel = "k8s_cluster"
	siteSelector     = `job="tcpstate"`
	siteConfig       = `{ showMultiCluster: true, clusterLabel: '` + siteClusterLabel + `', tcpstateSelector: '` + siteSelector + `' }`
	// renderDir is the mixin's renderer, a module of its own.
	renderDir = "../../mixin/render"
)

// renderSite renders the dashboards with siteConfig into a folder.
func renderSite(t *testing.T) string {
	t.Helper()
	mixin, err := filepath.Abs("../../mixin")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	render := exec.Command("go", "run", ".", "-mixin", mixin, "-config", siteConfig, "-dashboards", dir)
	render.Dir = renderDir
	if out, err := render.CombinedOutput(); err != nil {
		t.Fatalf("rendering the dashboards with %s: %v\n%s", siteConfig, err, out)
	}
	return dir
}

// TestMultiClusterRendering: with showMultiCluster every dashboard passes
// every check the shipped ones pass, has the cluster variable first after
// the data source, and every query filters by it and keeps the cluster
// label in every aggregation, join and legend (see checkMultiCluster).
func TestMultiClusterRendering(t *testing.T) {
	t.Parallel()
	dir := renderSite(t)
	known := loadExposition(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("the rendering wrote no dashboards (%v)", err)
	}
	raws := map[string][]byte{}
	uids := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raws[f] = raw
		var head struct{ UID string }
		_ = json.Unmarshal(raw, &head)
		uids[head.UID] = f
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			for _, p := range checkRendering(raws[f], known, uids, siteClusterLabel) {
				t.Error(p)
			}
			for _, p := range checkMultiCluster(raws[f], siteClusterLabel, siteSelector) {
				t.Error(p)
			}
		})
	}
}

// TestDefaultsMentionNoCluster: the shipped dashboards (the defaults) have
// no cluster variable, and no query, legend or link names a cluster.
func TestDefaultsMentionNoCluster(t *testing.T) {
	t.Parallel()
	files, raws, _ := readDashboards(t)
	for _, f := range files {
		var d map[string]any
		if err := json.Unmarshal(raws[f], &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		walkStrings(d, "", func(path, s string) {
			if isQueryLegendOrLink(path) && strings.Contains(strings.ToLower(s), "cluster") {
				t.Errorf("%s: %s names a cluster: %q", filepath.Base(f), path, s)
			}
		})
	}
}

// isQueryLegendOrLink reports whether a string at path is a query, a
// variable's name or query, a legend or a link.
func isQueryLegendOrLink(path string) bool {
	for _, suffix := range []string{".expr", ".query", ".definition", ".legendFormat", ".url", ".name"} {
		if strings.HasSuffix(path, suffix) {
			return true
		}
	}
	return false
}

var (
	// metricSelectorRE finds a metric name and, when it has one, the start
	// of its label matchers.
	metricSelectorRE = regexp.MustCompile(`(^|[^a-zA-Z0-9_:"])(tcpstate_[a-zA-Z0-9_]+)(\{[^}]*\})?`)
	onListRE         = regexp.MustCompile(`\bon\s*\(([^)]*)\)`)
)

// checkMultiCluster returns how a rendering with showMultiCluster misses
// the cluster anywhere: the variable, a selector without the site's
// matchers and the cluster filter first, an aggregation or an on (...) that
// drops the cluster label, a fallback to a zero without it, a legend or a
// drill-down link without it, a table that does not place its column.
func checkMultiCluster(raw []byte, label, selector string) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var d map[string]any
	if err := json.Unmarshal(raw, &d); err != nil {
		return []string{err.Error()}
	}
	filter := "{" + selector + ", " + label + `=~"$cluster"`
	checkSelectors := func(where, expr, want string) {
		for _, m := range metricSelectorRE.FindAllStringSubmatch(expr, -1) {
			if !strings.HasPrefix(m[3], want) {
				add("%s: %s%s does not start with %s}: %q", where, m[2], m[3], want, expr)
			}
		}
	}

	tl, _ := d["templating"].(map[string]any)
	vars, _ := tl["list"].([]any)
	for i, raw := range vars {
		v, _ := raw.(map[string]any)
		name, _ := v["name"].(string)
		where := fmt.Sprintf("templating.list[%d] %q", i, name)
		switch {
		case i == 1:
			want := fmt.Sprintf("label_values(tcpstate_exporter_build_info{%s}, %s)", selector, label)
			if name != "cluster" || v["query"] != want || v["multi"] != true || v["includeAll"] != true {
				add("%s: the cluster variable must come right after the data source, multi-select with All, query %q; got %v", where, want, v)
			}
		case v["type"] == "query":
			q, _ := v["query"].(string)
			checkSelectors(where, q, filter)
		}
	}

	for _, p := range allPanels(d) {
		title, _ := p.panel["title"].(string)
		where := fmt.Sprintf("%s (%q)", p.path, title)
		targets, _ := p.panel["targets"].([]any)
		for i, rawT := range targets {
			tg, _ := rawT.(map[string]any)
			twhere := fmt.Sprintf("%s.targets[%d]", where, i)
			expr, _ := tg["expr"].(string)
			checkSelectors(twhere, expr, filter)
			gs, err := aggregationGroupings(expr)
			if err != nil {
				add("%s: %v", twhere, err)
			}
			for _, g := range gs {
				if lost := g.drops([]string{label}); len(lost) > 0 {
					add("%s: %s drops %s: %q", twhere, g, label, expr)
				}
			}
			for _, m := range onListRE.FindAllStringSubmatch(expr, -1) {
				if !slices.Contains(strings.Split(strings.ReplaceAll(m[1], " ", ""), ","), label) {
					add("%s: on (%s) does not match on %s: %q", twhere, m[1], label, expr)
				}
			}
			if strings.Contains(expr, "vector(0)") {
				add("%s: vector(0) is a zero without the %s label: %q", twhere, label, expr)
			}
			if l, _ := tg["legendFormat"].(string); l != "" && l != "__auto" && !strings.Contains(l, "{{"+label+"}}") {
				add("%s: legend %q does not name the %s", twhere, l, label)
			}
		}
	}

	walkStrings(d, "", func(path, s string) {
		if strings.HasSuffix(path, ".url") && strings.HasPrefix(s, "/d/") &&
			!strings.Contains(s, "${cluster:queryparam}") && !strings.Contains(s, "var-cluster=") {
			add("%s: the link %q does not carry the cluster", path, s)
		}
	})
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if order, ok := v["indexByName"].(map[string]any); ok && order["instance"] != nil && order[label] == nil {
				add("a table orders its columns with instance but not %s: %v", label, order)
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(d)
	return problems
}

// TestCheckMultiClusterCatches: checkMultiCluster finds each way a query can
// miss the cluster.
func TestCheckMultiClusterCatches(t *testing.T) {
	t.Parallel()
	dashboard := func(expr, legend string) []byte {
		d := map[string]any{
			"templating": map[string]any{"list": []any{
				map[string]any{"type": "datasource", "name": "datasource"},
				map[string]any{"type": "query", "name": "cluster", "multi": true, "includeAll": true,
					"query": "label_values(tcpstate_exporter_build_info{" + siteSelector + "}, " + siteClusterLabel + ")"},
			}},
			"panels": []any{map[string]any{"type": "timeseries", "title": "p", "targets": []any{
				map[string]any{"expr": expr, "legendFormat": legend},
			}}},
		}
		raw, _ := json.Marshal(d)
		return raw
	}
	sel := `{job="tcpstate", k8s_cluster=~"$cluster", job=~"$job"}`
	good := `sum by (k8s_cluster, job, instance) (tcpstate_connections` + sel + `) / on (k8s_cluster, job, instance) tcpstate_exporter_build_info` + sel
	if p := checkMultiCluster(dashboard(good, "{{k8s_cluster}}/{{instance}}"), siteClusterLabel, siteSelector); len(p) > 0 {
		t.Fatalf("a good query is flagged: %v", p)
	}
	for name, bad := range map[string][2]string{
		"no cluster filter":      {`sum by (k8s_cluster) (tcpstate_connections{job="tcpstate", job=~"$job"})`, "__auto"},
		"no selector":            {`sum by (k8s_cluster) (tcpstate_connections)`, "__auto"},
		"aggregation drops it":   {`sum by (job, instance) (tcpstate_connections` + sel + `)`, "__auto"},
		"bare aggregation":       {`count(tcpstate_connections` + sel + `)`, "__auto"},
		"without drops it":       {`sum without (k8s_cluster) (tcpstate_connections` + sel + `)`, "__auto"},
		"join ignores it":        {`tcpstate_connections` + sel + ` / on (job) tcpstate_exporter_build_info` + sel, "__auto"},
		"labelless zero":         {`sum by (k8s_cluster) (tcpstate_connections` + sel + `) or vector(0)`, "__auto"},
		"legend without cluster": {`sum by (k8s_cluster) (tcpstate_connections` + sel + `)`, "{{instance}}"},
	} {
		if p := checkMultiCluster(dashboard(bad[0], bad[1]), siteClusterLabel, siteSelector); len(p) == 0 {
			t.Errorf("%s: %q (legend %q) passes", name, bad[0], bad[1])
		}
	}
}
