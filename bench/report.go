package main

import (
	_ "embed"
	"fmt"
	"image/color"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// notes is the hand-written part of docs/performance.md: how to read the
// numbers and why the code is as it is.
//
//go:embed notes.md
var notes string

type machine struct {
	cpu, memory, kernel, os, goVersion, nodeExporter, ss string
	cores, namespaces                                    int
}

func describeMachine(nodeExporter string) machine {
	m := machine{cores: runtime.NumCPU(), goVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				kb, _ := strconv.ParseUint(strings.Fields(line)[1], 10, 64)
				m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = "Linux " + strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.os = strings.Trim(v, `"`)
			}
		}
	}
	firstLine := func(args ...string) string {
		out, _ := exec.Command(args[0], args[1:]...).CombinedOutput()
		l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return l
	}
	m.nodeExporter = firstLine(nodeExporter, "--version")
	// Network namespaces with a process: the exporter reads each (the
	// tools compared read only their own).
	seen := map[string]bool{}
	if dirs, err := os.ReadDir("/proc"); err == nil {
		for _, d := range dirs {
			if link, err := os.Readlink("/proc/" + d.Name() + "/ns/net"); err == nil {
				seen[link] = true
			}
		}
	}
	m.namespaces = len(seen)
	m.ss = firstLine("ss", "-V")
	return m
}

// goBenchLine is one line of go test -bench output.
type goBenchLine struct {
	name   string
	values map[string]float64 // by unit
}

func parseGoBench(out string) []goBenchLine {
	var lines []goBenchLine
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		bl := goBenchLine{name: f[0], values: map[string]float64{}}
		if i := strings.LastIndexByte(bl.name, '-'); i > 0 {
			bl.name = bl.name[:i] // the GOMAXPROCS suffix
		}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				bl.values[f[i+1]] = v
			}
		}
		lines = append(lines, bl)
	}
	return lines
}

// medianLines folds repeated runs (-count) of a benchmark into medians.
func medianLines(lines []goBenchLine) []goBenchLine {
	var order []string
	byName := map[string][]goBenchLine{}
	for _, l := range lines {
		if _, ok := byName[l.name]; !ok {
			order = append(order, l.name)
		}
		byName[l.name] = append(byName[l.name], l)
	}
	var out []goBenchLine
	for _, name := range order {
		runs := byName[name]
		m := goBenchLine{name: name, values: map[string]float64{}}
		for unit := range runs[0].values {
			var vs []float64
			for _, r := range runs {
				vs = append(vs, r.values[unit])
			}
			slices.Sort(vs)
			m.values[unit] = vs[len(vs)/2]
		}
		out = append(out, m)
	}
	return out
}

// linesOf reads N from a benchmark name ending in lines=N or messages=N.
func linesOf(name string) float64 {
	i := strings.LastIndexByte(name, '=')
	if i < 0 {
		return 0
	}
	n, _ := strconv.ParseFloat(name[i+1:], 64)
	return n
}

type report struct {
	started, finished time.Time
	machine           machine
	goBench           []goBenchLine
	nlCompare         []goBenchLine
	sizes             []*sizeResult
	skipped           []string
	// previous holds the medians of the report this one replaces, by
	// sockets and tool; previousDate says when it was written.
	previous     map[int]map[string]float64
	previousDate string
	// limited is the largest size measured under the shipped limits.
	limited *limitedResult
	// unixSockets were held beside the TCP connections.
	unixSockets int
}

// parsePrevious reads the time-per-scrape table of an earlier report.
func parsePrevious(md string) (map[int]map[string]float64, string) {
	out := map[int]map[string]float64{}
	date := ""
	if _, rest, ok := strings.Cut(md, "Written by `make bench` (bench/main.go) on "); ok {
		date, _, _ = strings.Cut(rest, ",")
	}
	_, table, ok := strings.Cut(md, "## Time per scrape, real sockets on loopback")
	if !ok {
		return nil, ""
	}
	var header []string
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "## ") {
			break
		}
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header == nil {
			header = cells
			continue
		}
		n, err := strconv.Atoi(cells[0])
		if err != nil {
			continue // the alignment row
		}
		row := map[string]float64{}
		for i := 2; i < len(cells) && i < len(header); i++ {
			if v, err := strconv.ParseFloat(cells[i], 64); err == nil {
				row[header[i]] = v
			}
		}
		out[n] = row
	}
	return out, date
}

// previousAt returns the earlier report's medians at the size nearest
// sockets, if one lies within a fifth of it.
func (r *report) previousAt(sockets int) (map[string]float64, int, bool) {
	best, bestN := map[string]float64(nil), 0
	for n, row := range r.previous {
		if d := abs(n - sockets); d*5 <= sockets && (best == nil || d < abs(bestN-sockets)) {
			best, bestN = row, n
		}
	}
	return best, bestN, best != nil
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// ourTools are the exporter's configurations in the time table.
var ourTools = []string{toolNetlink, toolProcfs, toolNetlinkProc, toolProcfsProc, toolNetlinkCold}

// perExtraSocket returns the growth of a configuration's peak RSS per
// socket between two sizes.
func perExtraSocket(a, b *sizeResult, tool string) (float64, bool) {
	ra, rb := a.peakRSS[tool], b.peakRSS[tool]
	if ra == 0 || rb == 0 || b.sockets <= a.sockets {
		return 0, false
	}
	return (float64(rb) - float64(ra)) / float64(b.sockets-a.sockets), true
}

var toolColors = map[string]color.RGBA{
	toolCat:         {120, 120, 120, 255},
	toolSS:          {0, 0, 0, 255},
	toolSSP:         {150, 75, 0, 255},
	toolNode:        {230, 120, 0, 255},
	toolNetlink:     {0, 90, 200, 255},
	toolNetlinkProc: {0, 160, 220, 255},
	toolNetlinkCold: {140, 200, 240, 255},
	toolProcfs:      {200, 0, 60, 255},
	toolProcfsProc:  {240, 110, 150, 255},
}

func (r *report) plotSeries() []series {
	var out []series
	for _, t := range toolOrder {
		s := series{name: t, color: toolColors[t], dash: t == toolCat || t == toolSS || t == toolSSP || t == toolNode}
		for _, sz := range r.sizes {
			if m, ok := sz.median(t); ok {
				s.x = append(s.x, float64(sz.sockets))
				s.y = append(s.y, m)
				s.over = append(s.over, sz.timedOut[t])
			}
		}
		if len(s.x) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// at returns the result measured for the target size, or nil.
func (r *report) at(target int) *sizeResult {
	for _, s := range r.sizes {
		if s.target == target {
			return s
		}
	}
	return nil
}

func ratio(s *sizeResult, a, b string) (float64, bool) {
	if s == nil {
		return 0, false
	}
	x, ok1 := s.median(a)
	y, ok2 := s.median(b)
	if !ok1 || !ok2 || y == 0 {
		return 0, false
	}
	return x / y, true
}

// bound marks a ratio whose numerator or denominator timed out.
func bound(s *sizeResult, a, b string) string {
	switch {
	case s.timedOut[b] && !s.timedOut[a]:
		return "< "
	case s.timedOut[a] && !s.timedOut[b]:
		return "> "
	case s.timedOut[a]:
		return "~ "
	}
	return ""
}

// goal is one target of the issue, checked against this run.
type goal struct {
	what, target, measured string
	met                    bool
	known                  bool
}

func (r *report) goals() []goal {
	var gs []goal
	at := r.at(100_000)
	add := func(what, target string, v float64, ok bool, format string, met func(float64) bool) {
		g := goal{what: what, target: target, known: ok}
		if ok {
			g.measured = fmt.Sprintf(format, v)
			g.met = met(v)
		} else {
			g.measured = "not measured"
		}
		gs = append(gs, g)
	}
	v, ok := ratio(at, toolNetlink, toolSS)
	add("netlink scrape (host and port families) vs `ss -tan`, 100 000 sockets", "≤ 1.2×", v, ok, "%.2f×", func(v float64) bool { return v <= 1.2 })
	v, ok = ratio(at, toolNetlink, toolNode)
	add("netlink scrape vs node_exporter tcpstat, 100 000 sockets", "< 1×", v, ok, "%.2f×", func(v float64) bool { return v < 1 })
	v, ok = ratio(at, toolProcfs, toolCat)
	add("procfs scrape vs the `cat` floor, 100 000 sockets", "≤ 1.3×", v, ok, "%.2f×", func(v float64) bool { return v <= 1.3 })
	v, ok = ratio(at, toolNetlinkProc, toolSSP)
	add("scrape with the process view vs `ss -tanp`, 100 000 sockets (steady state)", "≤ 0.3×", v, ok, "%.2f×", func(v float64) bool { return v <= 0.3 })
	v, ok = ratio(at, toolNetlinkCold, toolSSP)
	add("first scrape with the process view (no cache yet) vs `ss -tanp`, 100 000 sockets", "(≤ 0.3×)", v, ok, "%.2f×", func(v float64) bool { return v <= 0.3 })
	if at != nil {
		peak, worst := uint64(0), ""
		for name, rss := range at.peakRSS {
			if name != toolNode && rss > peak {
				peak, worst = rss, name
			}
		}
		add("peak RSS of the exporter at 100 000 sockets (largest of its four configurations: "+worst+")", "< 40 MB", float64(peak)/1e6, peak > 0, "%.1f MB", func(v float64) bool { return v < 40 })
		add(fmt.Sprintf("peak RSS at 100 000 sockets after %d more scrapes (netlink + process)", soakScrapes), "< 40 MB", float64(at.soakRSS)/1e6, at.soakRSS > 0, "%.1f MB", func(v float64) bool { return v < 40 })
	}
	if first, last := r.firstLast(); first != nil && last != nil && first != last {
		a, b := first.allocPerScrape[toolNetlinkProc], last.allocPerScrape[toolNetlinkProc]
		add(fmt.Sprintf("bytes allocated per scrape (netlink + process), %d → %d sockets", first.sockets, last.sockets),
			"flat (< 2× for the sockets ×"+strconv.Itoa(last.sockets/max(first.sockets, 1))+")", b/max(a, 1), a > 0 && b > 0, "%.2f×",
			func(v float64) bool { return v < 2 })
	}
	// Memory per extra socket, every collector on, ages on.
	if lo, hi := r.at(100_000), r.at(1_000_000); lo != nil && hi != nil {
		worst, known, which := 0.0, false, ""
		for _, t := range []string{toolNetlinkProc, toolProcfsProc} {
			if v, ok := perExtraSocket(lo, hi, t); ok && (!known || v > worst) {
				worst, known, which = v, true, t
			}
		}
		add(fmt.Sprintf("peak RSS per extra socket, every collector on, %d → %d sockets (larger of netlink + process, procfs + process: %s)", lo.sockets, hi.sockets, which),
			"≤ 40 bytes", worst, known, "%.1f bytes", func(v float64) bool { return v <= 40 })
	}
	if l := r.limited; l != nil {
		ok := l.notMeasuredWhy == "" && len(l.cold) > 0
		wst := max(worst(l.cold), worst(l.warm))
		add(fmt.Sprintf("scrape at %d sockets under the DaemonSet's limits (cpu %dm, memory %d MiB), cold and warm, worst", l.sockets, l.cpuMilli, l.memBytes>>20),
			"< 10 s, not killed", wst.Seconds(), ok, "%.2f s", func(v float64) bool { return v < 10 && !l.died })
	}
	// What the kernel ages cost in steady state: one lookup per new
	// CLOSE_WAIT socket on top of today's dump; a whole scrape's share is
	// in the comparison with the previous report below.
	for _, size := range []int{100_000, 1_000_000} {
		s := r.at(size)
		if s == nil {
			continue
		}
		plain, ok1 := s.median(toolDumpPlain)
		look, ok2 := s.median(toolAgeLookups)
		add(fmt.Sprintf("kernel ages of every CLOSE_WAIT socket looked up (%d) against one dump, %d sockets (the steady state pays this only for new ones)", s.closeWait, s.sockets),
			"≤ 0.1×", look/plain, ok1 && ok2 && plain > 0, "%.3f×", func(v float64) bool { return v <= 0.1 })
	}
	// No scrape slower than in the report this one replaces; 10 % is the
	// spread of medians between runs on this machine kind.
	worst, known, what := 0.0, false, ""
	for _, s := range r.sizes {
		prev, n, ok := r.previousAt(s.sockets)
		if !ok {
			continue
		}
		for _, t := range ourTools {
			now, ok1 := s.median(t)
			then, ok2 := prev[t]
			if ok1 && ok2 && then > 0 && (!known || now/then > worst) {
				worst, known, what = now/then, true, fmt.Sprintf("%s at %d (then %d) sockets", t, s.sockets, n)
			}
		}
	}
	add("slowest change of a scrape against the previous report ("+orNone(what)+")", "≤ 1.1×", worst, known, "%.2f×", func(v float64) bool { return v <= 1.1 })
	// Allocations per line: how the allocations of a reading grow from the
	// smallest table to the largest (a constant few per reading, for the
	// files and the buffer, is no allocation per line).
	worstPerLine, known := 0.0, false
	for _, prefix := range []string{"BenchmarkProcfsTables/", "BenchmarkNetlinkParse/"} {
		var small, large *goBenchLine
		for i := range r.goBench {
			l := &r.goBench[i]
			if !strings.HasPrefix(l.name, prefix) {
				continue
			}
			if small == nil || linesOf(l.name) < linesOf(small.name) {
				small = l
			}
			if large == nil || linesOf(l.name) > linesOf(large.name) {
				large = l
			}
		}
		if small != nil && large != nil && large != small {
			per := (large.values["allocs/op"] - small.values["allocs/op"]) / (linesOf(large.name) - linesOf(small.name))
			worstPerLine, known = max(worstPerLine, per), true
		}
	}
	// One record per tracked socket (STYLE.md, habit 21): a CLOSE_WAIT
	// socket's age and route, in the tracker's one map.
	perTracked, known := 0.0, false
	for _, l := range r.goBench {
		if v, ok := l.values["bytes/socket"]; ok && strings.HasPrefix(l.name, "BenchmarkTrackedSocket") {
			perTracked, known = v, true
		}
	}
	add("heap per tracked CLOSE_WAIT socket, its age and route in one record, 100 000 sockets (go test -bench TrackedSocket)", "≤ 120 bytes", perTracked, known, "%.0f bytes", func(v float64) bool { return v <= 120 })
	add("allocations per parsed line, both parsers (go test -bench: growth of allocs/op from the smallest table to the largest, per line)", "0", worstPerLine, known, "%.6f", func(v float64) bool { return v < 1e-4 })
	// Linear growth: the time per socket at the largest size against the
	// one ten times smaller (below 100 000 sockets the fixed cost of a
	// scrape hides the per-socket one).
	lo, hi := at, r.at(1_000_000)
	if hi == nil {
		lo, hi = r.at(10_000), at
	}
	for _, t := range []string{toolNetlink, toolProcfs, toolNetlinkProc, toolProcfsProc, toolNetlinkCold} {
		if lo == nil || hi == nil {
			break
		}
		a, ok1 := lo.median(t)
		b, ok2 := hi.median(t)
		perLo, perHi := a/float64(lo.sockets), b/float64(hi.sockets)
		add(fmt.Sprintf("time per socket, %s, %d vs %d sockets", t, hi.sockets, lo.sockets), "linear (≤ 1.5×)", perHi/perLo, ok1 && ok2, "%.2f×", func(v float64) bool { return v <= 1.5 })
	}
	return gs
}

func (r *report) firstLast() (*sizeResult, *sizeResult) {
	if len(r.sizes) == 0 {
		return nil, nil
	}
	return r.sizes[0], r.sizes[len(r.sizes)-1]
}

func (r *report) markdown(png string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Performance\n\n")
	w("Written by `make bench` (bench/main.go) on %s, in %s. Do not edit by hand: run `make bench` again;\n", r.started.UTC().Format("2006-01-02 15:04 MST"), r.finished.Sub(r.started).Round(time.Second))
	w("the text after the tables comes from bench/notes.md.\n\n")
	m := r.machine
	w("| Machine | |\n|---|---|\n")
	w("| CPU | %s, %d cores |\n| Memory | %s |\n| Kernel | %s |\n| OS | %s |\n| Go | %s |\n| node_exporter | %s |\n| ss | %s |\n| Network namespaces with a process | %d |\n\n",
		m.cpu, m.cores, m.memory, m.kernel, m.os, m.goVersion, m.nodeExporter, m.ss, m.namespaces)

	if r.unixSockets > 0 {
		w("%s", r.heldClosedSection())
	}
	w("## Time per scrape, real sockets on loopback\n\n")
	w("Medians in milliseconds, wall time of the whole command or HTTP scrape (our exporter and node_exporter run as their built binaries, scraped over a kept-alive HTTP connection). Sockets are the lines of both TCP tables when measured, the host's own included; the tools ran in turn, round by round, in a rotating order.\n\n")
	w("| sockets | rounds |")
	for _, t := range toolOrder {
		w(" %s |", t)
	}
	w("\n|---:|---:|")
	for range toolOrder {
		w("---:|")
	}
	w("\n")
	for _, s := range r.sizes {
		w("| %d | %d |", s.sockets, s.rounds)
		for _, t := range toolOrder {
			if v, ok := s.median(t); ok {
				more := ""
				if s.timedOut[t] {
					more = "> "
				}
				w(" %s%s |", more, ms(v))
			} else {
				w(" – |")
			}
		}
		w("\n")
	}
	w("\n`netlink` and `procfs` are `--collector.tcp.source=…` with `--no-collector.process --no-collector.pools` (the host, queue and port families); `+ process` is every collector on (the /proc/PID/fd walk, warm: steady state); `cold` is the first scrape after a start (%d starts per size), before any process is cached. Every other flag is at its default (so `--collector.netns` is on).\n\n", coldStartsPerRun)
	w("![time per scrape against sockets](%s)\n\n", png)

	w("## Ratios\n\n| sockets | netlink / ss -tan | netlink / node_exporter | procfs / cat | netlink + process / ss -tanp | cold / ss -tanp | procfs + process / ss -tanp |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.sizes {
		w("| %d |", s.sockets)
		for _, p := range [][2]string{{toolNetlink, toolSS}, {toolNetlink, toolNode}, {toolProcfs, toolCat}, {toolNetlinkProc, toolSSP}, {toolNetlinkCold, toolSSP}, {toolProcfsProc, toolSSP}} {
			if v, ok := ratio(s, p[0], p[1]); ok {
				w(" %s%.2f |", bound(s, p[0], p[1]), v)
			} else {
				w(" – |")
			}
		}
		w("\n")
	}

	w("\nThe table stage alone (the exporter's own `tcpstate_snapshot_duration_seconds{stage=\"tables\"}`, medians in ms: reading and parsing, without classifying, the views and HTTP) against the floor of its source:\n\n")
	w("| sockets | netlink tables | ss -tan | procfs tables | cat | procfs tables / cat |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.sizes {
		nl, ok1 := medianMs(s.tableStage[toolNetlink])
		pf, ok2 := medianMs(s.tableStage[toolProcfs])
		ss, _ := s.median(toolSS)
		cat, ok3 := s.median(toolCat)
		if ok1 && ok2 && ok3 && cat > 0 {
			w("| %d | %s | %s | %s | %s | %.2f |\n", s.sockets, ms(nl), ms(ss), ms(pf), ms(cat), pf/cat)
		}
	}

	w("\n## Memory\n\nPeak RSS (VmHWM) of each server after its rounds, and bytes our exporter allocated per scrape (the growth of its `go_memstats_alloc_bytes_total` over the rounds, HTTP and encoding included).\n\n")
	w("| sockets | netlink | procfs | netlink + process | procfs + process | node_exporter | alloc/scrape netlink | alloc/scrape netlink + process | alloc/scrape procfs + process |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.sizes {
		w("| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.sockets,
			mb(s.peakRSS[toolNetlink]), mb(s.peakRSS[toolProcfs]), mb(s.peakRSS[toolNetlinkProc]), mb(s.peakRSS[toolProcfsProc]), mb(s.peakRSS[toolNode]),
			kb(s.allocPerScrape[toolNetlink]), kb(s.allocPerScrape[toolNetlinkProc]), kb(s.allocPerScrape[toolProcfsProc]))
	}
	for i := 1; i < len(r.sizes); i++ {
		a, b := r.sizes[i-1], r.sizes[i]
		w("| per extra socket, %d → %d |", a.sockets, b.sockets)
		for _, t := range []string{toolNetlink, toolProcfs, toolNetlinkProc, toolProcfsProc, toolNode} {
			if v, ok := perExtraSocket(a, b, t); ok {
				w(" %.1f bytes |", v)
			} else {
				w(" – |")
			}
		}
		w(" – | – | – |\n")
	}
	w("\nPeak RSS of `netlink + process` after %d more scrapes (the heap grows towards the garbage collector's goal over many scrapes):", soakScrapes)
	for _, s := range r.sizes {
		if s.soakRSS > 0 {
			w(" %s at %d sockets (GOGC %.0f);", mb(s.soakRSS), s.sockets, s.gogc)
		}
	}
	w("\n")
	w("\nSockets each server reported in its first scrape (sum of `tcpstate_connections`, `node_tcp_connection_states`), as a check that all saw the held sockets:\n\n| sockets | ")
	names := []string{toolNode, toolNetlink, toolProcfs, toolNetlinkProc, toolProcfsProc}
	w("%s |\n|---:|%s\n", strings.Join(names, " | "), strings.Repeat("---:|", len(names)))
	for _, s := range r.sizes {
		w("| %d |", s.sockets)
		for _, n := range names {
			w(" %.0f |", s.seen[n])
		}
		w("\n")
	}
	if len(r.skipped) > 0 {
		w("\nNot measured: %s.\n", strings.Join(r.skipped, "; "))
	}

	w("\n## CPU per scrape\n\nCPU time (user and system) the exporter spent per scrape, from its own `process_cpu_seconds_total` over the rounds; `cold` is a fresh start's first scrape, start-up included (median of %d). This is what a CPU limit must leave room for: a scrape needs this much CPU within the scrape timeout, so a limit of L cores lets it finish in about CPU / L seconds (the walk of /proc/PID/fd uses up to `--collector.process.workers` threads).\n\n", coldStartsPerRun)
	w("| sockets | netlink | procfs | netlink + process | procfs + process | netlink + process, cold |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.sizes {
		w("| %d |", s.sockets)
		for _, t := range []string{toolNetlink, toolProcfs, toolNetlinkProc, toolProcfsProc} {
			if v, ok := s.cpuPerScrape[t]; ok && v > 0 {
				w(" %s s |", secs(v))
			} else {
				w(" – |")
			}
		}
		if v, ok := medianFloat(s.coldCPU); ok {
			w(" %s s |", secs(v))
		} else {
			w(" – |")
		}
		w("\n")
	}

	if l := r.limited; l != nil {
		w("\n## Under the shipped limits\n\nThe exporter (netlink, every collector, defaults) in a cgroup with the CPU quota and memory limit of `packaging/kubernetes/daemonset.yaml` (read from the file: cpu %dm, memory %d MiB), at %d sockets: %d cold starts, each first scrape followed by %d warm ones; wall time of the HTTP scrape.\n\n", l.cpuMilli, l.memBytes>>20, l.sockets, limitedRuns, limitedWarm)
		if l.notMeasuredWhy != "" {
			w("Not measured: %s.\n", l.notMeasuredWhy)
		} else {
			c, _ := medianMs(l.cold)
			wm, _ := medianMs(l.warm)
			w("| cold, median | cold, worst | warm, median | warm, worst | cgroup memory peak | memory limit hit | exporter killed |\n|---:|---:|---:|---:|---:|---:|---:|\n")
			w("| %s ms | %s ms | %s ms | %s ms | %s | %d times | %v |\n", ms(c), ms(float64(worst(l.cold))/1e6), ms(wm), ms(float64(worst(l.warm))/1e6), mb(l.peak), l.failcnt, l.died)
		}
	}

	w("\n## Kernel ages\n\nWhat reading the CLOSE_WAIT sockets' `tcp_info` (their age from the kernel's clock) costs, measured in the benchmark's own process, medians over the rounds in milliseconds. The exporter's steady state is one dump of every state per family, as before kernel ages, plus one lookup for each CLOSE_WAIT socket it has not seen before; its first reading after a start dumps the CLOSE_WAIT sockets a second time, with their ages, because a second dump walks the kernel's whole socket hash again.\n\n")
	w("| sockets | in CLOSE_WAIT | with a kernel age | one dump (steady state) | two dumps, ages (first reading) | ratio | lookups of every CLOSE_WAIT socket | per lookup |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.sizes {
		plain, ok1 := s.median(toolDumpPlain)
		ages, ok2 := s.median(toolDumpAges)
		look, ok3 := s.median(toolAgeLookups)
		if ok1 && ok2 && ok3 && plain > 0 {
			per := "–"
			if s.closeWait > 0 {
				per = fmt.Sprintf("%.1f µs", look*1000/float64(s.closeWait))
			}
			w("| %d | %d | %d | %s | %s | %.2f× | %s | %s |\n", s.sockets, s.closeWait, s.kernelAged, ms(plain), ms(ages), ages/plain, ms(look), per)
		}
	}

	if len(r.previous) > 0 {
		w("\n## Against the previous report\n\nMedians of this run against those of the report it replaced (%s), at the sizes both measured (within a fifth), in milliseconds; below 1 is faster now.\n\n", r.previousDate)
		w("| sockets (then) |")
		for _, t := range ourTools {
			w(" %s |", t)
		}
		w("\n|---:|%s\n", strings.Repeat("---:|", len(ourTools)))
		for _, s := range r.sizes {
			prev, n, ok := r.previousAt(s.sockets)
			if !ok {
				continue
			}
			w("| %d (%d) |", s.sockets, n)
			for _, t := range ourTools {
				now, ok1 := s.median(t)
				then, ok2 := prev[t]
				if ok1 && ok2 && then > 0 {
					w(" %s / %s = %.2f× |", ms(now), ms(then), now/then)
				} else {
					w(" – |")
				}
			}
			w("\n")
		}
	}

	w("\n## Goals\n\n| goal | target | measured | met |\n|---|---|---|---|\n")
	for _, g := range r.goals() {
		met := "no"
		if !g.known {
			met = "–"
		} else if g.met {
			met = "yes"
		}
		w("| %s | %s | %s | %s |\n", g.what, g.target, g.measured, met)
	}

	if len(r.goBench) > 0 {
		var tracked []string
		w("\n## Go benchmarks on generated tables\n\n`go test -run '^$' -bench 'ProcfsTables|NetlinkParse|Scrape|TrackedSocket' -benchmem ./collector/...`: tables of N lines generated in a temporary folder (20 listeners; inbound and outbound connections in realistic states; one in ten IPv6). `ProcfsTables` reads both files, `NetlinkParse` parses sock_diag answers already in memory (the exporter's share of a netlink reading), `Scrape` is a whole scrape of every collector from the procfs tree, its metrics drained as an HTTP scrape would. `TrackedSocket` ages 100 000 outbound CLOSE_WAIT sockets in the tracker; its bytes per socket are the live heap one record (age and route) costs.\n\n")
		w("| benchmark | ns/op | ns/socket | B/op | allocs/op | allocs/op per line |\n|---|---:|---:|---:|---:|---:|\n")
		for _, l := range r.goBench {
			if v, ok := l.values["bytes/socket"]; ok {
				tracked = append(tracked, fmt.Sprintf("%s: %.0f bytes per tracked socket, %.0f ns per socket aged", strings.TrimPrefix(l.name, "Benchmark"), v, l.values["ns/socket"]))
				continue
			}
			n := linesOf(l.name)
			perLine := "–"
			if n > 0 && !strings.HasPrefix(l.name, "BenchmarkScrape") {
				perLine = fmt.Sprintf("%.4f", l.values["allocs/op"]/n)
			}
			w("| %s | %.0f | %.1f | %.0f | %.0f | %s |\n", strings.TrimPrefix(l.name, "Benchmark"), l.values["ns/op"], l.values["ns/socket"], l.values["B/op"], l.values["allocs/op"], perLine)
		}
		if len(tracked) > 0 {
			w("\n%s.\n", strings.Join(tracked, "; "))
		}
	}
	if len(r.nlCompare) > 0 {
		w("\n## Choosing the netlink library\n\n`cd bench/nlcompare && go test -bench . -benchmem` (medians of 3 runs): each way dumps every TCP socket of both families with the exporter's request (all states, no extensions) and converts it to a `tables.Socket`; its test checks that all ways read the same sockets. The benchmark holds 8 000 loopback connections of its own, besides the sockets held above at the time.\n\n")
		w("| way | ns/op | ns/socket | sockets | B/op | allocs/op |\n|---|---:|---:|---:|---:|---:|\n")
		for _, l := range medianLines(r.nlCompare) {
			w("| %s | %.0f | %.0f | %.0f | %.0f | %.0f |\n", strings.TrimPrefix(l.name, "BenchmarkDump/"), l.values["ns/op"], l.values["ns/socket"], l.values["sockets"], l.values["B/op"], l.values["allocs/op"])
		}
	}
	w("\n%s", notes)
	return b.String()
}

// summary is what the run prints: the medians and the goals.
func (r *report) summary() string {
	var b strings.Builder
	for _, s := range r.sizes {
		fmt.Fprintf(&b, "%d sockets: %s\n", s.sockets, s.line())
	}
	for _, g := range r.goals() {
		met := "MISSED"
		if !g.known {
			met = "not measured"
		} else if g.met {
			met = "met"
		}
		fmt.Fprintf(&b, "%-8s %s: %s (target %s)\n", met, g.what, g.measured, g.target)
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "no size measured in both"
	}
	return s
}

func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func mb(v uint64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MB", float64(v)/1e6)
}

func secs(v float64) string {
	switch {
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	case v >= 0.01:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.4f", v)
}

func medianFloat(v []float64) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

func kb(v float64) string {
	if v <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f kB", v/1e3)
}
