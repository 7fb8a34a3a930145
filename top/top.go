package top

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
)

// Options are the flags of `tcpstate_exporter top`.
type Options struct {
	Limit    int
	Watch    bool
	Interval time.Duration
	Count    int // refreshes before exiting with --watch; 0: until interrupted
	// Sockets lists CLOSE_WAIT Sockets one by one instead of routes,
	// filtered; output is "table" or "json".
	Sockets bool
	Filter  Filter
	Output  string
	// Terminal: standard output is a Terminal, so --watch may clear the
	// screen; otherwise (a pipe, a file) each refresh is appended as plain
	// text.
	Terminal bool
}

// IsTerminal tells whether f is a terminal (it answers the TCGETS ioctl).
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// topRow is one process's sockets toward one remote endpoint, and one
// object of the JSON output.
type topRow struct {
	Process string `json:"process"`
	// Pids hold the route's sockets (a socket held by several processes
	// counts for its lowest pid).
	Pids        []int   `json:"pids"`
	Address     string  `json:"remote_address"`
	port        string  // the label; "other" for the folded row
	Port        int     `json:"remote_port,omitempty"`
	CloseWait   float64 `json:"close_wait"`
	Established float64 `json:"established"`
	// OldestSeconds is the age of the route's oldest CLOSE_WAIT socket;
	// absent when unknown.
	OldestSeconds *float64 `json:"oldest_close_wait_seconds,omitempty"`
	// Pool is the first declared pool the route belongs to, with its
	// maximum and what the whole pool holds (every route of it).
	Pool          string `json:"pool,omitempty"`
	pool          *poolUsage
	PoolMax       int      `json:"pool_max,omitempty"`
	PoolInUse     *float64 `json:"pool_in_use,omitempty"`
	PoolCloseWait *float64 `json:"pool_close_wait,omitempty"`
	PoolFull      bool     `json:"pool_full,omitempty"`
	// OpenFds and MaxFds are the process's open file descriptors and its
	// soft limit (tcpstate_process_open_fds and tcpstate_process_max_fds:
	// its pid nearest the limit; of the namespace nearest it, when the
	// route spans several); absent when unknown.
	OpenFds *float64 `json:"open_fds,omitempty"`
	MaxFds  *float64 `json:"max_fds,omitempty"`
}

// fdsMarkRatio marks a process's FDS at 90% of its limit, as
// TCPStateProcessFdsExhausting's gate: near the limit, EMFILE follows.
const fdsMarkRatio = 0.9

// fdsNear tells whether the row's process is at fdsMarkRatio of its limit.
func (r *topRow) fdsNear() bool {
	return r.OpenFds != nil && r.MaxFds != nil && *r.MaxFds > 0 && *r.OpenFds >= fdsMarkRatio**r.MaxFds
}

// fdUsage is one process name's fds against its limit.
type fdUsage struct{ open, max float64 }

func (u fdUsage) ratio() float64 {
	if u.max <= 0 || math.IsInf(u.max, 1) {
		return 0
	}
	return u.open / u.max
}

// poolUsage is a declared pool's sockets as tcpstate_pool_connections
// counts them. A pool's connections are in use while ESTABLISHED or
// CLOSE_WAIT (a CLOSE_WAIT socket keeps its slot until the application
// closes it); the pool is full when they reach its maximum, as
// TCPStatePoolSaturated and, for CLOSE_WAIT alone, TCPStatePoolExhausted
// say.
type poolUsage struct {
	closeWait, established float64
	// closed counts sockets the kernel dropped (reset) while a process
	// still holds them: they keep their pool slot as CLOSE_WAIT ones do.
	closed float64
}

// topView is what one refresh of `top` shows: the same numbers a scrape of
// /metrics carries, taken from the same collectors, and one object of the
// JSON output.
type topView struct {
	Rows                []topRow `json:"routes"`
	HostCloseWait       *float64 `json:"close_wait_total,omitempty"`
	HostEstablished     *float64 `json:"established_total,omitempty"`
	UnresolvedCloseWait float64  `json:"unresolved_close_wait"`
	Truncated           float64  `json:"series_folded"`
	Failed              []string `json:"failed_collectors,omitempty"`
	// Matched counts the routes that pass the filters; Rows holds at most
	// --limit of them.
	Matched int `json:"matched"`
	// collectors lists the collectors that ran, to tell an empty table's
	// reason.
	collectors map[string]bool
	filtered   bool
	total      int // routes before the filters
}

// gatherTop runs one scrape through the exporter and arranges its families
// as the table's rows, the pids that hold each route's sockets from the
// same reading.
//
// On the first refresh the exporter has seen every socket just once, so
// only the kernel's ages mean anything yet: withAges is false and OLDEST
// reads "-" for routes whose ages are all first sightings.
func gatherTop(ctx context.Context, e *collector.Exporter, cfg *config.Config, f Filter, withAges bool) (*topView, error) {
	want, err := f.lookupPool(cfg)
	if err != nil {
		return nil, err
	}
	families, holders, err := e.GatherRoutes(ctx)
	if err != nil {
		return nil, err
	}
	v := &topView{Rows: []topRow{}, collectors: map[string]bool{}, filtered: f != (Filter{})}
	var hostCW, hostEst float64
	rows := map[collector.Route]*topRow{}
	row := func(m *dto.Metric) *topRow {
		k := collector.Route{Process: label(m, "process"), Address: label(m, "remote_address"), Port: label(m, "remote_port")}
		r := rows[k]
		if r == nil {
			r = &topRow{Process: k.Process, Address: k.Address, port: k.Port, Pids: holders[k]}
			if r.Pids == nil {
				r.Pids = []int{} // the folded row: [] in JSON, not null
			}
			r.Port, _ = strconv.Atoi(k.Port)
			rows[k] = r
		}
		return r
	}
	pools := map[string]*poolUsage{}
	// fds by process name and namespace, then the nearest namespace.
	type procNS struct{ process, netns string }
	fds := map[procNS]*fdUsage{}
	fd := func(m *dto.Metric) *fdUsage {
		k := procNS{label(m, "process"), label(m, "netns")}
		if fds[k] == nil {
			fds[k] = &fdUsage{}
		}
		return fds[k]
	}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			val := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				val = m.GetCounter().GetValue()
			}
			switch fam.GetName() {
			case "tcpstate_process_remote_connections":
				switch label(m, "state") {
				case "close_wait":
					row(m).CloseWait += val
				case "established":
					row(m).Established += val
				}
			case "tcpstate_process_remote_close_wait_oldest_seconds":
				// A first sighting at this very reading is 0 and means
				// nothing yet; a kernel age is right at once.
				// Rows add up a route's network namespaces (pods): the
				// oldest of them counts.
				if withAges || val > 0 {
					if o := row(m).OldestSeconds; o == nil || val > *o {
						age := val
						row(m).OldestSeconds = &age
					}
				}
			case "tcpstate_process_open_fds":
				fd(m).open = val
			case "tcpstate_process_max_fds":
				fd(m).max = val
			case "tcpstate_pool_connections":
				p := pools[label(m, "pool")]
				if p == nil {
					p = &poolUsage{}
					pools[label(m, "pool")] = p
				}
				switch label(m, "state") {
				case "close_wait":
					p.closeWait += val
				case "established":
					p.established += val
				case "close":
					p.closed += val
				}
			case "tcpstate_connections":
				switch label(m, "state") {
				case "close_wait":
					hostCW += val
				case "established":
					hostEst += val
				}
			case "tcpstate_unresolved_sockets":
				if label(m, "state") == "close_wait" {
					v.UnresolvedCloseWait += val
				}
			case "tcpstate_series_truncated":
				v.Truncated += val
			case "tcpstate_scrape_collector_success":
				v.collectors[label(m, "collector")] = true
				if val == 0 {
					v.Failed = append(v.Failed, label(m, "collector"))
				}
			}
		}
	}
	if v.collectors["connections"] {
		v.HostCloseWait, v.HostEstablished = &hostCW, &hostEst
	}
	nearest := map[string]fdUsage{}
	for k, u := range fds {
		if n, ok := nearest[k.process]; !ok || u.ratio() > n.ratio() || (u.ratio() == n.ratio() && u.open > n.open) {
			nearest[k.process] = *u
		}
	}
	for _, r := range rows {
		if r.CloseWait == 0 && r.Established == 0 {
			continue
		}
		v.total++
		if !f.matchesRoute(r, want) {
			continue
		}
		if u, ok := nearest[r.Process]; ok && !math.IsInf(u.max, 1) {
			r.OpenFds, r.MaxFds = &u.open, &u.max
		}
		r.Pool, r.PoolMax = matchPool(cfg, r)
		if want != nil {
			r.Pool, r.PoolMax = want.Name, want.Max
		}
		if p := pools[r.Pool]; p != nil && r.Pool != "" {
			inUse, cw := p.closeWait+p.closed+p.established, p.closeWait
			r.pool, r.PoolInUse, r.PoolCloseWait = p, &inUse, &cw
			r.PoolFull = inUse >= float64(r.PoolMax)
		}
		v.Rows = append(v.Rows, *r)
	}
	v.Matched = len(v.Rows)
	slices.SortFunc(v.Rows, func(a, b topRow) int {
		switch {
		case a.CloseWait != b.CloseWait:
			return cmpDesc(a.CloseWait, b.CloseWait)
		case a.Established != b.Established:
			return cmpDesc(a.Established, b.Established)
		}
		return strings.Compare(a.Process+" "+a.Address+" "+a.port, b.Process+" "+b.Address+" "+b.port)
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

// routeEndpoint is a row's remote endpoint, or false for the folded
// "other" row.
func routeEndpoint(r *topRow) (netip.AddrPort, bool) {
	addr, err := netip.ParseAddr(r.Address)
	if err != nil {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(r.port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}

// matchPool names the first declared pool the row's sockets belong to.
func matchPool(cfg *config.Config, r *topRow) (string, int) {
	remote, ok := routeEndpoint(r)
	if cfg == nil || !ok {
		return "", 0
	}
	for _, p := range cfg.Pools {
		if p.Matches(remote, r.Process, true) {
			return p.Name, p.Max
		}
	}
	return "", 0
}

// matchesRoute tells whether a row passes the filter; pool is the declared
// pool named by the filter, or nil. The folded "other" row passes only an
// empty filter.
func (f Filter) matchesRoute(r *topRow, pool *config.Pool) bool {
	if f == (Filter{}) {
		return true
	}
	remote, ok := routeEndpoint(r)
	switch {
	case !ok:
		return false
	case f.process != nil && !f.process.MatchString(r.Process):
		return false
	case f.address.IsValid() && !f.address.Contains(remote.Addr()):
		return false
	case f.port != 0 && remote.Port() != f.port:
		return false
	case pool != nil && !pool.Matches(remote, r.Process, true):
		return false
	}
	return true
}

// limitRows keeps the first limit rows (all with 0).
func (v *topView) limitRows(limit int) {
	if limit > 0 && len(v.Rows) > limit {
		v.Rows = v.Rows[:limit]
	}
}

// render writes the table of the worst offenders; limitRows has run.
func (v *topView) render(w io.Writer) {
	if v.HostCloseWait != nil {
		fmt.Fprintf(w, "CLOSE_WAIT %.0f  ESTABLISHED %.0f", *v.HostCloseWait, *v.HostEstablished)
	} else {
		fmt.Fprint(w, "no host totals: the connections collector is off")
	}
	if v.UnresolvedCloseWait > 0 {
		fmt.Fprintf(w, "  (%.0f CLOSE_WAIT sockets have no known process: run as root or with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE)", v.UnresolvedCloseWait)
	}
	fmt.Fprintln(w)
	if v.filtered {
		fmt.Fprintf(w, "%d of %d routes match\n", v.Matched, v.total)
	}
	if len(v.Failed) > 0 {
		fmt.Fprintf(w, "incomplete: collectors %s failed (see the log)\n", strings.Join(v.Failed, ", "))
	}
	if v.Truncated > 0 {
		fmt.Fprintf(w, "%.0f series folded into \"other\" (--collector.max-series)\n", v.Truncated)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PROCESS\tPIDS\tREMOTE\tCLOSE_WAIT\tESTABLISHED\tPOOL\tIN USE/MAX\tOLDEST\tFDS\t")
	var full, nearFds []*topRow
	for i := range v.Rows {
		r := &v.Rows[i]
		remote := r.Address + ":" + r.port
		if strings.Contains(r.Address, ":") {
			remote = "[" + r.Address + "]:" + r.port
		}
		pool, use := "-", "-"
		if r.Pool != "" {
			pool, use = r.Pool, "?/"+strconv.Itoa(r.PoolMax)
			if r.PoolInUse != nil {
				use = fmt.Sprintf("%.0f/%d", *r.PoolInUse, r.PoolMax)
			}
			if r.PoolFull {
				use += " FULL"
				if !slices.ContainsFunc(full, func(f *topRow) bool { return f.Pool == r.Pool }) {
					full = append(full, r)
				}
			}
		}
		oldest := "-"
		if r.OldestSeconds != nil {
			oldest = formatAge(time.Duration(*r.OldestSeconds * float64(time.Second)))
		}
		fdsText := "-"
		if r.OpenFds != nil && r.MaxFds != nil {
			fdsText = fmt.Sprintf("%.0f/%.0f", *r.OpenFds, *r.MaxFds)
			if r.fdsNear() {
				fdsText += "!"
				if !slices.ContainsFunc(nearFds, func(f *topRow) bool { return f.Process == r.Process }) {
					nearFds = append(nearFds, r)
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t\n", r.Process, formatPids(r.Pids), remote, r.CloseWait, r.Established, pool, use, oldest, fdsText)
	}
	tw.Flush()
	if v.Matched == 0 {
		fmt.Fprintf(w, "(no rows: %s)\n", v.emptyReason())
	}
	if v.Matched > len(v.Rows) {
		fmt.Fprintf(w, "(%d more rows; --limit shows more)\n", v.Matched-len(v.Rows))
	}
	for _, r := range full {
		closed := ""
		if r.pool.closed > 0 {
			closed = fmt.Sprintf(", %.0f in CLOSE (reset, still held)", r.pool.closed)
		}
		fmt.Fprintf(w, "FULL: pool %s holds %.0f connections (%.0f in CLOSE_WAIT%s, %.0f ESTABLISHED) for a maximum of %d\n",
			r.Pool, *r.PoolInUse, r.pool.closeWait, closed, r.pool.established, r.PoolMax)
	}
	for _, r := range nearFds {
		fmt.Fprintf(w, "FDS: process %s has %.0f of its %.0f file descriptors open (%.0f%%); at the limit, accept(), connect() and open() fail with EMFILE\n",
			r.Process, *r.OpenFds, *r.MaxFds, 100**r.OpenFds / *r.MaxFds)
	}
}

// emptyReason says why the table has no row, from what the scrape shows.
func (v *topView) emptyReason() string {
	switch {
	case v.filtered && v.total > 0:
		return "no route matches the filters"
	case !v.collectors["process"]:
		return "the process collector is off; rows need it (--collector.process)"
	case slices.Contains(v.Failed, "process"):
		return "the process collector failed; run with --log.level=error to see why"
	case v.UnresolvedCloseWait > 0 && (v.HostCloseWait == nil || v.UnresolvedCloseWait >= *v.HostCloseWait):
		return fmt.Sprintf("the %.0f CLOSE_WAIT sockets have no known process: the exporter may not read other users' /proc/PID/fd; run as root or with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE (--log.level=warn says which processes)", v.UnresolvedCloseWait)
	case v.HostCloseWait != nil && *v.HostCloseWait > 0:
		return fmt.Sprintf("the %.0f CLOSE_WAIT sockets are not outbound (a server's accepted connections, see tcpstate_local_port_connections) or not in --collector.process.remote-states", *v.HostCloseWait)
	default:
		return "no outbound socket in CLOSE_WAIT or ESTABLISHED has a known process"
	}
}

// formatPids lists up to four pids; of more, the first three and how many
// others.
func formatPids(p []int) string {
	if len(p) == 0 {
		return "-"
	}
	s := make([]string, 0, 4)
	for i, pid := range p {
		if i == 3 && len(p) > 4 {
			s = append(s, fmt.Sprintf("+%d", len(p)-3))
			break
		}
		s = append(s, strconv.Itoa(pid))
	}
	return strings.Join(s, ",")
}

// Run prints the table once or, with watch, refreshes it.
func Run(ctx context.Context, e *collector.Exporter, cfg func() *config.Config, o Options, w io.Writer) error {
	for i := 0; ; i++ {
		var render func()
		if o.Sockets {
			socks, readErr := e.CloseWaitSockets(ctx)
			l, err := listSockets(socks, readErr, cfg(), o.Filter, o.Limit, i == 0)
			if err != nil {
				return err
			}
			if o.Output == "json" {
				if err := l.renderJSON(w); err != nil {
					return err
				}
			} else {
				render = func() { l.render(w) }
			}
		} else {
			v, err := gatherTop(ctx, e, cfg(), o.Filter, i > 0)
			if err != nil {
				return err
			}
			v.limitRows(o.Limit)
			if o.Output == "json" {
				if err := writeJSON(w, v); err != nil {
					return err
				}
			} else {
				render = func() { v.render(w) }
			}
		}
		if render != nil {
			if o.Watch {
				if o.Terminal {
					fmt.Fprint(w, "\033[H\033[2J") // home and clear
				} else if i > 0 {
					fmt.Fprintln(w) // a blank line between refreshes
				}
				fmt.Fprintf(w, "tcpstate_exporter top — %s, every %s\n", time.Now().Format(time.TimeOnly), o.Interval)
			}
			render()
		}
		if !o.Watch || (o.Count > 0 && i+1 >= o.Count) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Interval):
		}
	}
}

// writeJSON writes one refresh as one indented JSON object.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
