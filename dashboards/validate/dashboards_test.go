// Package validate checks the Grafana dashboards in dashboards/ without a
// Grafana server: the foundation SDK's strict schema, unique panel ids,
// defined template variables, and PromQL that names only metrics the
// exporter really exposes (read from the golden exposition file).
//
// It is a module of its own so the exporter's go.mod never needs the SDK.
// Run it with `cd dashboards/validate && go test ./...`. The dashboards and
// the exposition lie outside this module, and `go test` does not recheck
// such files before replaying a cached result: after editing them, or in
// CI, run `go test -count=1 ./...`.
package validate

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

const (
	// expositionEnv overrides where the exporter's exposition is read from.
	expositionEnv = "TCPSTATE_EXPOSITION"
	// defaultExposition is the golden end-to-end output of the exporter.
	defaultExposition = "../../testdata/e2e-output.txt"
	dashboardGlob     = "../*.json"

	// Grafana 10.3 writes schemaVersion 39; older numbers would make
	// Grafana run migrations written for panels we do not use.
	minSchemaVersion = 39
	datasourceRef    = "${datasource}"
	requiredTag      = "tcpstate"
	metricPrefix     = "tcpstate_"
)

// foreignMetrics are the metrics of other exporters a dashboard may read,
// each with why. Panels that read them must still show data without them.
var foreignMetrics = map[string]string{
	"kube_pod_info": "kube-state-metrics: names the pod of a network namespace (tcpstate_netns_info{pod_uid} = kube_pod_info{uid}); the pod panels fall back to netns without it",
}

// podInfoDedup is the one aggregation allowed to drop job and instance: it
// folds kube_pod_info's copies from several kube-state-metrics replicas
// into one series per pod, which then joins each host's namespaces.
const podInfoDedup = "max by (uid, namespace, pod)"

// clusterZeroRE matches what `or vector(0)` becomes under showMultiCluster
// (mixin/lib/promql.libsonnet): a zero for each cluster without data.
func clusterZeroRE(clusterLabel string) *regexp.Regexp {
	l := regexp.QuoteMeta(clusterLabel)
	return regexp.MustCompile(` or on \(` + l + `\) \(0 \* count by \(` + l + `\) \(tcpstate_exporter_build_info\{[^}]*\}\)\)`)
}

// podInfoDedupBy is podInfoDedup in a rendering with showMultiCluster,
// which keeps the cluster label in every aggregation.
func podInfoDedupBy(clusterLabel string) string {
	return "max by (" + clusterLabel + ", uid, namespace, pod)"
}

// requiredVariables are the template variables every dashboard offers, so
// links between dashboards can carry them.
var requiredVariables = []string{"datasource", "job", "instance", "pool", "process"}

// panelTypes are the core Grafana panels these dashboards may use. The SDK
// accepts any type string, so an unknown one is caught here.
var panelTypes = map[string]bool{
	"row": true, "timeseries": true, "table": true, "stat": true,
	"bargauge": true, "gauge": true, "text": true,
}

// ---------------------------------------------------------------------------
// Tests

func TestDashboards(t *testing.T) {
	t.Parallel()
	known := loadExposition(t)
	files, raws, uids := readDashboards(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			for _, p := range checkDashboard(raws[f], known, uids) {
				t.Error(p)
			}
		})
	}
}

// TestChecksCatchMistakes breaks each good dashboard in one way at a time
// and expects checkDashboard to say so: a check that never fails proves
// nothing.
func TestChecksCatchMistakes(t *testing.T) {
	t.Parallel()
	known := loadExposition(t)
	files, raws, uids := readDashboards(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			if p := checkDashboard(raws[f], known, uids); len(p) != 0 {
				t.Fatalf("must be clean before it is broken on purpose (%d problems, listed by TestDashboards)", len(p))
			}
			breakDashboard(t, raws[f], known, uids)
		})
	}
}

func breakDashboard(t *testing.T, good []byte, known map[string]bool, uids map[string]string) {
	firstTarget := func(d map[string]any) map[string]any {
		for _, p := range allPanels(d) {
			if ts, ok := p.panel["targets"].([]any); ok && len(ts) > 0 {
				return ts[0].(map[string]any)
			}
		}
		t.Fatal("no panel with targets")
		return nil
	}
	// perHostTarget is the first query of a panel that must keep hosts apart.
	perHostTarget := func(d map[string]any) map[string]any {
		for _, p := range allPanels(d) {
			title, _ := p.panel["title"].(string)
			if ts, ok := p.panel["targets"].([]any); ok && len(ts) > 0 && !strings.Contains(title, sumsHosts) {
				return ts[0].(map[string]any)
			}
		}
		t.Fatal("no per-host panel with targets")
		return nil
	}
	cases := []struct {
		name   string
		mutate func(d map[string]any)
		want   string
	}{
		{"unknown metric", func(d map[string]any) {
			firstTarget(d)["expr"] = `sum(tcpstate_no_such_metric{job=~"$job"})`
		}, "unknown metric tcpstate_no_such_metric"},
		{"misspelt prefix", func(d map[string]any) {
			firstTarget(d)["expr"] = `sum by (state) (tcpstat_connections)`
		}, "unknown metric tcpstat_connections"},
		{"metric hidden in a __name__ matcher", func(d map[string]any) {
			firstTarget(d)["expr"] = `sum({__name__="tcpstate_gone", job=~"$job"})`
		}, "unknown metric tcpstate_gone"},
		{"broken PromQL", func(d map[string]any) {
			firstTarget(d)["expr"] = `sum(tcpstate_connections{state="close_wait"}`
		}, "unbalanced"},
		{"duplicate id across a row", func(d map[string]any) {
			ps := allPanels(d)
			last := ps[len(ps)-1].panel // nested in the collapsed row of the overview
			last["id"] = ps[0].panel["id"]
		}, "duplicate panel id"},
		{"undefined variable in a query", func(d map[string]any) {
			firstTarget(d)["expr"] = `sum(tcpstate_connections{cluster=~"$cluster"})`
		}, `undefined variable "cluster"`},
		{"undefined variable in a title", func(d map[string]any) {
			allPanels(d)[0].panel["title"] = "Sockets in ${region}"
		}, `undefined variable "region"`},
		{"unknown panel key", func(d map[string]any) {
			allPanels(d)[0].panel["colour"] = "red"
		}, "unexpected field 'colour'"},
		{"wrong type", func(d map[string]any) {
			allPanels(d)[0].panel["gridPos"].(map[string]any)["w"] = "12"
		}, "gridPos"},
		{"unknown panel type", func(d map[string]any) {
			allPanels(d)[0].panel["type"] = "graph"
		}, `unknown panel type "graph"`},
		{"link to a dashboard that does not exist", func(d map[string]any) {
			p := allPanels(d)[0].panel
			p["links"] = []any{map[string]any{
				"title": "x", "type": "link", "url": "/d/nope?${__url_time_range}", "icon": "", "tooltip": "",
				"tags": []any{}, "asDropdown": false, "targetBlank": false, "includeVars": false, "keepTime": false,
			}}
		}, `unknown dashboard uid "nope"`},
		{"old schema", func(d map[string]any) { d["schemaVersion"] = 27 }, "schemaVersion 27"},
		{"hosts added up without saying so", func(d map[string]any) {
			perHostTarget(d)["expr"] = `sum by (remote_port) (tcpstate_remote_port_connections{job=~"$job", instance=~"$instance"})`
		}, "sum by (remote_port) drops job and instance"},
		{"instance kept, job lost", func(d map[string]any) {
			perHostTarget(d)["expr"] = `max by (instance) (tcpstate_connections{job=~"$job", instance=~"$instance"})`
		}, "max by (instance) drops job"},
		{"nested sum of everything", func(d map[string]any) {
			perHostTarget(d)["expr"] = `count(sum by (job, instance, pool) (tcpstate_pool_connections) > 0) or vector(0)`
		}, "count(...) drops job and instance"},
		{"legend without the host", func(d map[string]any) {
			for _, p := range allPanels(d) {
				if p.panel["type"] == "timeseries" {
					p.panel["targets"].([]any)[0].(map[string]any)["legendFormat"] = "{{state}}"
					return
				}
			}
			t.Fatal("no timeseries panel")
		}, `legend "{{state}}" does not name the host`},
		{"missing variable", func(d map[string]any) {
			tl := d["templating"].(map[string]any)
			var kept []any
			for _, v := range tl["list"].([]any) {
				if v.(map[string]any)["name"] != "pool" {
					kept = append(kept, v)
				}
			}
			tl["list"] = kept
		}, `variable "pool" is not defined`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var d map[string]any
			if err := json.Unmarshal(good, &d); err != nil {
				t.Fatal(err)
			}
			c.mutate(d)
			broken, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			problems := checkDashboard(broken, known, uids)
			for _, p := range problems {
				if strings.Contains(p, c.want) {
					return
				}
			}
			t.Errorf("want a problem containing %q, got:\n%s", c.want, strings.Join(problems, "\n"))
		})
	}
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		expr    string
		want    []string
		wantErr string
	}{
		{expr: `tcpstate_connections`, want: []string{"tcpstate_connections"}},
		{expr: `sum by (state) (tcpstate_connections{job=~"$job", state!="listen"})`, want: []string{"tcpstate_connections"}},
		{expr: `sum without (family) (tcpstate_connections)`, want: []string{"tcpstate_connections"}},
		{
			expr: "sum by (job, instance, pool) (tcpstate_pool_connections{state=~\"established|close_wait\"})\n" +
				"/ on (job, instance, pool) group_left (process)\n(tcpstate_pool_max_connections > 0)",
			want: []string{"tcpstate_pool_connections", "tcpstate_pool_max_connections"},
		},
		// Names inside strings and label matchers are values, not metrics.
		{expr: `tcpstate_series_truncated{metric="tcpstate_process_connections"}`, want: []string{"tcpstate_series_truncated"}},
		{expr: `label_replace(tcpstate_connections, "x", 'tcpstate_fake', "state", "(.*)")`, want: []string{"tcpstate_connections"}},
		{expr: "tcpstate_connections{state=`tcpstate_raw`}", want: []string{"tcpstate_connections"}},
		{expr: `{__name__="tcpstate_connections", state="close_wait"}`, want: []string{"tcpstate_connections"}},
		{expr: `{__name__=~"tcpstate_.*"}`, want: nil},
		// Ranges, offsets, numbers and Grafana variables are not metrics.
		{expr: `max_over_time(tcpstate_connections[$__rate_interval] offset 5m) * 1e3 > 0.8`, want: []string{"tcpstate_connections"}},
		{expr: `count(tcpstate_scrape_collector_success == 0) or vector(0)`, want: []string{"tcpstate_scrape_collector_success"}},
		{expr: `topk(5, tcpstate_connections) and ON(job) tcpstate_exporter_build_info`, want: []string{"tcpstate_connections", "tcpstate_exporter_build_info"}},
		{expr: `tcpstate_connections @ end()`, want: []string{"tcpstate_connections"}},
		{expr: `sum(rate(tcpstate_connections[5m:1m])) # tcpstate_in_comment`, want: []string{"tcpstate_connections"}},
		{expr: `sum(x) + Inf - NaN`, want: []string{"x"}},
		{expr: `sum(tcpstate_connections`, wantErr: "unbalanced"},
		{expr: `tcpstate_connections{state="close_wait"`, wantErr: "unterminated"},
		{expr: `tcpstate_connections{state="close_wait}`, wantErr: "unterminated"},
		{expr: `tcpstate_connections; drop`, wantErr: "unexpected character"},
	}
	for _, c := range cases {
		got, err := metricNames(c.expr)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("metricNames(%q) error = %v, want one containing %q", c.expr, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("metricNames(%q): %v", c.expr, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
}

func TestAggregationGroupings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		expr string
		want []string
	}{
		{`sum by (job, instance) (x)`, []string{"sum by (job, instance)"}},
		{`sum(x) by (state)`, []string{"sum by (state)"}},
		{`sum without (family) (x)`, []string{"sum without (family)"}},
		{`count(sum by (job, instance, pool) (x) / on (job, instance, pool) y > 0) or vector(0)`, []string{"count(...)", "sum by (job, instance, pool)"}},
		{`topk(5, x) and on (job) y`, nil},
		{`sort_desc(max by (job, instance, process) (x{a="sum by (b)"}))`, []string{"max by (job, instance, process)"}},
		{`x{job=~"$job"}`, nil},
	}
	for _, c := range cases {
		gs, err := aggregationGroupings(c.expr)
		if err != nil {
			t.Errorf("%q: %v", c.expr, err)
			continue
		}
		var got []string
		for _, g := range gs {
			got = append(got, g.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.expr, got, c.want)
		}
	}
	if lost := (grouping{op: "sum", grouped: true, without: true, labels: []string{"instance"}}).drops(hostLabels); !slices.Equal(lost, []string{"instance"}) {
		t.Errorf("without (instance) drops %q", lost)
	}
}

func TestVariableQueryPromQL(t *testing.T) {
	t.Parallel()
	cases := []struct{ query, want, wantErr string }{
		{query: `label_values(tcpstate_exporter_build_info, job)`, want: `tcpstate_exporter_build_info`},
		{query: `label_values(tcpstate_pool_info{process=~"$process|any", x="a,b"}, pool)`, want: `tcpstate_pool_info{process=~"$process|any", x="a,b"}`},
		{query: `query_result(sum by (pool) (tcpstate_pool_max_connections))`, want: `sum by (pool) (tcpstate_pool_max_connections)`},
		{query: `label_values(job)`, wantErr: "names no metric"},
		{query: `label_values(tcpstate_connections, 1abc)`, wantErr: "label name"},
		{query: `up`, wantErr: "unsupported"},
	}
	for _, c := range cases {
		got, err := variableQueryPromQL(c.query)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("variableQueryPromQL(%q) error = %v, want one containing %q", c.query, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("variableQueryPromQL(%q) = %q, %v; want %q", c.query, got, err, c.want)
		}
	}
}

func TestVariableRefs(t *testing.T) {
	t.Parallel()
	got := variableRefs(`$job ${instance} ${datasource:queryparam} ${__data.fields.pool} [[old]] $__rate_interval 5$ $`)
	want := []string{"job", "instance", "datasource", "__data", "[[old]]", "__rate_interval"}
	if !slices.Equal(got, want) {
		t.Errorf("variableRefs = %q, want %q", got, want)
	}
}

// ---------------------------------------------------------------------------
// Inputs

func loadExposition(t *testing.T) map[string]bool {
	t.Helper()
	path := os.Getenv(expositionEnv)
	if path == "" {
		path = defaultExposition
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("cannot read the exporter's exposition (set %s to override %s): %v", expositionEnv, defaultExposition, err)
	}
	defer f.Close()
	names, err := parseExposition(f, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatalf("%s: no metric names found", path)
	}
	for n := range netlinkOnly {
		names[n] = true
	}
	return names
}

// netlinkOnly are families only the netlink source gives, so the golden
// exposition (read from the procfs fixture tree) cannot show them; the
// end-to-end test runs the panels that use them against a live exporter.
var netlinkOnly = map[string]bool{
	"tcpstate_accept_queue_max_sockets": true, // /proc/net/tcp has no column for the limit
	"tcpstate_listen_drops_total":       true, // nor for a listener's drops
}

var metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// parseExposition returns every metric name in a Prometheus text exposition:
// those announced by # HELP / # TYPE and those of samples.
func parseExposition(f *os.File, path string) (map[string]bool, error) {
	names := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		var name string
		switch {
		case text == "":
			continue
		case strings.HasPrefix(text, "#"):
			fields := strings.Fields(text)
			if len(fields) < 3 || (fields[1] != "HELP" && fields[1] != "TYPE") {
				continue // a plain comment
			}
			name = fields[2]
		default:
			end := strings.IndexAny(text, "{ \t")
			if end < 0 {
				return nil, fmt.Errorf("%s:%d: sample without a value: %q", path, line, text)
			}
			name = text[:end]
		}
		if !metricNameRE.MatchString(name) {
			return nil, fmt.Errorf("%s:%d: invalid metric name %q", path, line, name)
		}
		names[name] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return names, nil
}

// readDashboards reads every dashboard and maps each uid to its file, so
// that links between the dashboards can be checked.
func readDashboards(t *testing.T) (files []string, raws map[string][]byte, uids map[string]string) {
	t.Helper()
	files, err := filepath.Glob(dashboardGlob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no dashboards match %s", dashboardGlob)
	}
	sort.Strings(files)
	raws = make(map[string][]byte, len(files))
	uids = map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		raws[f] = raw
		var head struct {
			UID string `json:"uid"`
		}
		if json.Unmarshal(raw, &head) != nil || head.UID == "" {
			continue // checkDashboard reports it
		}
		if other, dup := uids[head.UID]; dup {
			t.Errorf("%s and %s share uid %q", other, f, head.UID)
		}
		uids[head.UID] = f
	}
	return files, raws, uids
}

// ---------------------------------------------------------------------------
// The checks

// checkDashboard returns every problem found in one dashboard, each naming
// where it is. uids maps the uid of every dashboard in the set to its file,
// so links between dashboards can be checked.
func checkDashboard(raw []byte, known map[string]bool, uids map[string]string) []string {
	return checkRendering(raw, known, uids, "")
}

// checkRendering is checkDashboard for a rendering of the mixin with
// showMultiCluster and clusterLabel (clusterLabel ""; the defaults): it
// also requires the cluster variable, and lets the pod look-up keep the
// cluster label beside the pod's.
func checkRendering(raw []byte, known map[string]bool, uids map[string]string, clusterLabel string) []string {
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		return []string{fmt.Sprintf("not valid JSON: %v", err)}
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	problems = append(problems, sdkProblems(raw)...)

	var d map[string]any
	if err := json.Unmarshal(raw, &d); err != nil {
		add("dashboard is not a JSON object: %v", err)
		return problems
	}

	// Metadata.
	if uid, _ := d["uid"].(string); !regexp.MustCompile(`^[a-zA-Z0-9_-]{1,40}$`).MatchString(uid) {
		add("uid %q must be 1-40 letters, digits, - or _ and never change", uid)
	}
	if title, _ := d["title"].(string); strings.TrimSpace(title) == "" {
		add("dashboard has no title")
	}
	if tags, _ := d["tags"].([]any); !slices.Contains(tags, any(requiredTag)) {
		add("tags %v must contain %q", tags, requiredTag)
	}
	if sv, _ := d["schemaVersion"].(float64); sv < minSchemaVersion {
		add("schemaVersion %v is older than %d", d["schemaVersion"], minSchemaVersion)
	}

	// Template variables.
	defined := map[string]bool{}
	tl, _ := d["templating"].(map[string]any)
	vars, _ := tl["list"].([]any)
	for i, raw := range vars {
		v, _ := raw.(map[string]any)
		name, _ := v["name"].(string)
		where := fmt.Sprintf("templating.list[%d] %q", i, name)
		if defined[name] {
			add("%s: variable defined twice", where)
		}
		defined[name] = true
		switch v["type"] {
		case "datasource":
			if v["query"] != "prometheus" {
				add("%s: datasource variable must list prometheus data sources, got %v", where, v["query"])
			}
		case "query":
			if ds, _ := v["datasource"].(map[string]any); ds["uid"] != datasourceRef {
				add("%s: datasource must be %s, got %v", where, datasourceRef, v["datasource"])
			}
			q, ok := v["query"].(string)
			if !ok {
				add("%s: query must be a label_values(...) string", where)
				continue
			}
			expr, err := variableQueryPromQL(q)
			if err != nil {
				add("%s: %v", where, err)
				continue
			}
			problems = append(problems, checkPromQL(where+" query", expr, known)...)
		}
	}
	required := requiredVariables
	if clusterLabel != "" {
		required = append(slices.Clone(required), "cluster")
	}
	for _, name := range required {
		if !defined[name] {
			add("variable %q is not defined in templating", name)
		}
	}

	// Panels, including those nested in rows.
	ids := map[float64]string{}
	for _, p := range allPanels(d) {
		panel := p.panel
		title, _ := panel["title"].(string)
		typ, _ := panel["type"].(string)
		where := fmt.Sprintf("%s (%q)", p.path, title)
		id, ok := panel["id"].(float64)
		switch {
		case !ok:
			add("%s: panel has no numeric id", where)
		case ids[id] != "":
			add("%s: duplicate panel id %v, also used by %s", where, id, ids[id])
		default:
			ids[id] = where
		}
		if !panelTypes[typ] {
			add("%s: unknown panel type %q", where, typ)
		}
		if strings.TrimSpace(title) == "" {
			add("%s: panel has no title", where)
		}
		if typ != "row" {
			if desc, _ := panel["description"].(string); strings.TrimSpace(desc) == "" {
				add("%s: panel has no description for the on-call engineer", where)
			}
		}
		if pos, ok := panel["gridPos"].(map[string]any); ok {
			x, _ := pos["x"].(float64)
			w, _ := pos["w"].(float64)
			if w < 1 || x+w > 24 {
				add("%s: gridPos x=%v w=%v does not fit the 24-column grid", where, x, w)
			}
		} else {
			add("%s: panel has no gridPos", where)
		}
		targets, _ := panel["targets"].([]any)
		if len(targets) > 0 {
			if ds, _ := panel["datasource"].(map[string]any); ds["uid"] != datasourceRef || ds["type"] != "prometheus" {
				add("%s: panel datasource must be {type: prometheus, uid: %s}, got %v", where, datasourceRef, panel["datasource"])
			}
		}
		refIDs := map[string]bool{}
		for i, rawT := range targets {
			tg, _ := rawT.(map[string]any)
			twhere := fmt.Sprintf("%s.targets[%d]", where, i)
			ref, _ := tg["refId"].(string)
			if ref == "" || refIDs[ref] {
				add("%s: refId %q is missing or repeated", twhere, ref)
			}
			refIDs[ref] = true
			if ds, ok := tg["datasource"].(map[string]any); ok && ds["uid"] != datasourceRef {
				add("%s: target datasource must be %s, got %v", twhere, datasourceRef, ds["uid"])
			}
			expr, _ := tg["expr"].(string)
			if strings.TrimSpace(expr) == "" {
				add("%s: empty expr", twhere)
				continue
			}
			problems = append(problems, checkPromQL(twhere, expr, known)...)
			problems = append(problems, checkPerHost(twhere, title, typ, expr, tg["legendFormat"], clusterLabel)...)
		}
	}

	// Every string may reference variables: queries, titles, legends, links.
	walkStrings(d, "", func(path, s string) {
		for _, ref := range variableRefs(s) {
			switch {
			case strings.HasPrefix(ref, "[["):
				add("%s: deprecated variable syntax %s, use ${...}", path, ref)
			case strings.HasPrefix(ref, "__"):
				// Grafana's built-ins: __interval, __url_time_range, __data, __field, __all ...
			case !defined[ref]:
				add("%s: undefined variable %q in %q", path, ref, s)
			}
		}
		if strings.HasSuffix(path, ".url") {
			if m := dashLinkRE.FindStringSubmatch(s); m != nil && uids[m[1]] == "" {
				add("%s: link to unknown dashboard uid %q", path, m[1])
			}
		}
	})
	return problems
}

var dashLinkRE = regexp.MustCompile(`^/d/([^/?#]+)`)

// sumsHosts is what a panel's title says when the panel adds up every
// selected host on purpose. Every other panel keeps the hosts apart: an
// engineer must see which host leaks, and $instance defaults to All.
const sumsHosts = "all selected hosts"

// hostLabels are the labels that tell hosts apart.
var hostLabels = []string{"job", "instance"}

// checkPerHost requires every aggregation of a query to keep job and
// instance, and every legend to name the instance, unless the panel's
// title says it sums hosts. Tables show the labels as columns.
func checkPerHost(where, title, typ, expr string, legendFormat any, clusterLabel string) []string {
	if strings.Contains(title, sumsHosts) {
		return nil
	}
	var out []string
	if clusterLabel != "" {
		// The zero a query falls back to, one per cluster, counts exporters
		// to find the clusters and adds up nothing.
		expr = clusterZeroRE(clusterLabel).ReplaceAllString(expr, "")
	}
	groupings, err := aggregationGroupings(expr)
	if err != nil {
		return nil // checkPromQL reports it
	}
	for _, g := range groupings {
		if lost := g.drops(hostLabels); len(lost) > 0 && g.String() != podInfoDedup && g.String() != podInfoDedupBy(clusterLabel) {
			out = append(out, fmt.Sprintf("%s: %s drops %s, so hosts are added up: aggregate by (job, instance, ...) or say %q in the title",
				where, g, strings.Join(lost, " and "), sumsHosts))
		}
	}
	legend, _ := legendFormat.(string)
	if typ != "table" && legend != "" && legend != "__auto" && !strings.Contains(legend, "{{instance}}") {
		out = append(out, fmt.Sprintf("%s: legend %q does not name the host: add {{instance}}", where, legend))
	}
	return out
}

// grouping is one aggregation of a PromQL expression and its label list.
type grouping struct {
	op      string
	without bool     // "without (...)" rather than "by (...)"
	labels  []string // nil with neither: everything is aggregated away
	grouped bool     // by or without was given
}

func (g grouping) String() string {
	switch {
	case !g.grouped:
		return g.op + "(...)"
	case g.without:
		return fmt.Sprintf("%s without (%s)", g.op, strings.Join(g.labels, ", "))
	}
	return fmt.Sprintf("%s by (%s)", g.op, strings.Join(g.labels, ", "))
}

// drops returns which of the wanted labels the aggregation removes.
func (g grouping) drops(wanted []string) []string {
	var lost []string
	for _, w := range wanted {
		in := slices.Contains(g.labels, w)
		if (g.without && in) || (!g.without && !in) {
			lost = append(lost, w)
		}
	}
	return lost
}

// selectingAggregations pick series without merging their labels.
var selectingAggregations = map[string]bool{"topk": true, "bottomk": true, "limitk": true, "limit_ratio": true}

// aggregationGroupings lists the label-merging aggregations of expr with
// their by/without lists, in either position: "sum by (a) (x)" and
// "sum (x) by (a)".
func aggregationGroupings(expr string) ([]grouping, error) {
	lx := &promLexer{s: expr}
	var out []grouping
	labelList := func() ([]string, error) {
		lx.skipSpace()
		start := lx.pos
		if err := lx.skipUntil('(', ')'); err != nil {
			return nil, err
		}
		var labels []string
		for _, l := range strings.Split(lx.s[start+1:lx.pos-1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
		return labels, nil
	}
	modifier := func(g *grouping) error {
		save := lx.pos
		lx.skipSpace()
		if lx.eof() || !isIdentStart(lx.peek()) {
			lx.pos = save
			return nil
		}
		word := strings.ToLower(lx.ident())
		if word != "by" && word != "without" {
			lx.pos = save
			return nil
		}
		labels, err := labelList()
		g.grouped, g.without, g.labels = true, word == "without", labels
		return err
	}
	for {
		lx.skipSpace()
		if lx.eof() {
			return out, nil
		}
		c := lx.peek()
		switch {
		case c == '"' || c == '\'' || c == '`':
			if _, err := lx.str(); err != nil {
				return nil, err
			}
		case c == '{':
			if _, err := lx.matchers(); err != nil {
				return nil, err
			}
		case c == '$':
			lx.variable()
		case isIdentStart(c):
			word := strings.ToLower(lx.ident())
			if !aggregations[word] || selectingAggregations[word] {
				if groupingKeywords[word] && lx.nextSignificant() == '(' {
					// on (...), ignoring (...), group_left (...): label lists
					// of binary operators, not aggregations.
					lx.skipSpace()
					if err := lx.skipUntil('(', ')'); err != nil {
						return nil, err
					}
				}
				continue
			}
			g := grouping{op: word}
			if err := modifier(&g); err != nil {
				return nil, err
			}
			if !g.grouped && lx.nextSignificant() == '(' {
				// The argument comes first: look for a trailing by/without
				// after it, then come back to read inside it.
				lx.skipSpace()
				argStart := lx.pos
				if err := lx.skipUntil('(', ')'); err != nil {
					return nil, err
				}
				if err := modifier(&g); err != nil {
					return nil, err
				}
				lx.pos = argStart + 1
			}
			out = append(out, g)
		default:
			lx.pos++
		}
	}
}

var registerPlugins sync.Once

// sdkProblems runs the Grafana foundation SDK's strict unmarshalling and
// validation. Both return a typed-nil cog.BuildErrors on success, so an
// empty list, not a nil error, means success.
func sdkProblems(raw []byte) []string {
	registerPlugins.Do(plugins.RegisterDefaultPlugins)
	var d dashboard.Dashboard
	if problems := buildErrors("strict unmarshal", d.UnmarshalJSONStrict(raw)); len(problems) > 0 {
		return problems
	}
	return buildErrors("validate", d.Validate())
}

func buildErrors(stage string, err error) []string {
	if err == nil {
		return nil
	}
	var list cog.BuildErrors
	if errors.As(err, &list) {
		out := make([]string, 0, len(list))
		for _, e := range list {
			out = append(out, fmt.Sprintf("sdk %s: %v", stage, e))
		}
		return out
	}
	return []string{fmt.Sprintf("sdk %s: %v", stage, err)}
}

func checkPromQL(where, expr string, known map[string]bool) []string {
	names, err := metricNames(expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v in %q", where, err, expr)}
	}
	if len(names) == 0 {
		return []string{fmt.Sprintf("%s: query names no metric: %q", where, expr)}
	}
	var problems []string
	for _, n := range names {
		switch {
		case foreignMetrics[n] != "":
		case !strings.HasPrefix(n, metricPrefix):
			problems = append(problems, fmt.Sprintf("%s: unknown metric %s: dashboards use only the exporter's %s* metrics", where, n, metricPrefix))
		case !known[n]:
			problems = append(problems, fmt.Sprintf("%s: unknown metric %s: the exporter does not expose it", where, n))
		}
	}
	return problems
}

type located struct {
	path  string
	panel map[string]any
}

// allPanels lists the panels of a dashboard in order, rows' nested panels
// right after their row.
func allPanels(d map[string]any) []located {
	var out []located
	var walk func(list []any, prefix string)
	walk = func(list []any, prefix string) {
		for i, raw := range list {
			p, ok := raw.(map[string]any)
			if !ok {
				continue
			}
			path := fmt.Sprintf("%spanels[%d]", prefix, i)
			out = append(out, located{path, p})
			if nested, ok := p["panels"].([]any); ok {
				walk(nested, path+".")
			}
		}
	}
	top, _ := d["panels"].([]any)
	walk(top, "")
	return out
}

func walkStrings(v any, path string, fn func(path, s string)) {
	switch v := v.(type) {
	case string:
		fn(path, v)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			walkStrings(v[k], p, fn)
		}
	case []any:
		for i, e := range v {
			walkStrings(e, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

var variableRefRE = regexp.MustCompile(`\$\{([^}]*)\}|\$([A-Za-z0-9_]+)|(\[\[[^\]]*\]\])`)

// variableRefs returns the names of the Grafana variables a string uses:
// $name, ${name}, ${name:format}, ${name.field} and the deprecated [[name]]
// (returned with its brackets so it can be reported).
func variableRefs(s string) []string {
	var out []string
	for _, m := range variableRefRE.FindAllStringSubmatch(s, -1) {
		switch {
		case m[1] != "":
			name := m[1]
			if i := strings.IndexAny(name, ":."); i >= 0 {
				name = name[:i]
			}
			out = append(out, name)
		case m[2] != "":
			out = append(out, m[2])
		case m[3] != "":
			out = append(out, m[3])
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Grafana variable queries

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// variableQueryPromQL returns the PromQL inside a Prometheus variable query:
// the selector of label_values(selector, label), or the expression of
// query_result(expr).
func variableQueryPromQL(q string) (string, error) {
	q = strings.TrimSpace(q)
	for _, fn := range []string{"label_values", "query_result"} {
		if !strings.HasPrefix(q, fn+"(") || !strings.HasSuffix(q, ")") {
			continue
		}
		inner := strings.TrimSpace(q[len(fn)+1 : len(q)-1])
		if fn == "query_result" {
			return inner, nil
		}
		comma := lastTopLevelComma(inner)
		if comma < 0 {
			return "", fmt.Errorf("label_values(%s) names no metric: every variable query must select an exporter metric", inner)
		}
		label := strings.TrimSpace(inner[comma+1:])
		if !labelNameRE.MatchString(label) {
			return "", fmt.Errorf("label_values: %q is not a label name", label)
		}
		return strings.TrimSpace(inner[:comma]), nil
	}
	return "", fmt.Errorf("unsupported variable query %q: use label_values(selector, label) or query_result(expr)", q)
}

// lastTopLevelComma finds the comma that separates label_values' arguments,
// ignoring commas inside braces, parentheses and strings.
func lastTopLevelComma(s string) int {
	depth, last := 0, -1
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '{' || c == '(' || c == '[':
			depth++
		case c == '}' || c == ')' || c == ']':
			depth--
		case c == ',' && depth == 0:
			last = i
		}
	}
	return last
}

// ---------------------------------------------------------------------------
// PromQL metric names

// Words that are part of PromQL's grammar, never metric names.
var promKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "inf": true, "nan": true, "atan2": true,
}

// Keywords followed by a parenthesised list of label names.
var groupingKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true,
}

// Aggregation operators, which may take "by (...)" before their argument.
var aggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true,
	"stddev": true, "stdvar": true, "count": true, "count_values": true,
	"bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

// metricNames returns, in order of first use, the metric names a PromQL
// expression selects: bare identifiers that are not functions, aggregations
// or keywords, plus the value of any __name__="..." matcher. Label values,
// strings, label lists after by/on/..., ranges, numbers, comments and
// Grafana variables are skipped. It needs no Prometheus parser, but it
// reports unbalanced brackets and unterminated strings.
func metricNames(expr string) ([]string, error) {
	lx := &promLexer{s: expr}
	var names []string
	seen := map[string]bool{}
	addName := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	parens := 0
	for {
		lx.skipSpace()
		if lx.eof() {
			break
		}
		c := lx.peek()
		switch {
		case c == '"' || c == '\'' || c == '`':
			if _, err := lx.str(); err != nil {
				return nil, err
			}
		case c == '{':
			n, err := lx.matchers()
			if err != nil {
				return nil, err
			}
			if n != "" {
				addName(n)
			}
		case c == '[':
			if err := lx.skipUntil('[', ']'); err != nil {
				return nil, err
			}
		case c == '$':
			lx.variable()
		case isDigit(c) || (c == '.' && isDigit(lx.peekAt(1))):
			lx.number()
		case isIdentStart(c):
			word := lx.ident()
			lower := strings.ToLower(word)
			next := lx.nextSignificant()
			switch {
			case groupingKeywords[lower]:
				if next == '(' {
					lx.skipSpace()
					if err := lx.skipUntil('(', ')'); err != nil {
						return nil, err
					}
				}
			case promKeywords[lower]:
			case next == '(':
				// A function call or an aggregation.
			case aggregations[lower] && lx.nextWordIs("by", "without"):
			default:
				addName(word)
			}
		case c == '(':
			parens++
			lx.pos++
		case c == ')':
			parens--
			if parens < 0 {
				return nil, fmt.Errorf("unbalanced ')' at offset %d", lx.pos)
			}
			lx.pos++
		case c == '}' || c == ']':
			return nil, fmt.Errorf("unbalanced %q at offset %d", c, lx.pos)
		case strings.IndexByte("+-*/%^=!<>,@:", c) >= 0:
			lx.pos++
		default:
			return nil, fmt.Errorf("unexpected character %q at offset %d", c, lx.pos)
		}
	}
	if parens != 0 {
		return nil, fmt.Errorf("unbalanced parentheses: %d left open", parens)
	}
	return names, nil
}

type promLexer struct {
	s   string
	pos int
}

func (l *promLexer) eof() bool  { return l.pos >= len(l.s) }
func (l *promLexer) peek() byte { return l.s[l.pos] }
func (l *promLexer) peekAt(n int) byte {
	if l.pos+n < len(l.s) {
		return l.s[l.pos+n]
	}
	return 0
}

// skipSpace skips blanks and # comments.
func (l *promLexer) skipSpace() {
	for !l.eof() {
		switch c := l.peek(); {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			l.pos++
		case c == '#':
			for !l.eof() && l.peek() != '\n' {
				l.pos++
			}
		default:
			return
		}
	}
}

// nextSignificant returns the next character after blanks without consuming.
func (l *promLexer) nextSignificant() byte {
	save := l.pos
	l.skipSpace()
	var c byte
	if !l.eof() {
		c = l.peek()
	}
	l.pos = save
	return c
}

func (l *promLexer) nextWordIs(words ...string) bool {
	save := l.pos
	defer func() { l.pos = save }()
	l.skipSpace()
	if l.eof() || !isIdentStart(l.peek()) {
		return false
	}
	return slices.Contains(words, strings.ToLower(l.ident()))
}

func (l *promLexer) ident() string {
	start := l.pos
	for !l.eof() && isIdentChar(l.peek()) {
		l.pos++
	}
	return l.s[start:l.pos]
}

// number consumes a number or a duration: 0.8, 1e-3, 0x1f, 5m, 1h30m.
func (l *promLexer) number() {
	start := l.pos
	for !l.eof() {
		c := l.peek()
		exponentSign := (c == '+' || c == '-') && l.pos > start && (l.s[l.pos-1] == 'e' || l.s[l.pos-1] == 'E') &&
			!strings.HasPrefix(strings.ToLower(l.s[start:]), "0x")
		if isIdentChar(c) || c == '.' || exponentSign {
			l.pos++
			continue
		}
		return
	}
}

// variable consumes a Grafana variable: $name or ${...}.
func (l *promLexer) variable() {
	l.pos++ // $
	if !l.eof() && l.peek() == '{' {
		for !l.eof() && l.peek() != '}' {
			l.pos++
		}
		if !l.eof() {
			l.pos++
		}
		return
	}
	l.ident()
}

// str consumes a quoted string and returns its raw content.
func (l *promLexer) str() (string, error) {
	start := l.pos
	quote := l.peek()
	l.pos++
	for !l.eof() {
		c := l.peek()
		switch {
		case c == '\\' && quote != '`':
			l.pos += 2
			continue
		case c == quote:
			l.pos++
			return l.s[start+1 : l.pos-1], nil
		case c == '\n' && quote != '`':
			return "", fmt.Errorf("unterminated string at offset %d", start)
		}
		l.pos++
	}
	return "", fmt.Errorf("unterminated string at offset %d", start)
}

// skipUntil consumes a bracketed section that may nest and hold strings.
func (l *promLexer) skipUntil(open, close byte) error {
	start := l.pos
	depth := 0
	for !l.eof() {
		c := l.peek()
		switch {
		case c == '"' || c == '\'' || c == '`':
			if _, err := l.str(); err != nil {
				return err
			}
			continue
		case c == open:
			depth++
		case c == close:
			depth--
			if depth == 0 {
				l.pos++
				return nil
			}
		}
		l.pos++
	}
	return fmt.Errorf("unterminated %q opened at offset %d (unbalanced)", open, start)
}

// matchers consumes a {label op "value", ...} block and returns the metric
// name an equality matcher on __name__ selects, if any.
func (l *promLexer) matchers() (string, error) {
	start := l.pos
	l.pos++ // {
	var name, label, op string
	for {
		l.skipSpace()
		if l.eof() {
			return "", fmt.Errorf("unterminated label matchers opened at offset %d", start)
		}
		c := l.peek()
		switch {
		case c == '}':
			l.pos++
			return name, nil
		case c == ',':
			l.pos++
			label, op = "", ""
		case isIdentStart(c):
			label = l.ident()
		case c == '=' || c == '!':
			opStart := l.pos
			l.pos++
			if !l.eof() && (l.peek() == '=' || l.peek() == '~') {
				l.pos++
			}
			op = l.s[opStart:l.pos]
		case c == '"' || c == '\'' || c == '`':
			v, err := l.str()
			if err != nil {
				return "", err
			}
			if label == "__name__" && op == "=" {
				name = v
			} else if label == "" && op == "" {
				name = v // Prometheus 3 style {"metric_name", ...}
			}
		case c == '$':
			l.variable()
		default:
			return "", fmt.Errorf("unexpected character %q in label matchers at offset %d", c, l.pos)
		}
	}
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }
