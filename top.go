package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector"
)

// topOptions are the flags of `tcpstate_exporter top`.
type topOptions struct {
	limit    int
	watch    bool
	interval time.Duration
	count    int // refreshes before exiting with --watch; 0: until interrupted
	// sockets lists CLOSE_WAIT sockets one by one instead of routes,
	// filtered; output is "table" or "json".
	sockets bool
	filter  socketFilter
	output  string
	// terminal: standard output is a terminal, so --watch may clear the
	// screen; otherwise (a pipe, a file) each refresh is appended as plain
	// text.
	terminal bool
}

// isTerminal tells whether f is a terminal (it answers the TCGETS ioctl).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// topRow is one process's sockets toward one remote endpoint.
type topRow struct {
	process, address, port string
	closeWait, established float64
	oldest                 float64 // seconds; negative when unknown
	pool                   string
	poolMax                int
}

// topView is what one refresh of `top` shows: the same numbers a scrape of
// /metrics carries, taken from the same collectors.
type topView struct {
	rows                []topRow
	hostCloseWait       float64
	hostEstablished     float64
	unresolvedCloseWait float64
	truncated           float64
	failed              []string
	// collectors lists the collectors that ran, to tell an empty table's
	// reason.
	collectors map[string]bool
}

// gatherTop runs one scrape through the exporter and arranges its families
// as the table's rows.
//
// On the first refresh the exporter has seen every socket just once, so
// only the kernel's ages mean anything yet: withAges is false and OLDEST
// reads "-" for routes whose ages are all first sightings.
func gatherTop(ctx context.Context, e *collector.Exporter, cfg *collector.Config, withAges bool) (*topView, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(e.Bind(ctx)); err != nil {
		return nil, err
	}
	families, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	v := &topView{collectors: map[string]bool{}}
	rows := map[[3]string]*topRow{}
	row := func(m *dto.Metric) *topRow {
		k := [3]string{label(m, "process"), label(m, "remote_address"), label(m, "remote_port")}
		r := rows[k]
		if r == nil {
			r = &topRow{process: k[0], address: k[1], port: k[2], oldest: -1}
			rows[k] = r
		}
		return r
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			val := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				val = m.GetCounter().GetValue()
			}
			switch f.GetName() {
			case "tcpstate_process_remote_connections":
				switch label(m, "state") {
				case "close_wait":
					row(m).closeWait += val
				case "established":
					row(m).established += val
				}
			case "tcpstate_process_remote_close_wait_oldest_seconds":
				// A first sighting at this very reading is 0 and means
				// nothing yet; a kernel age is right at once.
				// Rows add up a route's network namespaces (pods): the
				// oldest of them counts.
				if withAges || val > 0 {
					row(m).oldest = max(row(m).oldest, val)
				}
			case "tcpstate_connections":
				switch label(m, "state") {
				case "close_wait":
					v.hostCloseWait += val
				case "established":
					v.hostEstablished += val
				}
			case "tcpstate_unresolved_sockets":
				if label(m, "state") == "close_wait" {
					v.unresolvedCloseWait += val
				}
			case "tcpstate_series_truncated":
				v.truncated += val
			case "tcpstate_scrape_collector_success":
				v.collectors[label(m, "collector")] = true
				if val == 0 {
					v.failed = append(v.failed, label(m, "collector"))
				}
			}
		}
	}
	for _, r := range rows {
		if r.closeWait == 0 && r.established == 0 {
			continue
		}
		r.pool, r.poolMax = matchPool(cfg, r)
		v.rows = append(v.rows, *r)
	}
	slices.SortFunc(v.rows, func(a, b topRow) int {
		switch {
		case a.closeWait != b.closeWait:
			return cmpDesc(a.closeWait, b.closeWait)
		case a.established != b.established:
			return cmpDesc(a.established, b.established)
		}
		return strings.Compare(a.process+" "+a.address+" "+a.port, b.process+" "+b.address+" "+b.port)
	})
	return v, nil
}

func cmpDesc(a, b float64) int {
	if a > b {
		return -1
	}
	return 1
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// matchPool names the first declared pool the row's sockets belong to.
func matchPool(cfg *collector.Config, r *topRow) (string, int) {
	if cfg == nil {
		return "", 0
	}
	addr, err := netip.ParseAddr(r.address)
	if err != nil {
		return "", 0 // the folded "other" row
	}
	port, err := strconv.ParseUint(r.port, 10, 16)
	if err != nil {
		return "", 0
	}
	for _, p := range cfg.Pools {
		if p.Matches(netip.AddrPortFrom(addr, uint16(port)), r.process, true) {
			return p.Name, p.Max
		}
	}
	return "", 0
}

// pidsByName lists the pids of the processes with the given comm names.
func pidsByName(procRoot string, names map[string]bool) map[string][]int {
	out := map[string][]int{}
	dirs, _ := filepath.Glob(filepath.Join(procRoot, "[0-9]*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil {
			continue // exited
		}
		name := strings.TrimSuffix(string(comm), "\n")
		if names[name] {
			out[name] = append(out[name], pid)
		}
	}
	for _, p := range out {
		slices.Sort(p)
	}
	return out
}

// render writes the table of the worst offenders.
func (v *topView) render(w io.Writer, procRoot string, limit int) {
	if v.collectors["connections"] {
		fmt.Fprintf(w, "CLOSE_WAIT %.0f  ESTABLISHED %.0f", v.hostCloseWait, v.hostEstablished)
	} else {
		fmt.Fprint(w, "no host totals: the connections collector is off")
	}
	if v.unresolvedCloseWait > 0 {
		fmt.Fprintf(w, "  (%.0f CLOSE_WAIT sockets have no known process: run as root or with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE)", v.unresolvedCloseWait)
	}
	fmt.Fprintln(w)
	if len(v.failed) > 0 {
		fmt.Fprintf(w, "incomplete: collectors %s failed (see the log)\n", strings.Join(v.failed, ", "))
	}
	if v.truncated > 0 {
		fmt.Fprintf(w, "%.0f series folded into \"other\" (--collector.max-series)\n", v.truncated)
	}
	rows := v.rows
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	names := map[string]bool{}
	for _, r := range rows {
		names[r.process] = true
	}
	pids := pidsByName(procRoot, names)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PROCESS\tPIDS\tREMOTE\tCLOSE_WAIT\tESTABLISHED\tPOOL\tMAX\tOLDEST\t")
	for _, r := range rows {
		remote := r.address + ":" + r.port
		if strings.Contains(r.address, ":") {
			remote = "[" + r.address + "]:" + r.port
		}
		pool, maxConns := "-", "-"
		if r.pool != "" {
			pool, maxConns = r.pool, strconv.Itoa(r.poolMax)
		}
		oldest := "-"
		if r.oldest >= 0 {
			oldest = formatAge(time.Duration(r.oldest * float64(time.Second)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t\n", r.process, formatPids(pids[r.process]), remote, r.closeWait, r.established, pool, maxConns, oldest)
	}
	tw.Flush()
	if len(v.rows) == 0 {
		fmt.Fprintf(w, "(no rows: %s)\n", v.emptyReason())
	}
	if len(v.rows) > len(rows) {
		fmt.Fprintf(w, "(%d more rows; --limit shows more)\n", len(v.rows)-len(rows))
	}
}

// emptyReason says why the table has no row, from what the scrape shows.
func (v *topView) emptyReason() string {
	switch {
	case !v.collectors["process"]:
		return "the process collector is off; rows need it (--collector.process)"
	case slices.Contains(v.failed, "process"):
		return "the process collector failed; run with --log.level=error to see why"
	case v.unresolvedCloseWait > 0 && (!v.collectors["connections"] || v.unresolvedCloseWait >= v.hostCloseWait):
		return fmt.Sprintf("the %.0f CLOSE_WAIT sockets have no known process: the exporter may not read other users' /proc/PID/fd; run as root or with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE (--log.level=warn says which processes)", v.unresolvedCloseWait)
	case v.collectors["connections"] && v.hostCloseWait > 0:
		return fmt.Sprintf("the %.0f CLOSE_WAIT sockets are not outbound (a server's accepted connections, see tcpstate_local_port_connections) or not in --collector.process.remote-states", v.hostCloseWait)
	default:
		return "no outbound socket in CLOSE_WAIT or ESTABLISHED has a known process"
	}
}

func formatPids(p []int) string {
	if len(p) == 0 {
		return "-"
	}
	s := make([]string, 0, 3)
	for i, pid := range p {
		if i == 3 {
			s = append(s, fmt.Sprintf("+%d", len(p)-3))
			break
		}
		s = append(s, strconv.Itoa(pid))
	}
	return strings.Join(s, ",")
}

// runTop prints the table once or, with watch, refreshes it.
func runTop(ctx context.Context, e *collector.Exporter, cfg func() *collector.Config, procRoot string, o topOptions, w io.Writer) error {
	for i := 0; ; i++ {
		var render func()
		if o.sockets {
			socks, readErr := e.CloseWaitSockets(ctx)
			l, err := listSockets(socks, readErr, cfg(), o.filter, o.limit, i == 0)
			if err != nil {
				return err
			}
			if o.output == "json" {
				if err := l.renderJSON(w); err != nil {
					return err
				}
			} else {
				render = func() { l.render(w) }
			}
		} else {
			v, err := gatherTop(ctx, e, cfg(), i > 0)
			if err != nil {
				return err
			}
			render = func() { v.render(w, procRoot, o.limit) }
		}
		if render != nil {
			if o.watch {
				if o.terminal {
					fmt.Fprint(w, "\033[H\033[2J") // home and clear
				} else if i > 0 {
					fmt.Fprintln(w) // a blank line between refreshes
				}
				fmt.Fprintf(w, "tcpstate_exporter top — %s, every %s\n", time.Now().Format(time.TimeOnly), o.interval)
			}
			render()
		}
		if !o.watch || (o.count > 0 && i+1 >= o.count) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.interval):
		}
	}
}
