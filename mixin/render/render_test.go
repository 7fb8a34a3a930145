package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const mixinDir = ".."

// A site's rendering: every kind of knob moved off its default.
var siteOptions = Options{
	Config: `{
		tcpstateSelector: 'job="tcpstate-exporter",cluster!=""',
		poolExhaustedFor: '5m',
		poolFillingUpHorizonHours: 6,
		poolFillingUpNewPoolHorizonMinutes: 45,
		poolCloseWaitHighPercent: 90,
		closeWaitAccumulatingThreshold: 250,
		closeWaitAccumulatingWindow: '30m',
		closeWaitStuckThreshold: 20,
		closeWaitStuckFor: '1h30m',
		exporterStuckAfter: '30m',
		unresolvedSocketsPercent: 25,
		ephemeralPortsExhaustingPercent: 90,
		ephemeralPortsExhaustingFor: '2m',
		acceptQueueFullFor: '30s',
		memoryPressureFor: '20m',
		memoryExhaustedFor: '3m',
		memoryExhaustedPercent: 95,
		orphansHighPercent: 40,
		orphansHighFor: '15m',
		listenDropsWindow: '3m',
		listenDropsFor: '10m',
		processFdsExhaustingHorizonMinutes: 90,
		processFdsExhaustingNewHorizonMinutes: 30,
		processFdsExhaustingFor: '10m',
		processFdsExhaustedFor: '1m',
	}`,
	RunbookURLBase: "https://wiki.example/ops/tcpstate-runbooks.html",
}

type parsedRule struct {
	Record      string            `json:"record"`
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// parse reads a rendered rule file back, strictly, as YAML.
func parse(t *testing.T, data []byte) []parsedRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string       `json:"name"`
			Rules []parsedRule `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		t.Fatalf("the rendered rule file does not read back: %v", err)
	}
	var rules []parsedRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

func render(t *testing.T, o Options) []byte {
	t.Helper()
	data, err := Render(mixinDir, o)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func ruleNamed(t *testing.T, rules []parsedRule, name string) parsedRule {
	t.Helper()
	for _, r := range rules {
		if r.Alert == name || r.Record == name {
			return r
		}
	}
	t.Fatalf("no rule %s in the rendering", name)
	return parsedRule{}
}

// The YAML the writer prints reads back as the mixin's own groups, value
// for value, with the defaults and with a site's overrides.
func TestRuleFileReadsBackAsTheMixin(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]Options{"defaults": {}, "site": siteOptions} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, err := evaluate(mixinDir, o, "{ groups: mixin.prometheusRules.groups + mixin.prometheusAlerts.groups }")
			if err != nil {
				t.Fatal(err)
			}
			var want any
			if err := json.Unmarshal(out, &want); err != nil {
				t.Fatal(err)
			}
			js, err := yaml.YAMLToJSON(render(t, o))
			if err != nil {
				t.Fatal(err)
			}
			var got any
			if err := json.Unmarshal(js, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the rendered file reads back as\n%s\nwant the mixin's\n%s", js, out)
			}
		})
	}
}

// The knobs of _config reach every place that uses them, and the result is
// a rule file promtool accepts.
func TestConfigKnobs(t *testing.T) {
	t.Parallel()
	data := render(t, siteOptions)
	rules := parse(t, data)

	// Every metric selector carries the site's matchers, first.
	metric := regexp.MustCompile(`\btcpstate_[a-z0-9_]+`)
	selectors := 0
	for _, r := range rules {
		for _, loc := range metric.FindAllStringIndex(r.Expr, -1) {
			selectors++
			if rest := r.Expr[loc[1]:]; !strings.HasPrefix(rest, `{job="tcpstate-exporter",cluster!=""`) {
				t.Errorf("%s%s: selector %q lacks the site's matchers", r.Alert, r.Record, r.Expr[loc[0]:])
			}
		}
	}
	if selectors < 30 {
		t.Errorf("found %d metric selectors in the expressions, want the 30 or more of the rule pack", selectors)
	}

	alerts := 0
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		alerts++
		want := siteOptions.RunbookURLBase + "#" + strings.ToLower(r.Alert)
		if got := r.Annotations["runbook_url"]; got != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, got, want)
		}
	}
	if alerts != 18 {
		t.Errorf("%d alerts rendered, want 18", alerts)
	}

	checks := []struct {
		rule, field, want string
	}{
		{"TCPStatePoolExhausted", "for", "5m"},
		{"TCPStatePoolFillingUp", "expr", "[1h], 6 * 3600)"},
		{"TCPStatePoolFillingUp", "description", "fills the pool within 6 hours"},
		{"TCPStatePoolFillingUp", "expr", "[10m], 45 * 60)"},
		{"TCPStatePoolFillingUp", "description", "(45 minutes for a pool watched for less than an hour)"},
		{"TCPStateCloseWaitAccumulating", "expr", `count_over_time(tcpstate_process_remote_connections{job="tcpstate-exporter",cluster!="",state="close_wait"}[30m]) > 1`},
		{"TCPStatePoolCloseWaitHigh", "expr", "0.9 * tcpstate_pool_max_connections{"},
		{"TCPStatePoolCloseWaitHigh", "summary", "is more than 90% dead (CLOSE_WAIT or CLOSE) sockets."},
		{"TCPStatePoolCloseWaitHigh", "description", "above 90% of the pool's maximum"},
		{"TCPStateCloseWaitAccumulating", "expr", `state="close_wait"} > 250`},
		{"TCPStateCloseWaitAccumulating", "expr", `[30m]) >= 0`},
		{"TCPStateCloseWaitAccumulating", "description", "stayed above 250 for 15 minutes"},
		{"TCPStateCloseWaitStuck", "for", "1h30m"},
		{"TCPStateCloseWaitStuck", "expr", `cluster!=""} > 20`},
		{"TCPStateCloseWaitStuck", "description", "more than 20 have been that old for 1 hour 30 minutes."},
		{"TCPStateCloseWaitStuck", "description", "stuck-after (30 minutes unless set otherwise)"},
		{"TCPStateUnresolvedSockets", "expr", "> 0.25 *"},
		{"TCPStateUnresolvedSockets", "description", "more than 25% of them"},
		{"TCPStateEphemeralPortsExhausting", "expr", "0.9 * tcpstate_ephemeral_ports_usable{"},
		{"TCPStateEphemeralPortsExhausting", "for", "2m"},
		{"TCPStateEphemeralPortsExhausting", "description", "at least 90% of the ports connect() can pick, for 2 minutes."},
		{"TCPStateAcceptQueueFull", "for", "30s"},
		{"TCPStateAcceptQueueFull", "description", "queues hold, for 30 seconds."},
		{"TCPStateMemoryPressure", "for", "20m"},
		{"TCPStateMemoryPressure", "description", "for 20 minutes."},
		{"TCPStateMemoryExhausted", "for", "3m"},
		{"TCPStateMemoryExhausted", "expr", `>= ignoring (threshold) 0.95 * tcpstate_memory_limit_bytes{job="tcpstate-exporter",cluster!="",threshold="max"}`},
		{"TCPStateMemoryExhausted", "description", "(95% of it or more:"},
		{"TCPStateOrphansHigh", "expr", ">= 0.4 * tcpstate_orphan_max_sockets{"},
		{"TCPStateOrphansHigh", "summary", "are at 40% of net.ipv4.tcp_max_orphans."},
		{"TCPStateOrphansHigh", "description", "for 15 minutes."},
		{"TCPStateListenDrops", "expr", "[3m]) > 0"},
		{"TCPStateListenDrops", "for", "10m"},
		{"TCPStateListenDrops", "description", "in the last 3 minutes, and have kept dropping for 10 minutes"},
		{"TCPStateProcessFdsExhausting", "expr", "[1h], 90 * 60)"},
		{"TCPStateProcessFdsExhausting", "expr", "[10m], 30 * 60)"},
		{"TCPStateProcessFdsExhausting", "for", "10m"},
		{"TCPStateProcessFdsExhausting", "description", "has grown for 10 minutes at a pace that reaches the limit within 90 minutes (30 minutes for a process"},
		{"TCPStateProcessFdsExhausted", "for", "1m"},
		{"TCPStateProcessFdsExhausted", "description", "open for 1 minute, at its limit"},
	}
	for _, c := range checks {
		r := ruleNamed(t, rules, c.rule)
		got := map[string]string{"for": r.For, "expr": r.Expr, "summary": r.Annotations["summary"], "description": r.Annotations["description"]}[c.field]
		if !strings.Contains(got, c.want) {
			t.Errorf("%s %s = %q, want it to contain %q", c.rule, c.field, got, c.want)
		}
	}

	checkWithPromtool(t, data)
}

// checkWithPromtool runs `promtool check rules` on data with every
// promtool in PROMTOOLS (colon-separated; default: promtool on PATH).
func checkWithPromtool(t *testing.T, data []byte) {
	t.Helper()
	tools := strings.Split(os.Getenv("PROMTOOLS"), ":")
	if os.Getenv("PROMTOOLS") == "" {
		tools = []string{"promtool"}
	}
	file := filepath.Join(t.TempDir(), "site.rules.yml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tool := range tools {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("promtool %q: %v (set PROMTOOLS, or run `make mixin-check`)", tool, err)
		}
		out, err := exec.Command(path, "check", "rules", "--lint=all", "--lint-fatal", file).CombinedOutput()
		if err != nil {
			t.Errorf("%s check rules on the site's rendering: %v\n%s", path, err, out)
		}
	}
}

// A duration the descriptions cannot put in words is refused, naming it.
func TestBadDurationIsRefused(t *testing.T) {
	t.Parallel()
	_, err := Render(mixinDir, Options{Config: `{ poolSaturatedFor: '10 min' }`})
	if err == nil || !strings.Contains(err.Error(), `duration "10 min"`) {
		t.Fatalf("Render with poolSaturatedFor '10 min': error %v, want one naming the duration", err)
	}
}

// The dashboards in dashboards/ are what the mixin renders with its
// defaults, byte for byte, and there is no other: `make mixin` writes them.
func TestDashboardsAreTheFiles(t *testing.T) {
	t.Parallel()
	rendered, err := RenderDashboards(mixinDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(mixinDir, "..", "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		name := filepath.Base(f)
		names = append(names, name)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rendered[name], data) {
			t.Errorf("dashboards/%s is not what the mixin renders: run `make mixin`", name)
		}
	}
	if got := slices.Sorted(maps.Keys(rendered)); len(names) == 0 || !slices.Equal(got, names) {
		t.Errorf("the mixin renders %v, dashboards/ has %v", got, names)
	}
}

// Strings print in the most readable form that reads back as themselves.
func TestWriteString(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		s      string
		folded []string
		style  string // how the value starts after "k:"
	}{
		{"plain", "Pool {{ $labels.pool }} is full, 100% used.", nil, " Pool"},
		{"expression", `tcpstate_series_truncated{job="x"} > 0`, nil, " tcpstate"},
		{"url", "https://wiki.example/runbooks.md#tcpstatepoolexhausted", nil, " https"},
		{"empty", "", nil, ` ""`},
		{"yes", "yes", nil, ` "yes"`},
		{"number", "10", nil, ` "10"`},
		{"base 60", "1:30", nil, ` "1:30"`},
		{"date", "2026-11-30", nil, ` "2026-11-30"`},
		{"colon space", "a: b", nil, ` "a: b"`},
		{"comment", "a #b", nil, ` "a #b"`},
		{"indicator", "{{ $value }} sockets", nil, ` "{{`},
		{"dash", "- x", nil, ` "- x"`},
		{"leading space", " x", nil, ` " x"`},
		{"tab", "a\tb", nil, ` "a\tb"`},
		{"literal", "sum(x)\n  /\ny\n", nil, " |\n"},
		{"literal strip", "a\nb", nil, " |-\n"},
		{"literal keep", "a\nb\n\n", nil, " |+\n"},
		{"literal with an empty line", "a\n\nb\n", nil, " |\n"},
		{"indented first line", "  a\nb\n", nil, ` "  a`},
		{"trailing space in a line", "a \nb\n", nil, ` "a`},
		{"folded", "one two three", []string{"one two", "three"}, " >-\n"},
		{"folded lines that do not join to it", "one two three", []string{"one", "three"}, " one"},
		{"folded with an empty line", "one  two", []string{"one", "", "two"}, " one  two\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := writeMapping(&b, 0, false, map[string]any{"k": c.s}, map[string][]string{"k": c.folded}); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(b.String(), "k:"+c.style) {
				t.Errorf("printed %q, want it to start %q", b.String(), "k:"+c.style)
			}
			var got map[string]string
			if err := yaml.UnmarshalStrict(b.Bytes(), &got); err != nil {
				t.Fatalf("%q does not read back: %v", b.String(), err)
			}
			if got["k"] != c.s {
				t.Errorf("%q reads back as %q, want %q", b.String(), got["k"], c.s)
			}
		})
	}
}

// With showMultiCluster, every alert that names its instance names its
// cluster beside it (instance names repeat from cluster to cluster on a
// global view), through the configured label; with the defaults no alert
// mentions a cluster. The expressions are the same either way: their joins
// match on all labels.
func TestMultiClusterAlerts(t *testing.T) {
	t.Parallel()
	plain := parse(t, render(t, Options{}))
	multi := parse(t, render(t, Options{Config: `{ showMultiCluster: true, clusterLabel: 'k8s_cluster' }`}))
	if len(plain) != len(multi) {
		t.Fatalf("%d rules with the defaults, %d with showMultiCluster", len(plain), len(multi))
	}
	where := "{{ $labels.instance }} in cluster {{ $labels.k8s_cluster }}"
	for i, r := range multi {
		p := plain[i]
		if r.Expr != p.Expr || r.For != p.For || !reflect.DeepEqual(r.Labels, p.Labels) {
			t.Errorf("%s%s: showMultiCluster changed more than the annotations", r.Alert, r.Record)
		}
		for _, k := range []string{"summary", "description"} {
			if strings.Contains(p.Annotations[k], "cluster") {
				t.Errorf("%s %s mentions a cluster with the defaults: %q", p.Alert, k, p.Annotations[k])
			}
			if want := strings.ReplaceAll(p.Annotations[k], "{{ $labels.instance }}", where); r.Annotations[k] != want {
				t.Errorf("%s %s with showMultiCluster:\n got %q\nwant %q", r.Alert, k, r.Annotations[k], want)
			}
		}
		if r.Alert != "" && !strings.Contains(r.Annotations["summary"], where) {
			t.Errorf("%s: the summary does not name the cluster: %q", r.Alert, r.Annotations["summary"])
		}
	}
}
