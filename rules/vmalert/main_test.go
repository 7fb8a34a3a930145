package main

import (
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestRewriteExpr(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{`tcpstate:connections:sum`, `tcpstate:connections:sum`},
		{`min_over_time(timestamp(ALERTS{alertname="A", alertstate="firing"})[8h:1m])`,
			`(min without (alertgroup) (min_over_time(timestamp(ALERTS{alertname="A", alertstate="firing"})[8h:1m]))) - 946684800`},
		{`count_over_time(ALERTS{alertstate="firing"}[2h])`,
			`sum without (alertgroup) (count_over_time(ALERTS{alertstate="firing"}[2h]))`},
		{`timestamp(up)`, `(timestamp(up)) - 946684800`},
	} {
		if got := rewriteExpr(c.in); got != c.want {
			t.Errorf("rewriteExpr(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestConvert(t *testing.T) {
	t.Parallel()
	in := `# a comment that stays
rule_files:
  - ../rules.yml
  - /abs/other.yml
evaluation_interval: 1m
tests:
  - name: one
    interval: 1m
    input_series:
      - series: 'x{a="b"}'
        values: '1x5'
    promql_expr_test:
      - expr: timestamp(x)
        eval_time: 1m
        exp_samples:
          - labels: '{a="b"}'
            value: 60
      - expr: ALERTS{alertname="A"}
        eval_time: 1m
        exp_samples:
          - labels: 'ALERTS{alertname="A", alertstate="firing"}'
            value: 1
    alert_rule_test:
      - eval_time: 1m
        alertname: A
        exp_alerts: []
`
	out, err := convert([]byte(in), "/repo/rules/tests")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name      string           `yaml:"name"`
			PromQL    []map[string]any `yaml:"promql_expr_test"`
			MetricsQL []struct {
				Expr       string           `yaml:"expr"`
				ExpSamples []map[string]any `yaml:"exp_samples"`
			} `yaml:"metricsql_expr_test"`
			Alerts []map[string]any `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	if want := []string{filepath.Clean("/repo/rules/rules.yml"), "/abs/other.yml"}; strings.Join(got.RuleFiles, " ") != strings.Join(want, " ") {
		t.Errorf("rule_files = %q, want %q", got.RuleFiles, want)
	}
	if len(got.Tests) != 1 || got.Tests[0].PromQL != nil || len(got.Tests[0].MetricsQL) != 2 || len(got.Tests[0].Alerts) != 1 {
		t.Fatalf("tests not converted as expected:\n%s", out)
	}
	if e := got.Tests[0].MetricsQL[0]; e.Expr != "(timestamp(x)) - 946684800" || len(e.ExpSamples) != 1 || e.ExpSamples[0]["value"] != 60 {
		t.Errorf("metricsql_expr_test = %+v, want the shifted expression and the same expected sample", e)
	}
	if e := got.Tests[0].MetricsQL[1]; e.Expr != `sum without (alertgroup) (ALERTS{alertname="A"})` || len(e.ExpSamples) != 1 || e.ExpSamples[0]["labels"] != `{alertname="A", alertstate="firing"}` {
		t.Errorf("metricsql_expr_test = %+v, want the aggregated expression and the expected sample without the metric name it drops", e)
	}
	if !strings.Contains(string(out), "# a comment that stays") {
		t.Errorf("comments lost:\n%s", out)
	}
}

func TestConvertErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"- a\n", "expected a mapping at the top"},
		{"rule_files: [x]\n", "no tests"},
		{"tests:\n  - name: x\n    promql_expr_test:\n      - eval_time: 1m\n", "tests[0].promql_expr_test[0]: no expr"},
		{"tests: [\n", "yaml"},
	} {
		_, err := convert([]byte(c.in), ".")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("convert(%q) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}
