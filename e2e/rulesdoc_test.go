package e2e

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// rulesDoc documents the rule pack; its tables name every rule.
const rulesDoc = "../docs/rules.md"

// The tables of rulesDoc this test reads, by the heading they sit under and
// their header row.
var (
	alertTable     = docTable{heading: "## Alerts and their numbers", header: []string{"Alert", "Severity", "Fires when", "`for`"}}
	recordingTable = docTable{heading: "## Recording rules", header: []string{"Rule", "Value"}}
)

// packRule is what this test reads of one rule of the rule file.
type packRule struct {
	Record string            `yaml:"record"`
	Alert  string            `yaml:"alert"`
	For    string            `yaml:"for"`
	Labels map[string]string `yaml:"labels"`
}

// TestRulesDocTables keeps docs/rules.md in step with the rule file: its
// alert table lists every alert of rules/tcpstate_exporter.rules.yml once,
// with the severity and `for` the file gives it, its recording-rule table
// every recording rule once, and neither lists a rule the file lacks. It
// needs no Prometheus and always runs (make test, make e2e).
func TestRulesDocTables(t *testing.T) {
	t.Parallel()
	rules := readPackRules(t)
	doc, err := os.ReadFile(rulesDoc)
	if err != nil {
		t.Fatal(err)
	}
	problems := rulesDocProblems(rules, string(doc))
	for _, p := range problems {
		t.Errorf("%s: %s", rulesDoc, p)
	}
	if len(problems) > 0 {
		t.Logf("docs/rules.md is written by hand: bring its tables in step with %s, which `make mixin` renders from mixin/", ruleFile)
	}
}

// TestRulesDocTablesCatchDrift breaks the real docs/rules.md the ways it
// can drift from the rule file and requires each to be reported, so that
// TestRulesDocTables cannot pass by reading nothing.
func TestRulesDocTablesCatchDrift(t *testing.T) {
	t.Parallel()
	rules := readPackRules(t)
	raw, err := os.ReadFile(rulesDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	row := func(name string) string {
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "| "+name+" |") || strings.HasPrefix(line, "| `"+name+"` |") {
				return line
			}
		}
		t.Fatalf("%s: no table row for %s", rulesDoc, name)
		return ""
	}
	page := row("TCPStatePoolExhausted")
	recording := row("tcpstate:connections:sum")
	cases := []struct {
		name, doc, want string
	}{
		{"alert missing", strings.Replace(doc, page+"\n", "", 1), "TCPStatePoolExhausted: in the rule file, not in the alert table"},
		{"alert the file lacks", strings.Replace(doc, page, page+"\n| TCPStateGone | warning | never | 5m |", 1), "TCPStateGone: in the alert table, not in the rule file"},
		{"alert listed twice", strings.Replace(doc, page, page+"\n"+page, 1), "TCPStatePoolExhausted: listed twice"},
		{"wrong severity", strings.Replace(doc, page, strings.Replace(page, "| critical |", "| warning |", 1), 1), `TCPStatePoolExhausted: severity "warning" in the table, "critical" in the rule file`},
		{"wrong for", strings.Replace(doc, page, strings.Replace(page, "| 2m |", "| 5m |", 1), 1), `TCPStatePoolExhausted: for "5m" in the table, "2m" in the rule file`},
		{"recording rule missing", strings.Replace(doc, recording+"\n", "", 1), "tcpstate:connections:sum: in the rule file, not in the recording-rule table"},
		{"no alert table", strings.Replace(doc, alertTable.heading+"\n", "## Alerts\n", 1), "no table under " + alertTable.heading},
		{"columns changed", strings.Replace(doc, "| Alert | Severity | Fires when | `for` |", "| Alert | Fires when |", 1), "header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.doc == doc {
				t.Fatalf("the case changed nothing in %s: update it to the file", rulesDoc)
			}
			problems := rulesDocProblems(rules, c.doc)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("want a problem with %q, got %q", c.want, problems)
			}
		})
	}
}

func readPackRules(t *testing.T) []packRule {
	t.Helper()
	text, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []packRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(text, &f); err != nil {
		t.Fatalf("%s: %v", ruleFile, err)
	}
	var rules []packRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", ruleFile)
	}
	return rules
}

// rulesDocProblems compares the tables of doc with the rules.
func rulesDocProblems(rules []packRule, doc string) []string {
	var problems []string
	alerts, err := alertTable.rows(doc)
	if err != nil {
		problems = append(problems, err.Error())
	}
	recordings, err := recordingTable.rows(doc)
	if err != nil {
		problems = append(problems, err.Error())
	}
	listed := func(rows [][]string, what string) map[string][]string {
		byName := map[string][]string{}
		for _, r := range rows {
			if _, dup := byName[r[0]]; dup {
				problems = append(problems, fmt.Sprintf("%s: listed twice in the %s table", r[0], what))
			}
			byName[r[0]] = r
		}
		return byName
	}
	alertRows, recordingRows := listed(alerts, "alert"), listed(recordings, "recording-rule")
	inFile := map[string]bool{}
	for _, r := range rules {
		if r.Record != "" {
			inFile[r.Record] = true
			if _, ok := recordingRows[r.Record]; !ok && recordings != nil {
				problems = append(problems, r.Record+": in the rule file, not in the recording-rule table")
			}
			continue
		}
		inFile[r.Alert] = true
		row, ok := alertRows[r.Alert]
		if !ok {
			if alerts != nil {
				problems = append(problems, r.Alert+": in the rule file, not in the alert table")
			}
			continue
		}
		if sev := strings.Trim(row[1], "`"); sev != r.Labels["severity"] {
			problems = append(problems, fmt.Sprintf("%s: severity %q in the table, %q in the rule file", r.Alert, sev, r.Labels["severity"]))
		}
		if d := strings.Trim(row[3], "`"); d != r.For {
			problems = append(problems, fmt.Sprintf("%s: for %q in the table, %q in the rule file", r.Alert, d, r.For))
		}
	}
	for _, rows := range []struct {
		byName map[string][]string
		what   string
	}{{alertRows, "alert"}, {recordingRows, "recording-rule"}} {
		for _, name := range slices.Sorted(maps.Keys(rows.byName)) {
			if !inFile[name] {
				problems = append(problems, fmt.Sprintf("%s: in the %s table, not in the rule file", name, rows.what))
			}
		}
	}
	return problems
}

// docTable is a Markdown table of docs/rules.md: the first table after
// heading, before the next heading of any level.
type docTable struct {
	heading string
	header  []string
}

// rows returns the table's body rows, each cell trimmed, the first (the
// rule's name) without its backticks; an error when the heading, the table
// or its header is not as expected, or a row has another number of cells.
func (d docTable) rows(doc string) ([][]string, error) {
	lines := strings.Split(doc, "\n")
	start := slices.Index(lines, d.heading)
	if start < 0 {
		return nil, fmt.Errorf("no table under %s: the heading is gone", d.heading)
	}
	var table []string
	for _, line := range lines[start+1:] {
		if strings.HasPrefix(line, "#") {
			break
		}
		if strings.HasPrefix(line, "|") {
			table = append(table, line)
		} else if len(table) > 0 {
			break
		}
	}
	if len(table) < 2 {
		return nil, fmt.Errorf("no table under %s", d.heading)
	}
	if got := cells(table[0]); !slices.Equal(got, d.header) {
		return nil, fmt.Errorf("the table under %s has the header %q, this test reads %q: teach it the new columns", d.heading, got, d.header)
	}
	rows := [][]string{} // not nil: a table without rows lists nothing
	for _, line := range table[2:] {
		c := cells(line)
		if len(c) != len(d.header) {
			return nil, fmt.Errorf("the table under %s: %d cells, want %d: %s", d.heading, len(c), len(d.header), line)
		}
		c[0] = strings.Trim(c[0], "`")
		rows = append(rows, c)
	}
	return rows, nil
}

// cells splits a Markdown table row; an escaped \| stays inside its cell.
func cells(line string) []string {
	const pipe = "\x00"
	line = strings.ReplaceAll(line, `\|`, pipe)
	line = strings.TrimSpace(line)
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	var out []string
	for _, c := range strings.Split(line, "|") {
		out = append(out, strings.ReplaceAll(strings.TrimSpace(c), pipe, `\|`))
	}
	return out
}
