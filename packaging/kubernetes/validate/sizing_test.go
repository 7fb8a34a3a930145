package validate

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestSizingNumbersAgree: every figure about memory and CPU per socket count
// that the sizing section of docs/install.md, the systemd unit, the
// DaemonSet and the Helm chart's values state is the one docs/performance.md
// (written by `make bench`) measured, or derived from it as said below. A
// figure in those texts that none of the checked phrasings covers fails too,
// so a number cannot go stale by being written another way. After `make
// bench`, copy the expected values this test prints.
func TestSizingNumbersAgree(t *testing.T) {
	perf := readRepoFile(t, "docs/performance.md")
	m := measuredSizing(t, perf)

	ds := loadDaemonSet(t)
	limit := ds.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]
	// Sockets the memory limit holds under the linear model, in whole
	// millions, rounded down.
	capacity := int((float64(limit.Value()) - m.baseBytes) / m.perSocket / 1e6)
	// The quota a first scrape at a million sockets would need beyond the
	// 10 s timeout at 250m, in tens of seconds, rounded down.
	quarterCore := int(m.cold1M/0.25/10) * 10

	phrases := []struct {
		name string
		re   *regexp.Regexp
		want []string
	}{
		{"linear model", regexp.MustCompile(`(?i)about ([\d.]+) MB plus (\d+) bytes per (?:TCP )?socket`),
			[]string{fmt.Sprintf("%.1f", m.baseBytes/1e6), fmt.Sprintf("%.0f", m.perSocket)}},
		{"peak at a million", regexp.MustCompile(`([\d.]+ MB) at a million sockets`), []string{m.rss1M}},
		{"capacity of the memory limit", regexp.MustCompile(`(?:about|more than) (\w+) million sockets`), []string{numberWord(capacity)}},
		{"warm CPU at a million", regexp.MustCompile(`warm scrape at a million sockets takes ([\d.]+ s) of CPU`), []string{m.warm1MText}},
		{"cold CPU at a million", regexp.MustCompile(`first scrape after a start at a million sockets (?:takes|needs) ([\d.]+ s) of CPU`), []string{m.cold1MText}},
		{"procfs CPU at a million", regexp.MustCompile(`procfs source costs more CPU \(([\d.]+ s) of CPU per warm scrape at a million sockets\)`), []string{m.procfs1MText}},
		{"under the shipped limits", regexp.MustCompile(`first scrape took (\d+ ms) at worst, warm ones (\d+ ms), and the cgroup's memory peaked at ([\d.]+ MB)`),
			[]string{m.limitColdWorst, m.limitWarmWorst, m.limitMemPeak}},
		{"a quarter core", regexp.MustCompile(`250m would need over (\d+) s`), []string{strconv.Itoa(quarterCore)}},
	}
	// Figures that must each sit inside one of the phrases above.
	figures := regexp.MustCompile(`\b[\d.]+ ?MB\b|\b[\d.]+ bytes per\b|\b[\d.]+ s of CPU\b|\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten) million sockets\b`)

	// The table of docs/install.md is the one of docs/performance.md.
	table := "| TCP sockets on the host | peak memory (RSS) | CPU per scrape, warm | CPU of the first scrape after a start |\n|---:|---:|---:|---:|\n"
	for _, r := range m.rows {
		table += fmt.Sprintf("| %s | %s | %s | %s |\n", r.label, r.rss, r.warm, r.cold)
	}

	texts := map[string]string{
		"docs/install.md (## Sizing)":                  section(t, readRepoFile(t, "docs/install.md"), "## Sizing"),
		"packaging/systemd/tcpstate_exporter.service":  readRepoFile(t, "packaging/systemd/tcpstate_exporter.service"),
		"packaging/kubernetes/daemonset.yaml":          readRepoFile(t, "packaging/kubernetes/daemonset.yaml"),
		"packaging/helm/tcpstate-exporter/values.yaml": readRepoFile(t, "packaging/helm/tcpstate-exporter/values.yaml"),
	}
	// Each text states at least the model and what the limit holds.
	required := []string{"linear model", "capacity of the memory limit"}
	for name, raw := range texts {
		// The table's figures are checked as a whole, below.
		text := strings.Replace(prose(raw), prose(table), "", 1)
		var covered [][]int
		seen := map[string]bool{}
		for _, p := range phrases {
			for _, loc := range p.re.FindAllStringSubmatchIndex(text, -1) {
				seen[p.name] = true
				covered = append(covered, loc[:2])
				for i, want := range p.want {
					if got := text[loc[2+2*i]:loc[3+2*i]]; got != want {
						t.Errorf("%s: %s: %q says %s, docs/performance.md gives %s", name, p.name, text[loc[0]:loc[1]], got, want)
					}
				}
			}
		}
		for _, r := range required {
			if !seen[r] {
				t.Errorf("%s: no %s (checked phrasing: %s)", name, r, phraseOf(phrases, r))
			}
		}
	figure:
		for _, loc := range figures.FindAllStringIndex(text, -1) {
			for _, c := range covered {
				if loc[0] >= c[0] && loc[1] <= c[1] {
					continue figure
				}
			}
			t.Errorf("%s: %q is not in a phrasing this test checks against docs/performance.md: reword it as one of them, or drop it", name, excerpt(text, loc))
		}
	}

	if !strings.Contains(texts["docs/install.md (## Sizing)"], table) {
		t.Errorf("docs/install.md's sizing table is not the measurements of docs/performance.md (netlink + process); want\n%s", table)
	}
	t.Logf("from docs/performance.md: about %.1f MB plus %.0f bytes per socket, %s at a million sockets, %s million under %s; CPU at a million: %s warm, %s cold",
		m.baseBytes/1e6, m.perSocket, m.rss1M, numberWord(capacity), limit.String(), m.warm1MText, m.cold1MText)
}

// sizing holds what docs/performance.md measured with every collector on
// and the netlink source ("netlink + process"), the configuration the
// sizing table describes.
type sizing struct {
	rows []struct{ label, rss, warm, cold string }
	// Peak RSS = baseBytes + perSocket × sockets, through the two largest
	// sizes: perSocket is the "per extra socket" row between them.
	baseBytes, perSocket                         float64
	rss1M, warm1MText, cold1MText, procfs1MText  string
	cold1M                                       float64
	limitColdWorst, limitWarmWorst, limitMemPeak string
}

func measuredSizing(t *testing.T, perf string) sizing {
	t.Helper()
	var s sizing
	memory := mdTable(t, section(t, perf, "## Memory"))
	cpu := mdTable(t, section(t, perf, "## CPU per scrape"))
	limits := mdTable(t, section(t, perf, "## Under the shipped limits"))
	cpuBySockets := map[string]map[string]string{}
	for _, r := range cpu {
		cpuBySockets[r["sockets"]] = r
	}
	var sizes []float64
	var lastRSS float64
	for _, r := range memory {
		n, err := strconv.ParseFloat(r["sockets"], 64)
		if err != nil {
			if strings.HasPrefix(r["sockets"], "per extra socket") {
				s.perSocket = number(t, r["netlink + process"], " bytes") // the last such row: the two largest sizes
			}
			continue
		}
		c, ok := cpuBySockets[r["sockets"]]
		if !ok {
			t.Fatalf("docs/performance.md: no CPU row for %s sockets", r["sockets"])
		}
		rounded := math.Pow(10, math.Round(math.Log10(n)))
		s.rows = append(s.rows, struct{ label, rss, warm, cold string }{
			groupThousands(int(rounded)), r["netlink + process"], c["netlink + process"], c["netlink + process, cold"]})
		sizes = append(sizes, n)
		lastRSS = number(t, r["netlink + process"], " MB") * 1e6
		if rounded == 1e6 {
			s.rss1M = r["netlink + process"]
			s.warm1MText = c["netlink + process"]
			s.cold1MText = c["netlink + process, cold"]
			s.procfs1MText = c["procfs + process"]
			s.cold1M = number(t, s.cold1MText, " s")
		}
	}
	if len(sizes) < 2 || s.perSocket == 0 || s.rss1M == "" {
		t.Fatalf("docs/performance.md: want the memory and CPU tables at three sizes up to a million sockets and a \"per extra socket\" row; have sizes %v", sizes)
	}
	s.baseBytes = lastRSS - s.perSocket*sizes[len(sizes)-1]
	if len(limits) != 1 {
		t.Fatalf("docs/performance.md: want one row under \"Under the shipped limits\", have %d", len(limits))
	}
	s.limitColdWorst, s.limitWarmWorst, s.limitMemPeak = limits[0]["cold, worst"], limits[0]["warm, worst"], limits[0]["cgroup memory peak"]
	return s
}

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section returns the text from a heading line to the next heading of the
// same level.
func section(t *testing.T, text, heading string) string {
	t.Helper()
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("no %q section", heading)
	}
	rest := text[i+1:]
	level := heading[:strings.IndexByte(heading, ' ')+1]
	if j := strings.Index(rest[len(heading):], "\n"+level); j >= 0 {
		return rest[:len(heading)+j+1]
	}
	return rest
}

// mdTable parses the first Markdown table of text into rows keyed by the
// header's cells.
func mdTable(t *testing.T, text string) []map[string]string {
	t.Helper()
	var header []string
	var rows []map[string]string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "|") {
			if header != nil {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case header == nil:
			header = cells
		case strings.HasPrefix(cells[0], "---"), strings.HasPrefix(cells[0], ":--"):
		default:
			row := map[string]string{}
			for i, h := range header {
				if i < len(cells) {
					row[h] = cells[i]
				}
			}
			rows = append(rows, row)
		}
	}
	if header == nil {
		t.Fatalf("no table in %.60q…", text)
	}
	return rows
}

func number(t *testing.T, cell, unit string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(strings.TrimSuffix(cell, unit), 64)
	if err != nil || !strings.HasSuffix(cell, unit) {
		t.Fatalf("docs/performance.md: %q is not a number in%s", cell, unit)
	}
	return v
}

// prose joins a file's lines into one line of words, dropping the comment
// markers of the unit and the YAML files, so that a phrase wrapped over
// lines still reads as one.
func prose(text string) string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimSpace(strings.TrimLeft(line, "#"))
		b.WriteString(line)
		b.WriteByte(' ')
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func groupThousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + " " + s[i:]
	}
	return s
}

func numberWord(n int) string {
	words := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
	if n >= 0 && n < len(words) {
		return words[n]
	}
	return strconv.Itoa(n)
}

func phraseOf(phrases []struct {
	name string
	re   *regexp.Regexp
	want []string
}, name string) string {
	for _, p := range phrases {
		if p.name == name {
			return "`" + p.re.String() + "`"
		}
	}
	return "?"
}

func excerpt(text string, loc []int) string {
	from, to := max(loc[0]-40, 0), min(loc[1]+20, len(text))
	return "…" + text[from:to] + "…"
}
