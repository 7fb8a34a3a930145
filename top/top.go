package top

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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
	// Exporter is asked for each refresh's reading; nil (--no-exporter):
	// top reads the kernel itself, as it also does when no exporter
	// answers.
	Exporter *ExporterClient
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
// object of the JSON output. Every key is always present.
type topRow struct {
	Process string `json:"process"`
	Netns   string `json:"netns"`
	// Pids hold the route's sockets (a socket held by several processes
	// counts for its lowest pid).
	Pids        []int   `json:"pids"`
	Address     string  `json:"remote_address"`
	port        string  // the label; "other" for the folded row
	Port        int     `json:"remote_port"`
	CloseWait   float64 `json:"close_wait"`
	Close       float64 `json:"close"`
	Established float64 `json:"established"`
	// OldestSeconds is the age of the route's oldest dead socket; null
	// when unknown.
	OldestSeconds *float64 `json:"oldest_close_wait_seconds"`
	// Pool is the pool the table shows: the one --pool names or else the
	// fullest the route belongs to (the first declared of equals), with
	// its maximum and what the whole pool holds (every route of it).
	Pool          string   `json:"pool"`
	PoolMax       int      `json:"pool_max"`
	PoolInUse     *float64 `json:"pool_in_use"`
	PoolCloseWait *float64 `json:"pool_close_wait"`
	PoolClose     *float64 `json:"pool_close"`
	PoolFull      bool     `json:"pool_full"`
	// Pools are every pool the route belongs to, in declared order.
	Pools []PoolReading `json:"pools"`
	// OpenFds and MaxFds are the process's open file descriptors and its
	// soft limit (its pid nearest the limit, in the route's namespace);
	// null when unknown.
	OpenFds *float64 `json:"open_fds"`
	MaxFds  *float64 `json:"max_fds"`
}

// fdsMarkRatio marks a process's FDS from 90% of its limit, as
// TCPStateProcessFdsExhausting's gate: near the limit, EMFILE follows.
const fdsMarkRatio = 0.9

// fdsNear tells whether the row's process is at fdsMarkRatio of its limit.
func (r *topRow) fdsNear() bool {
	return r.OpenFds != nil && r.MaxFds != nil && *r.MaxFds > 0 && *r.OpenFds >= fdsMarkRatio**r.MaxFds
}

// topView is what one refresh of `top` shows: the numbers of one reading,
// filtered, and one object of the JSON output.
type topView struct {
	Time                time.Time `json:"time"`
	Source              Source    `json:"source"`
	Rows                []topRow  `json:"routes"`
	HostCloseWait       *float64  `json:"close_wait_total"`
	HostEstablished     *float64  `json:"established_total"`
	UnresolvedCloseWait float64   `json:"unresolved_close_wait"`
	UnroutedClose       float64   `json:"unrouted_close"`
	Truncated           float64   `json:"series_folded"`
	Failed              []string  `json:"failed_collectors"`
	// Matched counts the routes that pass the filters; Rows holds at most
	// --limit of them.
	Matched int `json:"matched"`
	// collectors lists the collectors that ran, to tell an empty table's
	// reason.
	collectors []string
	filtered   bool
	total      int // routes before the filters
	// full are the full pools of the matching routes, in declared order.
	full []PoolReading
}

// viewRoutes filters a reading's routes and arranges them as the table's
// rows, worst first.
func viewRoutes(rd *Reading, src Source, f Filter) (*topView, error) {
	want, err := f.lookupPool(rd.Pools, src)
	if err != nil {
		return nil, err
	}
	v := &topView{Time: rd.Time, Source: src, Rows: []topRow{}, HostCloseWait: rd.CloseWaitTotal, HostEstablished: rd.EstablishedTotal,
		UnresolvedCloseWait: rd.UnresolvedCloseWait, UnroutedClose: rd.UnroutedClose, Truncated: rd.SeriesFolded,
		Failed: rd.FailedCollectors, collectors: rd.Collectors, filtered: f != (Filter{})}
	if v.Failed == nil {
		v.Failed = []string{}
	}
	pools := map[string]PoolReading{}
	for _, p := range rd.Pools {
		pools[p.Name] = p
	}
	fullSeen := map[string]bool{}
	for i := range rd.Routes {
		rr := &rd.Routes[i]
		v.total++
		if !f.matchesRoute(rr, want) {
			continue
		}
		r := topRow{Process: rr.Process, Netns: rr.Netns, Pids: rr.Pids, Address: rr.Address, port: rr.Port, CloseWait: rr.CloseWait,
			Close: rr.Close, Established: rr.Established, OldestSeconds: rr.OldestSeconds, Pools: []PoolReading{},
			OpenFds: rr.OpenFds, MaxFds: rr.MaxFds}
		if r.Pids == nil {
			r.Pids = []int{}
		}
		r.Port, _ = strconv.Atoi(rr.Port)
		for _, name := range rr.Pools {
			if p, ok := pools[name]; ok {
				r.Pools = append(r.Pools, p)
				if p.Full && !fullSeen[name] {
					fullSeen[name] = true
				}
			}
		}
		shown, ok := fullest(r.Pools)
		if want != nil {
			shown, ok = pools[want.Name], true
		}
		if ok {
			r.Pool, r.PoolMax, r.PoolInUse, r.PoolCloseWait, r.PoolClose, r.PoolFull = shown.Name, shown.Max, shown.InUse, shown.CloseWait, shown.Close, shown.Full
		}
		v.Rows = append(v.Rows, r)
	}
	for _, p := range rd.Pools {
		if fullSeen[p.Name] {
			v.full = append(v.full, p)
		}
	}
	v.Matched = len(v.Rows)
	slices.SortFunc(v.Rows, func(a, b topRow) int {
		switch {
		case a.CloseWait+a.Close != b.CloseWait+b.Close:
			return cmpDesc(a.CloseWait+a.Close, b.CloseWait+b.Close)
		case a.Established != b.Established:
			return cmpDesc(a.Established, b.Established)
		}
		return strings.Compare(a.Process+" "+a.Address+" "+a.port+" "+a.Netns, b.Process+" "+b.Address+" "+b.port+" "+b.Netns)
	})
	return v, nil
}

// fullest is the pool nearest its maximum (in use over max), the first
// declared of equals; without counts (the pools collector off), the first.
func fullest(pools []PoolReading) (PoolReading, bool) {
	if len(pools) == 0 {
		return PoolReading{}, false
	}
	best := pools[0]
	ratio := func(p PoolReading) float64 {
		if p.InUse == nil || p.Max <= 0 {
			return -1
		}
		return *p.InUse / float64(p.Max)
	}
	for _, p := range pools[1:] {
		if ratio(p) > ratio(best) {
			best = p
		}
	}
	return best, true
}

func cmpDesc(a, b float64) int {
	if a > b {
		return -1
	}
	return 1
}

// matchesRoute tells whether a row passes the filter; pool is the declared
// pool named by the filter, or nil. The folded "other" row passes only an
// empty filter.
func (f Filter) matchesRoute(r *RouteReading, pool *PoolReading) bool {
	if f == (Filter{}) {
		return true
	}
	remote := routeRemote(r)
	switch {
	case !remote.IsValid():
		return false
	case f.process != nil && !f.process.MatchString(r.Process):
		return false
	case f.address.IsValid() && !f.address.Contains(remote.Addr()):
		return false
	case f.port != 0 && remote.Port() != f.port:
		return false
	case pool != nil && !slices.Contains(r.Pools, pool.Name):
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
	v.Source.render(w)
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
	// The CLOSE and NETNS columns appear when they have something to say.
	withClose, withNetns, morePools := false, false, false
	for _, r := range v.Rows {
		withClose = withClose || r.Close > 0
		withNetns = withNetns || (r.Netns != "" && r.Netns != "host")
		morePools = morePools || len(r.Pools) > 1
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "PROCESS\tPIDS\tREMOTE\tCLOSE_WAIT\t"
	if withClose {
		header += "CLOSE\t"
	}
	header += "ESTABLISHED\tPOOL\tIN USE/MAX\tOLDEST\tFDS\t"
	if withNetns {
		header += "NETNS\t"
	}
	var nearFds []*topRow
	fmt.Fprintln(tw, header)
	for i := range v.Rows {
		r := &v.Rows[i]
		remote := r.Address + ":" + r.port
		if strings.Contains(r.Address, ":") {
			remote = "[" + r.Address + "]:" + r.port
		}
		pool, use := "-", "-"
		if r.Pool != "" {
			pool, use = r.Pool, "?/"+strconv.Itoa(r.PoolMax)
			if n := len(r.Pools) - 1; n > 0 {
				pool += fmt.Sprintf("(+%d)", n)
			}
			if r.PoolInUse != nil {
				use = fmt.Sprintf("%.0f/%d", *r.PoolInUse, r.PoolMax)
			}
			if r.PoolFull {
				use += " FULL"
			}
		}
		oldest := "-"
		if r.OldestSeconds != nil {
			oldest = formatAge(time.Duration(*r.OldestSeconds * float64(time.Second)))
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%.0f\t", r.Process, formatPids(r.Pids), remote, r.CloseWait)
		if withClose {
			line += fmt.Sprintf("%.0f\t", r.Close)
		}
		fds := "-"
		if r.OpenFds != nil && r.MaxFds != nil {
			fds = fmt.Sprintf("%.0f/%.0f", *r.OpenFds, *r.MaxFds)
			if r.fdsNear() {
				fds += "!"
				if !slices.ContainsFunc(nearFds, func(f *topRow) bool { return f.Process == r.Process && f.Netns == r.Netns }) {
					nearFds = append(nearFds, r)
				}
			}
		}
		line += fmt.Sprintf("%.0f\t%s\t%s\t%s\t%s\t", r.Established, pool, use, oldest, fds)
		if withNetns {
			line += r.Netns + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	if v.Matched == 0 {
		fmt.Fprintf(w, "(no rows: %s)\n", v.emptyReason())
	}
	if v.Matched > len(v.Rows) {
		fmt.Fprintf(w, "(%d more rows; --limit shows more)\n", v.Matched-len(v.Rows))
	}
	if morePools {
		fmt.Fprintln(w, "POOL (+N): the route belongs to N more pools; the table shows the fullest, FULL lines name every full one, --output json lists them all.")
	}
	for _, p := range v.full {
		closed := ""
		if *p.Close > 0 {
			closed = fmt.Sprintf(", %.0f in CLOSE (reset, still held)", *p.Close)
		}
		fmt.Fprintf(w, "FULL: pool %s holds %.0f connections (%.0f in CLOSE_WAIT%s, %.0f ESTABLISHED) for a maximum of %d\n",
			p.Name, *p.InUse, *p.CloseWait, closed, *p.Established, p.Max)
	}
	for _, r := range nearFds {
		in := ""
		if r.Netns != "" && r.Netns != "host" {
			in = " in netns " + r.Netns
		}
		fmt.Fprintf(w, "FDS: process %s%s has %.0f of its %.0f file descriptors open (%.0f%%); at the limit, accept(), connect() and open() fail with EMFILE\n",
			r.Process, in, *r.OpenFds, *r.MaxFds, 100**r.OpenFds / *r.MaxFds)
	}
}

// render writes the source line (and what the source cannot know) above
// a table.
func (s Source) render(w io.Writer) {
	switch {
	case s.Kind == "exporter":
		fmt.Fprintf(w, "source: the exporter at %s (its numbers are /metrics')\n", s.URL)
	default:
		fmt.Fprintf(w, "source: the kernel, read by top itself (%s)\n", s.Fallback)
		if len(s.Unknown) > 0 {
			fmt.Fprintf(w, "top cannot know what a running exporter remembers: %s\n", strings.Join(s.Unknown, "; "))
		}
	}
}

// emptyReason says why the table has no row, from what the scrape shows.
func (v *topView) emptyReason() string {
	switch {
	case v.filtered && v.total > 0:
		return "no route matches the filters"
	case !slices.Contains(v.collectors, "process"):
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
	// incomplete says why the last refresh's numbers miss something.
	var incomplete string
	done := func() error {
		if incomplete != "" {
			return fmt.Errorf("%w: %s", ErrIncomplete, incomplete)
		}
		return nil
	}
	rd := &reader{client: o.Exporter, local: e, cfg: cfg}
	for i := 0; ; i++ {
		reading, src, err := rd.read(ctx, o.Sockets)
		if err != nil {
			return err
		}
		var render func()
		if o.Sockets {
			l, err := listSockets(reading, src, o.Filter, o.Limit)
			if err != nil {
				return err
			}
			incomplete = l.Incomplete
			if o.Output == "json" {
				if err := writeJSON(w, l); err != nil {
					return err
				}
			} else {
				render = func() { l.render(w) }
			}
		} else {
			v, err := viewRoutes(reading, src, o.Filter)
			if err != nil {
				return err
			}
			v.limitRows(o.Limit)
			incomplete = ""
			if len(v.Failed) > 0 {
				incomplete = "collectors " + strings.Join(v.Failed, ", ") + " failed"
			}
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
				fmt.Fprintf(w, "tcpstate_exporter top — %s, every %s\n", reading.Time.Local().Format(time.TimeOnly), o.Interval)
			}
			render()
		}
		if !o.Watch || (o.Count > 0 && i+1 >= o.Count) {
			return done()
		}
		select {
		case <-ctx.Done():
			return done()
		case <-time.After(o.Interval):
		}
	}
}

// ErrIncomplete is what Run returns when it printed numbers that miss
// something (a collector failed, a table could not be read): they are not
// the whole truth, and a script must be able to tell. It reflects the last
// refresh.
var ErrIncomplete = errors.New("the numbers are incomplete")

// reader takes each refresh's reading: from the exporter while one
// answers, else (for the rest of the run) from the kernel.
type reader struct {
	client   *ExporterClient
	local    *collector.Exporter
	cfg      func() *config.Config
	fallback string // why the kernel; "" while the exporter answers
}

func (r *reader) read(ctx context.Context, withSockets bool) (*Reading, Source, error) {
	if r.client == nil && r.fallback == "" {
		r.fallback = "--no-exporter"
	}
	if r.fallback == "" {
		reading, err := r.client.Read(ctx, withSockets)
		var none errNoExporter
		switch {
		case err == nil:
			return reading, Source{Kind: "exporter", URL: r.client.URL.Redacted(), Unknown: []string{}}, nil
		case !errors.As(err, &none):
			return nil, Source{}, fmt.Errorf("the exporter at %s: %w (--no-exporter reads the kernel instead)", r.client.URL.Redacted(), err)
		}
		r.fallback = "no exporter answered at " + r.client.URL.Redacted() + ": " + err.Error()
	}
	reading, err := Read(ctx, r.local, r.cfg(), withSockets)
	if err != nil {
		return nil, Source{}, err
	}
	src := Source{Kind: "kernel", Fallback: r.fallback, Unknown: []string{unknownRoutes, unknownAges}}
	if r.client != nil {
		src.URL = r.client.URL.Redacted()
	}
	if reading.UnroutedClose > 0 {
		src.Unknown[0] = fmt.Sprintf("the routes and pools of %.0f sockets held after a reset (state close) that were dropped before this reading: they count per process only, in no route or pool", reading.UnroutedClose)
	}
	return reading, src, nil
}

// writeJSON writes one refresh as one JSON object on one line.
func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
