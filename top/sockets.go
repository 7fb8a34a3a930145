package top

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// Filter selects the sockets `top --sockets` lists. Zero fields match
// everything.
type Filter struct {
	process *regexp.Regexp
	address netip.Prefix
	port    uint16
	pool    string
}

// ParseSocketFilter reads the filter flags, naming the flag a bad value
// came from.
func ParseSocketFilter(process, address string, port int, pool string) (Filter, error) {
	var f Filter
	if process != "" {
		re, err := regexp.Compile(process)
		if err != nil {
			return f, fmt.Errorf("--process %q: %w", process, err)
		}
		f.process = re
	}
	if address != "" {
		p, err := parsePrefix(address)
		if err != nil {
			return f, fmt.Errorf("--remote-address %q: not an IP address or CIDR", address)
		}
		f.address = p
	}
	if port < 0 || port > 65535 {
		return f, fmt.Errorf("--remote-port %d: not a port (1-65535)", port)
	}
	f.port, f.pool = uint16(port), pool
	return f, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// matches tells whether s passes the filter; pool is the declared pool
// named by the filter, or nil.
func (f Filter) matches(s snapshot.CloseWaitSocket, pool *config.Pool) bool {
	switch {
	case f.process != nil && (s.Process == "" || !f.process.MatchString(s.Process)):
		return false
	case f.address.IsValid() && !f.address.Contains(s.Remote.Addr()):
		return false
	case f.port != 0 && s.Remote.Port() != f.port:
		return false
	case pool != nil && !pool.Matches(s.Remote, s.Process, s.Process != ""):
		return false
	}
	return true
}

// lookupPool finds the pool the filter names, if it names one.
func (f Filter) lookupPool(cfg *config.Config) (*config.Pool, error) {
	if f.pool == "" {
		return nil, nil
	}
	var names []string
	if cfg != nil {
		for _, p := range cfg.Pools {
			if p.Name == f.pool {
				return p, nil
			}
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("--pool %q: no pools are declared (--config.file)", f.pool)
	}
	return nil, fmt.Errorf("--pool %q: no such pool in --config.file (declared: %s)", f.pool, strings.Join(names, ", "))
}

// socketRow is one line of `top --sockets`, and one object of its JSON.
type socketRow struct {
	Pid     int    `json:"pid,omitempty"`
	Process string `json:"process,omitempty"`
	// State is close_wait, or close for a socket the kernel dropped
	// (reset) that the process still holds: a dead slot all the same.
	State string `json:"state"`
	// Local and Remote are "" for a held socket whose route the exporter
	// never saw (it started after the reset).
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// AgeSeconds is absent when the age is not known.
	AgeSeconds *float64 `json:"age_seconds,omitempty"`
	AgeSource  string   `json:"age_source"`
	Unread     uint64   `json:"unread_bytes"`
	Pool       string   `json:"pool,omitempty"`
	Inode      uint64   `json:"inode"`
	Namespace  string   `json:"netns,omitempty"`
}

// socketList is what one refresh of `top --sockets` shows.
type socketList struct {
	Rows []socketRow `json:"sockets"`
	// Matched counts the sockets that pass the filter; Rows holds at most
	// --limit of them.
	Matched int `json:"matched"`
	// Total counts every CLOSE_WAIT socket, Closed every socket held
	// after the kernel dropped it (state close).
	Total  int `json:"close_wait_total"`
	Closed int `json:"close_total"`
	// Incomplete says why the listing may miss sockets or owners.
	Incomplete string `json:"incomplete,omitempty"`
	// firstSighting counts the rows whose only clock is the exporter's
	// first sighting, which this first reading just started.
	firstSighting int
}

// listSockets takes one reading and arranges its CLOSE_WAIT sockets. On
// the first reading an age counted from the exporter's first sighting is
// zero, and so unknown: only the kernel's ages are shown then.
func listSockets(socks []snapshot.CloseWaitSocket, readErr error, cfg *config.Config, f Filter, limit int, firstReading bool) (*socketList, error) {
	want, err := f.lookupPool(cfg)
	if err != nil {
		return nil, err
	}
	l := &socketList{Rows: []socketRow{}}
	if readErr != nil {
		l.Incomplete = readErr.Error()
	}
	for _, s := range socks {
		if s.State == tables.StateClose {
			l.Closed++
		} else {
			l.Total++
		}
	}
	for _, s := range socks {
		if !f.matches(s, want) {
			continue
		}
		pool := poolOf(cfg, s)
		if want != nil {
			pool = want.Name
		}
		l.Matched++
		if limit > 0 && len(l.Rows) >= limit {
			continue
		}
		r := socketRow{Pid: s.Pid, Process: s.Process, State: s.State.String(), Local: endpoint(s.Local), Remote: endpoint(s.Remote),
			AgeSource: s.AgeSource.String(), Unread: s.Unread, Pool: pool, Inode: s.Inode, Namespace: s.Namespace}
		if s.AgeSource == snapshot.AgeFirstSeen && firstReading {
			r.AgeSource = snapshot.AgeNone.String()
			l.firstSighting++
		} else if s.AgeSource != snapshot.AgeNone {
			secs := s.Age.Seconds()
			r.AgeSeconds = &secs
		}
		l.Rows = append(l.Rows, r)
	}
	return l, nil
}

// endpoint prints an address and port, or "" when not known.
func endpoint(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

// poolOf names the first declared pool a socket belongs to, or "" (the
// pool families count a socket in every pool it matches; --pool filters by
// any of them).
func poolOf(cfg *config.Config, s snapshot.CloseWaitSocket) string {
	if cfg == nil {
		return ""
	}
	for _, p := range cfg.Pools {
		if p.Matches(s.Remote, s.Process, s.Process != "") {
			return p.Name
		}
	}
	return ""
}

// render writes the list as a table.
func (l *socketList) render(w io.Writer) {
	fmt.Fprintf(w, "CLOSE_WAIT %d", l.Total)
	if l.Closed > 0 {
		fmt.Fprintf(w, "  CLOSE %d", l.Closed)
	}
	if l.Matched != l.Total+l.Closed {
		fmt.Fprintf(w, "  matching %d", l.Matched)
	}
	fmt.Fprintln(w)
	if l.Incomplete != "" {
		fmt.Fprintf(w, "incomplete: %s\n", l.Incomplete)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PID\tPROCESS\tSTATE\tLOCAL\tREMOTE\tAGE\tAGE FROM\tRECV-Q\tPOOL\t")
	firstSeenOnly := false
	for _, r := range l.Rows {
		pid, process, pool, age := "-", "-", "-", "-"
		if r.Pid != 0 {
			pid, process = strconv.Itoa(r.Pid), r.Process
		}
		if r.Pool != "" {
			pool = r.Pool
		}
		if r.AgeSeconds != nil {
			age = formatAge(time.Duration(*r.AgeSeconds * float64(time.Second)))
		}
		from := strings.ReplaceAll(r.AgeSource, "_", "-")
		if r.AgeSource == snapshot.AgeNone.String() {
			from = "-"
		}
		if r.AgeSource == snapshot.AgeFirstSeen.String() {
			firstSeenOnly = true
		}
		local, remote := r.Local, r.Remote
		if local == "" {
			local, remote = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", pid, process, strings.ToUpper(r.State), local, remote, age, from, r.Unread, pool)
	}
	tw.Flush()
	if n := l.Matched - len(l.Rows); n > 0 {
		fmt.Fprintf(w, "(%d more sockets; --limit shows more)\n", n)
	}
	if l.firstSighting > 0 {
		fmt.Fprintln(w, "AGE -: the kernel gives no age for these sockets (procfs source, or another network namespace) and this run saw them once; --watch counts from now.")
	}
	if l.Closed > 0 {
		fmt.Fprintln(w, "STATE CLOSE: the kernel dropped the socket (reset) and no table lists it, but the process still holds its fd: a dead pool slot, as CLOSE_WAIT; its age goes on from CLOSE_WAIT. LOCAL -: its route was never seen by this exporter.")
	}
	if firstSeenOnly {
		fmt.Fprintln(w, "AGE FROM first-seen: since this exporter first saw the socket (procfs source or another network namespace); kernel: since the socket last received an ACK.")
	}
}

// formatAge prints an age to the second, or to the tenth of a second below
// a minute.
func formatAge(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// renderJSON writes the list as one JSON object.
func (l *socketList) renderJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(l)
}
