package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Range queries cover the last minute, one point per rangeStep, as a
// dashboard opened on "Last 1 minute" would.
const (
	rangeOver = time.Minute
	rangeStep = 2 * time.Second
)

// builtinVariables are Grafana's interval variables, as Grafana would set
// them for a one-minute range with a 1 s scrape interval:
// $__rate_interval is max($__interval + scrape interval, 4 × scrape interval).
var builtinVariables = map[string]string{
	"__interval":      "2s",
	"__interval_ms":   "2000",
	"__rate_interval": "4s",
	"__range":         "1m",
	"__range_s":       "60",
	"__range_ms":      "60000",
}

// mayBeEmpty lists, by "file: panel title", the panels allowed to return no
// series at all, each with the reason. It is empty: every family the
// dashboards read is exported with all its series even when they are 0
// (unresolved sockets, truncated series and queue bytes by state, pools
// with all 11 states), and the panels that count ("Pools saturated",
// "Failing collectors"...) end in `or vector(0)`. A panel added that can be
// legitimately empty goes here with its reason; an entry whose panel no
// longer exists fails the test.
var mayBeEmpty = map[string]string{
	"tcpstate-overview.json: Ephemeral ports held per destination (of usable)":        portsReplayReason,
	"tcpstate-drilldown.json: Ephemeral ports held toward each destination vs usable": portsReplayReason,
	"tcpstate-overview.json: Orphans by peer (top 10)":                                hostLimitsReason,
}

// hostLimitsReason is why the orphan and listen-drop panels may be empty
// or 0 here: the held sockets make no orphan and no listener drops.
// TestHostLimitsReplay (make hostlimits-replay) drives both for real.
const hostLimitsReason = "the held sockets make no orphan and no listener drops; the host-limits replay drives both"

// portsReplayReason is why the ephemeral-port and accept-queue panels may
// be empty or 0 here: the held sockets use few ports per destination and
// fill no accept queue. TestIncidentPortsAndBacklog (make incident) runs
// them against its own Prometheus while both are near their limits.
const portsReplayReason = "no destination holds 1% of the host's ephemeral ports and no accept queue fills here; the ports replay checks these panels with data"

// unresolvedReason is why the unresolved-socket panels may read 0.
const unresolvedReason = "0 when the exporter (root here) finds every socket's owner; a host may also hold sockets whose owner no process shows"

// mayBeZero lists the panels whose value may be 0 in every series while the
// test's sockets are held, with the reason. Every other panel must show a
// value above 0 for each of its queries: the held CLOSE_WAIT and
// established sockets, the full pool and the healthy exporter make them so.
var mayBeZero = map[string]string{
	"tcpstate-overview.json: Unresolved sockets (all selected hosts)":         unresolvedReason,
	"tcpstate-overview.json: Unresolved sockets by state":                     unresolvedReason,
	"tcpstate-drilldown.json: Unresolved sockets on the host":                 unresolvedReason,
	"tcpstate-overview.json: Failing collectors (all selected hosts)":         "every collector succeeds",
	"tcpstate-overview.json: Truncated families (all selected hosts)":         "far fewer series than --collector.max-series",
	"tcpstate-overview.json: Series truncated":                                "far fewer series than --collector.max-series",
	"tcpstate-overview.json: Transmit queue bytes by state":                   "the held sockets have nothing unacknowledged; other sockets on the host may have none either",
	"tcpstate-drilldown.json: Transmit queue bytes in CLOSE_WAIT":             "the client sent nothing unacknowledged on the held sockets",
	"tcpstate-overview.json: Accept queue fill by listening port":             portsReplayReason,
	"tcpstate-drilldown.json: Accept queue length vs limit by listening port": portsReplayReason,
	"tcpstate-overview.json: Listen drops per second by port":                 hostLimitsReason,
	"tcpstate-overview.json: Orphans vs tcp_max_orphans":                      hostLimitsReason,
	"tcpstate-drilldown.json: Orphans and listen drops on the host":           hostLimitsReason,
	"tcpstate-overview.json: TCP memory vs tcp_mem thresholds":                hostMemoryReason,
	"tcpstate-drilldown.json: TCP memory of $process vs the host's":           hostMemoryReason,
}

// hostMemoryReason: the kernel counts the host's TCP memory in whole pages
// of queued data; on an idle host (CI alone on its machine) it is 0, and
// the test's held sockets queue nothing (make hostlimits-replay drives it
// to tcp_mem's thresholds).
const hostMemoryReason = "the host's TCP memory is 0 pages while nothing is queued"

// dashboardValues are the values the template variables take in the
// "selected" pass: the test's job, exporter, client process, its network
// namespace and pool; and, for the dashboards rendered with
// showMultiCluster (the fleet test), the cluster.
type dashboardValues struct {
	job, instance, process, netns, pool, cluster string
}

// dashboard is the part of a dashboard's JSON the test reads.
type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // of a collapsed row
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// panelQuery is one target of one panel.
type panelQuery struct {
	panel string // "file: title", the key of mayBeEmpty and mayBeZero
	refID string
	expr  string
}

func readDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	return readDashboardsFrom(t, dashboardGlob)
}

// readDashboardsFrom reads the dashboards the glob names.
func readDashboardsFrom(t *testing.T, glob string) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards at %s (%v)", glob, err)
	}
	out := map[string]dashboard{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// panelQueries lists every target with an expression, rows' nested panels
// included, and fails on two panels of a dashboard with the same title
// (the lists above name panels by title).
func panelQueries(t *testing.T, file string, d dashboard) []panelQuery {
	t.Helper()
	var out []panelQuery
	titles := map[string]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			key := file + ": " + p.Title
			if titles[key] {
				t.Errorf("%s: two panels titled %q", file, p.Title)
			}
			titles[key] = true
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %d %q has no query", file, p.ID, p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: panel %d %q target %s has no expr", file, p.ID, p.Title, tg.RefID)
					continue
				}
				out = append(out, panelQuery{panel: key, refID: tg.RefID, expr: tg.Expr})
			}
		}
	}
	walk(d.Panels)
	return out
}

// variableRef matches $name, ${name}, ${name:format} and [[name]].
var variableRef = regexp.MustCompile(`\$\{(\w+)(?::[\w]+)?\}|\[\[(\w+)\]\]|\$(\w+)`)

// substitute replaces the template variables in expr by values (a regexp
// for =~ matchers), and the interval variables by durations. It fails on a
// variable it does not know.
func substitute(expr string, values map[string]string) (string, error) {
	var unknown []string
	out := variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		if v, ok := builtinVariables[name]; ok {
			return v
		}
		if v, ok := values[name]; ok {
			return v
		}
		unknown = append(unknown, ref)
		return ref
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown variables %v", unknown)
	}
	return out, nil
}

// promRegexp quotes a value as Grafana does for a =~ matcher, inside a
// PromQL double-quoted string.
func promRegexp(v string) string {
	return strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
}

// passes are the variable values each query runs with: every variable on
// "All" (Grafana's allValue .*), and the test's own job, host, process and
// pool selected.
func passes(v dashboardValues) map[string]map[string]string {
	p := map[string]map[string]string{
		"all": {"job": ".*", "instance": ".*", "process": ".*", "netns": ".*", "pool": ".*"},
		"selected": {
			"job": promRegexp(v.job), "instance": promRegexp(v.instance),
			"process": promRegexp(v.process), "netns": promRegexp(v.netns), "pool": promRegexp(v.pool),
		},
	}
	if v.cluster != "" {
		p["all"]["cluster"], p["selected"]["cluster"] = ".*", promRegexp(v.cluster)
	}
	return p
}

// checkDashboards runs every panel query of every dashboard, instant and
// over the last minute, with both sets of variable values, and requires
// each to succeed without warnings, return data, and (unless listed in
// mayBeZero) a value above 0. It also runs the template variables' own
// queries and requires them to offer the test's values.
func checkDashboards(t *testing.T, prom *process, v dashboardValues) {
	seen := map[string]bool{}
	queries := 0
	for file, d := range readDashboards(t) {
		t.Run(file, func(t *testing.T) {
			checkVariables(t, prom, d, v)
			for _, q := range panelQueries(t, file, d) {
				seen[q.panel] = true
				for pass, values := range passes(v) {
					expr, err := substitute(q.expr, values)
					if err != nil {
						t.Errorf("%s [%s]: %v", q.panel, q.refID, err)
						continue
					}
					queries += 2
					what := fmt.Sprintf("%s [%s], variables %s:\n%s\n", q.panel, q.refID, pass, expr)
					res, warnings, err := instantQuery(prom, expr)
					checkResult(t, "instant query of "+what, q.panel, res, warnings, err)
					res, warnings, err = rangeQuery(prom, expr, rangeOver, rangeStep)
					checkResult(t, "range query of "+what, q.panel, res, warnings, err)
				}
			}
		})
	}
	t.Logf("%d dashboard queries run", queries)
	for _, list := range []map[string]string{mayBeEmpty, mayBeZero} {
		for key := range list {
			if !seen[key] {
				t.Errorf("an exception is listed for panel %q, which no dashboard has: remove it", key)
			}
		}
	}
}

// readResult reports a query that failed, warned or returned something
// unreadable, and returns its samples; ok is false when there are none to
// read.
func readResult(t *testing.T, what string, res queryResult, warnings []string, err error) (ss []series, vals []float64, ok bool) {
	t.Helper()
	if err != nil {
		t.Errorf("%s fails: %v", what, err)
		return nil, nil, false
	}
	if len(warnings) > 0 {
		t.Errorf("%s warns: %v", what, warnings)
	}
	ss, vals, err = res.samples()
	if err != nil {
		t.Errorf("%s: unreadable result: %v", what, err)
		return nil, nil, false
	}
	return ss, vals, true
}

func checkResult(t *testing.T, what, panel string, res queryResult, warnings []string, err error) {
	t.Helper()
	ss, vals, ok := readResult(t, what, res, warnings, err)
	if !ok {
		return
	}
	if len(ss) == 0 || len(vals) == 0 {
		if _, ok := mayBeEmpty[panel]; !ok {
			t.Errorf("%s returns no data", what)
		}
		return
	}
	if slices.Max(vals) <= 0 {
		if _, ok := mayBeZero[panel]; !ok {
			t.Errorf("%s returns only values <= 0 (%d series) while the test's sockets are held", what, len(ss))
		}
	}
}

// labelValuesQuery matches Grafana's label_values(label) and
// label_values(selector, label).
var labelValuesQuery = regexp.MustCompile(`^\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*$`)

// checkVariables runs each template variable's query the way Grafana does
// (the label values API) and requires the test's value among the answers.
func checkVariables(t *testing.T, prom *process, d dashboard, v dashboardValues) {
	t.Helper()
	want := map[string]string{"job": v.job, "instance": v.instance, "process": v.process, "netns": v.netns, "pool": v.pool}
	if v.cluster != "" {
		want["cluster"] = v.cluster
	}
	selected := passes(v)["selected"]
	for _, variable := range d.Templating.List {
		switch variable.Type {
		case "datasource":
			continue // picks a data source, queries nothing
		case "query":
		default:
			t.Errorf("variable %s: type %q is not checked by this test: teach checkVariables about it", variable.Name, variable.Type)
			continue
		}
		query := queryText(variable.Query)
		m := labelValuesQuery.FindStringSubmatch(query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(...): teach checkVariables about it", variable.Name, query)
			continue
		}
		selector, label := m[1], m[2]
		params := url.Values{}
		if selector != "" {
			s, err := substitute(selector, selected)
			if err != nil {
				t.Errorf("variable %s: %v", variable.Name, err)
				continue
			}
			params.Set("match[]", s)
		}
		r, err := api(prom, "/api/v1/label/"+label+"/values", params)
		if err != nil {
			t.Errorf("variable %s: query %q: %v", variable.Name, query, err)
			continue
		}
		var got []string
		if err := json.Unmarshal(r.Data, &got); err != nil {
			t.Errorf("variable %s: %v", variable.Name, err)
			continue
		}
		w, ok := want[variable.Name]
		if !ok {
			t.Errorf("variable %s: the test has no value for it", variable.Name)
			continue
		}
		if !slices.Contains(got, w) {
			t.Errorf("variable %s: query %q offers %q, not the test's %q", variable.Name, query, got, w)
		}
	}
}

// queryText reads a variable's query, a string or (newer Grafana) an
// object with a query field.
func queryText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(raw, &o)
	return o.Query
}

// TestSubstitute checks the variable substitution the dashboard queries
// rely on; it needs no Prometheus and always runs.
func TestSubstitute(t *testing.T) {
	t.Parallel()
	values := passes(dashboardValues{job: "tcpstate", instance: "127.0.0.1:9951", process: "java", pool: "search-engine"})["selected"]
	got, err := substitute(`rate(x{job=~"$job", instance=~"${instance}", p=~"[[process]]", q=~"${pool:regex}"}[$__rate_interval])`, values)
	want := `rate(x{job=~"tcpstate", instance=~"127\\.0\\.0\\.1:9951", p=~"java", q=~"search-engine"}[4s])`
	if err != nil || got != want {
		t.Errorf("substitute = %q, %v\nwant %q", got, err, want)
	}
	if _, err := substitute(`x{a=~"$nope"}`, values); err == nil {
		t.Error("substitute accepted an unknown variable")
	}
}

// checkReplayPanels runs the queries of the dashboard panels that only the
// replay named by reason fills (mayBeEmpty and mayBeZero say which) and
// requires each to return a value above 0; check, when set, looks further
// at one query's series. It returns how many queries it ran.
func checkReplayPanels(t *testing.T, prom *process, reason string, check func(q panelQuery, expr string, ss []series, vals []float64)) int {
	t.Helper()
	all := passes(dashboardValues{})["all"]
	n := 0
	for file, d := range readDashboards(t) {
		for _, q := range panelQueries(t, file, d) {
			if mayBeEmpty[q.panel] != reason && mayBeZero[q.panel] != reason {
				continue
			}
			expr, err := substitute(q.expr, all)
			if err != nil {
				t.Fatalf("%s [%s]: %v", q.panel, q.refID, err)
			}
			res, warnings, err := instantQuery(prom, expr)
			if err != nil || len(warnings) > 0 {
				t.Errorf("%s [%s]: %v %v", q.panel, q.refID, err, warnings)
				continue
			}
			ss, vals, err := res.samples()
			if err != nil || len(vals) == 0 || slices.Max(vals) <= 0 {
				t.Errorf("%s [%s]: no value above 0 (%v %v %v):\n%s", q.panel, q.refID, ss, vals, err, expr)
				continue
			}
			if check != nil {
				check(q, expr, ss, vals)
			}
			n++
		}
	}
	return n
}
