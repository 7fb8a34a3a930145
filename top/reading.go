package top

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
)

// Reading is one reading as `top` renders it, before its filters: what a
// running exporter serves at ReadingPath (as JSON) and what top builds
// itself when no exporter answers. Its numbers are those of the
// families a scrape of the same reading carries. Every key is always
// present.
type Reading struct {
	Time time.Time `json:"time"`
	// Routes are the rows of tcpstate_process_remote_connections, one per
	// process, network namespace and remote endpoint, with the pids that
	// hold them.
	Routes []RouteReading `json:"routes"`
	// Pools are the declared pools, in the order of the config file.
	Pools []PoolReading `json:"pools"`
	// Sockets are the dead sockets (CLOSE_WAIT, and CLOSE: held after
	// the kernel dropped them), oldest first; null unless asked for.
	Sockets []SocketReading `json:"sockets"`
	// SocketsIncomplete says why the socket listing may miss sockets.
	SocketsIncomplete string `json:"sockets_incomplete"`
	// CloseWaitTotal and EstablishedTotal are the host's
	// (tcpstate_connections); null when the connections collector is off.
	CloseWaitTotal   *float64 `json:"close_wait_total"`
	EstablishedTotal *float64 `json:"established_total"`
	// UnresolvedCloseWait counts CLOSE_WAIT sockets of no known process.
	UnresolvedCloseWait float64 `json:"unresolved_close_wait"`
	// UnroutedClose counts sockets held after the kernel dropped them
	// whose route the reader never saw: they count per process only, in
	// no route and no pool.
	UnroutedClose float64 `json:"unrouted_close"`
	SeriesFolded  float64 `json:"series_folded"`
	// Collectors ran; FailedCollectors of them reported incomplete data.
	Collectors       []string `json:"collectors"`
	FailedCollectors []string `json:"failed_collectors"`
	// FirstReading: the reader's first, so the ages it counts from its
	// own first sighting are unknown yet (left out).
	FirstReading bool `json:"first_reading"`
}

// RouteReading is one process's sockets toward one remote endpoint. Other
// per-route columns (such as a process's open file descriptors) belong
// here, beside the counts.
type RouteReading struct {
	Process string `json:"process"`
	Netns   string `json:"netns"`
	Address string `json:"remote_address"`
	// Port is the label: a number, or "other" for the folded row.
	Port string `json:"remote_port"`
	// Pids hold the route's sockets (a socket held by several processes
	// counts for its lowest pid).
	Pids        []int   `json:"pids"`
	CloseWait   float64 `json:"close_wait"`
	Close       float64 `json:"close"`
	Established float64 `json:"established"`
	// OldestSeconds is the age of the route's oldest dead socket; null
	// when unknown.
	OldestSeconds *float64 `json:"oldest_close_wait_seconds"`
	// Pools names every declared pool the route belongs to, in the order
	// of the config file.
	Pools []string `json:"pools"`
	// OpenFds and MaxFds are the process's open file descriptors and its
	// soft limit in the route's network namespace
	// (tcpstate_process_open_fds and tcpstate_process_max_fds: its pid
	// nearest the limit); null when unknown.
	OpenFds *float64 `json:"open_fds"`
	MaxFds  *float64 `json:"max_fds"`
}

// PoolReading is a declared pool's sockets as tcpstate_pool_connections
// counts them. A pool's slots are in use while ESTABLISHED, CLOSE_WAIT
// (kept until the application closes the socket) or CLOSE (dropped by the
// kernel after a reset, still held); the pool is full when they reach its
// maximum, as TCPStatePoolSaturated and TCPStatePoolExhausted say.
type PoolReading struct {
	Name string `json:"name"`
	Max  int    `json:"max"`
	// The counts are null when the pools collector is off.
	InUse       *float64 `json:"in_use"`
	CloseWait   *float64 `json:"close_wait"`
	Close       *float64 `json:"close"`
	Established *float64 `json:"established"`
	Full        bool     `json:"full"`
}

// SocketReading is one dead socket: what `top --sockets` lists.
type SocketReading struct {
	Pid     int    `json:"pid"`
	Process string `json:"process"`
	// State is close_wait, or close for a socket the kernel dropped
	// (reset) that the process still holds.
	State string `json:"state"`
	// Local and Remote are "" for a held socket whose route the reader
	// never saw (it started after the reset).
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// AgeSeconds is null when the age is not known.
	AgeSeconds *float64 `json:"age_seconds"`
	AgeSource  string   `json:"age_source"`
	Unread     uint64   `json:"unread_bytes"`
	// Pools names every declared pool the socket belongs to.
	Pools []string `json:"pools"`
	Inode uint64   `json:"inode"`
	Netns string   `json:"netns"`
	// firstSighting: the age would count from this very reading.
	firstSighting bool
}

// ReadingPath is where a running exporter serves its Reading, beside
// /metrics and behind the same web config; "?sockets=1" adds the sockets.
const ReadingPath = "/api/v1/top"

// Read takes one reading through the exporter and arranges it as top
// renders it; cfg tells which declared pools each route and socket belongs
// to.
func Read(ctx context.Context, e *collector.Exporter, cfg *config.Config, withSockets bool) (*Reading, error) {
	tr, err := e.ReadTop(ctx, withSockets)
	if err != nil {
		return nil, err
	}
	r := fromFamilies(tr.Families, tr.Pids, cfg, !tr.FirstReading)
	r.Time, r.FirstReading = tr.Taken, tr.FirstReading
	if withSockets {
		r.Sockets = socketsOf(tr.Sockets, cfg, tr.FirstReading)
		if tr.SocketsErr != nil {
			r.SocketsIncomplete = tr.SocketsErr.Error()
		}
	}
	return r, nil
}

// fromFamilies arranges a scrape's families as routes and pools.
//
// On an exporter's first reading every socket has been seen just once, so
// only the kernel's ages mean anything yet: withAges is false and a route
// whose ages are all first sightings has no oldest age.
func fromFamilies(families []*dto.MetricFamily, pids map[collector.Route][]int, cfg *config.Config, withAges bool) *Reading {
	r := &Reading{Routes: []RouteReading{}, Pools: []PoolReading{}, Collectors: []string{}, FailedCollectors: []string{}}
	var hostCW, hostEst, processClose, routeClose float64
	rows := map[collector.Route]*RouteReading{}
	var order []collector.Route
	row := func(m *dto.Metric) *RouteReading {
		k := collector.Route{Process: label(m, "process"), Netns: label(m, "netns"), Address: label(m, "remote_address"), Port: label(m, "remote_port")}
		if rows[k] == nil {
			p := slices.Clone(pids[k])
			if p == nil {
				p = []int{} // the folded row: [] in JSON, not null
			}
			rows[k] = &RouteReading{Process: k.Process, Netns: k.Netns, Address: k.Address, Port: k.Port, Pids: p, Pools: []string{}}
			order = append(order, k)
		}
		return rows[k]
	}
	type usage struct{ closeWait, close, established float64 }
	pools := map[string]*usage{}
	// fds by process name and namespace, as the fd families label them.
	type procNS struct{ process, netns string }
	type fdUsage struct{ open, max *float64 }
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
			state := label(m, "state")
			switch fam.GetName() {
			case "tcpstate_process_remote_connections":
				switch state {
				case "close_wait":
					row(m).CloseWait += val
				case "close":
					row(m).Close += val
					routeClose += val
				case "established":
					row(m).Established += val
				}
			case "tcpstate_process_open_fds":
				v := val
				fd(m).open = &v
			case "tcpstate_process_max_fds":
				v := val
				fd(m).max = &v
			case "tcpstate_process_connections":
				if state == "close" {
					processClose += val
				}
			case "tcpstate_process_remote_close_wait_oldest_seconds":
				// A first sighting at this very reading is 0 and means
				// nothing yet; a kernel age is right at once.
				if withAges || val > 0 {
					if o := row(m).OldestSeconds; o == nil || val > *o {
						age := val
						row(m).OldestSeconds = &age
					}
				}
			case "tcpstate_pool_connections":
				u := pools[label(m, "pool")]
				if u == nil {
					u = &usage{}
					pools[label(m, "pool")] = u
				}
				switch state {
				case "close_wait":
					u.closeWait += val
				case "close":
					u.close += val
				case "established":
					u.established += val
				}
			case "tcpstate_connections":
				switch state {
				case "close_wait":
					hostCW += val
				case "established":
					hostEst += val
				}
			case "tcpstate_unresolved_sockets":
				if state == "close_wait" {
					r.UnresolvedCloseWait += val
				}
			case "tcpstate_series_truncated":
				r.SeriesFolded += val
			case "tcpstate_scrape_collector_success":
				r.Collectors = append(r.Collectors, label(m, "collector"))
				if val == 0 {
					r.FailedCollectors = append(r.FailedCollectors, label(m, "collector"))
				}
			}
		}
	}
	if slices.Contains(r.Collectors, "connections") {
		r.CloseWaitTotal, r.EstablishedTotal = &hostCW, &hostEst
	}
	if processClose > routeClose {
		r.UnroutedClose = processClose - routeClose
	}
	if cfg != nil {
		for _, p := range cfg.Pools {
			pr := PoolReading{Name: p.Name, Max: p.Max}
			if slices.Contains(r.Collectors, "pools") {
				u := pools[p.Name]
				if u == nil {
					u = &usage{}
				}
				inUse := u.closeWait + u.close + u.established
				pr.InUse, pr.CloseWait, pr.Close, pr.Established = &inUse, &u.closeWait, &u.close, &u.established
				pr.Full = inUse >= float64(p.Max)
			}
			r.Pools = append(r.Pools, pr)
		}
	}
	for _, k := range order {
		rr := rows[k]
		if rr.CloseWait == 0 && rr.Close == 0 && rr.Established == 0 {
			continue
		}
		rr.Pools = poolsOf(cfg, routeRemote(rr), rr.Process, true)
		if u := fds[procNS{rr.Process, rr.Netns}]; u != nil && u.open != nil && u.max != nil {
			rr.OpenFds, rr.MaxFds = u.open, u.max
		}
		r.Routes = append(r.Routes, *rr)
	}
	return r
}

// socketsOf names the pools of a reading's dead sockets. On a first
// reading an age counted from the reader's first sighting is zero, and so
// unknown: only the kernel's ages are kept then.
func socketsOf(socks []snapshot.CloseWaitSocket, cfg *config.Config, firstReading bool) []SocketReading {
	out := make([]SocketReading, 0, len(socks))
	for _, s := range socks {
		r := SocketReading{Pid: s.Pid, Process: s.Process, State: s.State.String(), Local: endpoint(s.Local), Remote: endpoint(s.Remote),
			AgeSource: s.AgeSource.String(), Unread: s.Unread, Pools: poolsOf(cfg, s.Remote, s.Process, s.Process != ""), Inode: s.Inode, Netns: s.Namespace}
		if s.AgeSource == snapshot.AgeFirstSeen && firstReading {
			r.AgeSource, r.firstSighting = snapshot.AgeNone.String(), true
		} else if s.AgeSource != snapshot.AgeNone {
			secs := s.Age.Seconds()
			r.AgeSeconds = &secs
		}
		out = append(out, r)
	}
	return out
}

// poolsOf names every declared pool a socket toward remote, held by
// process, belongs to ([] for an unknown route).
func poolsOf(cfg *config.Config, remote netip.AddrPort, process string, known bool) []string {
	out := []string{}
	if cfg == nil || !remote.IsValid() {
		return out
	}
	for _, p := range cfg.Pools {
		if p.Matches(remote, process, known) {
			out = append(out, p.Name)
		}
	}
	return out
}

// routeRemote is a route's remote endpoint; invalid for the folded
// "other" row.
func routeRemote(r *RouteReading) netip.AddrPort {
	addr, err := netip.ParseAddr(r.Address)
	if err != nil {
		return netip.AddrPort{}
	}
	port, err := strconv.ParseUint(r.Port, 10, 16)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(addr, uint16(port))
}

// endpoint prints an address and port, or "" when not known.
func endpoint(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
