package top

import (
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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
func (f Filter) matches(s *SocketReading, pool *PoolReading) bool {
	if f == (Filter{}) {
		return true
	}
	remote, _ := netip.ParseAddrPort(s.Remote)
	switch {
	case f.process != nil && (s.Process == "" || !f.process.MatchString(s.Process)):
		return false
	case f.address.IsValid() && !(remote.IsValid() && f.address.Contains(remote.Addr())):
		return false
	case f.port != 0 && remote.Port() != f.port:
		return false
	case pool != nil && !slices.Contains(s.Pools, pool.Name):
		return false
	}
	return true
}

// lookupPool finds the pool the filter names among the reading's declared
// pools, if it names one; src tells whose declarations they are.
func (f Filter) lookupPool(pools []PoolReading, src Source) (*PoolReading, error) {
	if f.pool == "" {
		return nil, nil
	}
	var names []string
	for i := range pools {
		if pools[i].Name == f.pool {
			return &pools[i], nil
		}
		names = append(names, pools[i].Name)
	}
	where := "--config.file"
	if src.Kind == "exporter" {
		where = "the config file of the exporter at " + src.URL
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("--pool %q: no pools are declared (%s)", f.pool, where)
	}
	return nil, fmt.Errorf("--pool %q: no such pool in %s (declared: %s)", f.pool, where, strings.Join(names, ", "))
}

// socketRow is one line of `top --sockets`, and one object of its JSON:
// a socket of the reading, with the pool the table shows (the one --pool
// names or else the first it belongs to).
type socketRow struct {
	SocketReading
	Pool string `json:"pool"`
}

// socketList is what one refresh of `top --sockets` shows.
type socketList struct {
	Time   time.Time   `json:"time"`
	Source Source      `json:"source"`
	Rows   []socketRow `json:"sockets"`
	// Matched counts the sockets that pass the filter; Rows holds at most
	// --limit of them.
	Matched int `json:"matched"`
	// Total counts every CLOSE_WAIT socket, Closed every socket held
	// after the kernel dropped it (state close); UnroutedClosed those of
	// them whose route the reader never saw.
	Total          int `json:"close_wait_total"`
	Closed         int `json:"close_total"`
	UnroutedClosed int `json:"unrouted_close"`
	// Incomplete says why the listing may miss sockets or owners.
	Incomplete string `json:"incomplete"`
	// firstSighting counts the rows whose only clock is the reader's
	// first sighting, which this first reading just started.
	firstSighting int
}

// listSockets filters a reading's dead sockets.
func listSockets(rd *Reading, src Source, f Filter, limit int) (*socketList, error) {
	want, err := f.lookupPool(rd.Pools, src)
	if err != nil {
		return nil, err
	}
	l := &socketList{Time: rd.Time, Source: src, Rows: []socketRow{}, Incomplete: rd.SocketsIncomplete}
	for _, s := range rd.Sockets {
		switch {
		case s.State != tables.StateClose.String():
			l.Total++
		case s.Local == "":
			l.Closed++
			l.UnroutedClosed++
		default:
			l.Closed++
		}
	}
	for i := range rd.Sockets {
		s := &rd.Sockets[i]
		if s.Pools == nil {
			s.Pools = []string{}
		}
		if !f.matches(s, want) {
			continue
		}
		l.Matched++
		if limit > 0 && len(l.Rows) >= limit {
			continue
		}
		r := socketRow{SocketReading: *s}
		if want != nil {
			r.Pool = want.Name
		} else if len(s.Pools) > 0 {
			r.Pool = s.Pools[0]
		}
		if s.firstSighting {
			l.firstSighting++
		}
		l.Rows = append(l.Rows, r)
	}
	return l, nil
}

// render writes the list as a table.
func (l *socketList) render(w io.Writer) {
	l.Source.render(w)
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
			if n := len(r.Pools) - 1; n > 0 && slices.Contains(r.Pools, r.Pool) {
				pool += fmt.Sprintf("(+%d)", n)
			}
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
		fmt.Fprintln(w, "STATE CLOSE: the kernel dropped the socket (reset) and no table lists it, but the process still holds its fd: a dead pool slot, as CLOSE_WAIT; its age goes on from CLOSE_WAIT. LOCAL -: its route was never seen by this reader.")
	}
	if l.UnroutedClosed > 0 && l.Matched != l.Total+l.Closed {
		fmt.Fprintf(w, "%d CLOSE sockets have no known route, so the filters on remote address, port and pool cannot match them; a running exporter that saw them before the reset knows it.\n", l.UnroutedClosed)
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
