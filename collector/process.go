package collector

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
)

// processCollector counts sockets by the process holding them, outbound
// sockets by process and remote endpoint (the route of a client pool), and
// the sockets whose owner could not be found.
type processCollector struct {
	process, route, unresolved, truncated *prometheus.Desc
	oldest, stuck, unread                 *prometheus.Desc
	fds                                   fdDescs
	maxSeries                             int
	routeStates                           [tables.NumStates]bool
	stuckAfter                            time.Duration
	ages                                  bool // CLOSE_WAIT ages are tracked
}

func newProcessCollector(o Options) snapshot.View {
	c := &processCollector{
		process: prometheus.NewDesc(namespace+"_process_connections",
			"TCP sockets by the name (comm) of the process holding them, its network namespace (netns as in tcpstate_netns_connections) and state; a socket held by several processes counts once, for the lowest pid; state close counts sockets the kernel dropped (reset) that the process still holds.", []string{"process", "netns", "state"}, nil),
		route: prometheus.NewDesc(namespace+"_process_remote_connections",
			"Outbound TCP sockets by holding process name, network namespace, remote address and port, and state (only the states chosen by --collector.process.remote-states).", []string{"process", "netns", "remote_address", "remote_port", "state"}, nil),
		unresolved: prometheus.NewDesc(namespace+"_unresolved_sockets",
			"TCP sockets with an inode whose holding process was not found (fd folders not readable, or the process exited during the scrape), by state.", []string{"state"}, nil),
		oldest: prometheus.NewDesc(namespace+"_process_remote_close_wait_oldest_seconds",
			"Age of the oldest dead-but-held socket (CLOSE_WAIT, or CLOSE after the kernel dropped it, aged from CLOSE_WAIT) per holding process, network namespace and remote endpoint: the larger of the kernel's time since the socket last received an ACK (netlink source, exact from the first scrape) and the time since this exporter first saw it in CLOSE_WAIT (the only clock of the procfs source and of other network namespaces); tcpstate_close_wait_age_sockets says which clock the sockets' ages come from.", []string{"process", "netns", "remote_address", "remote_port"}, nil),
		stuck: prometheus.NewDesc(namespace+"_process_remote_close_wait_stuck_sockets",
			"Dead-but-held sockets (CLOSE_WAIT, and CLOSE ones the kernel dropped while the process holds them) per holding process, network namespace and remote endpoint that have been dead for longer than --collector.close-wait.stuck-after, by the age of tcpstate_process_remote_close_wait_oldest_seconds.", []string{"process", "netns", "remote_address", "remote_port"}, nil),
		unread: prometheus.NewDesc(namespace+"_process_remote_close_wait_unread_sockets",
			"CLOSE_WAIT sockets per holding process, network namespace and remote endpoint with data received and never read (a response nobody consumed: a leaked request), as opposed to idle connections the peer closed, which hold only its FIN.", []string{"process", "netns", "remote_address", "remote_port"}, nil),
		fds:        newFDDescs(),
		truncated:  truncatedDesc,
		maxSeries:  o.MaxSeries,
		stuckAfter: o.StuckAfter,
		ages:       o.CloseWait != nil,
	}
	for _, st := range o.RouteStates {
		c.routeStates[st] = true
	}
	return c
}

func (c *processCollector) NewTally(*snapshot.Snapshot) snapshot.Tally {
	return &processTally{c: c,
		byProcess: newBoundedFamily[snapshot.ProcessKey](),
		byRoute:   newBoundedFamily[snapshot.RouteKey](),
		unread:    map[snapshot.RouteKey]*rankedValue{},
		ages:      map[snapshot.RouteKey]*closeWaitAge{},
	}
}

type processTally struct {
	c          *processCollector
	byProcess  *boundedFamily[snapshot.ProcessKey]
	byRoute    *boundedFamily[snapshot.RouteKey]
	unresolved [tables.NumStates]float64
	// Per route: CLOSE_WAIT sockets (the rank) and those with unread data;
	// their ages.
	unread map[snapshot.RouteKey]*rankedValue
	ages   map[snapshot.RouteKey]*closeWaitAge
}

func (t *processTally) Add(sk *tables.Socket, in *snapshot.SockInfo) {
	if !sk.State.Valid() {
		return
	}
	if in.Owner == owners.NoOwner {
		if sk.Inode != 0 {
			t.unresolved[sk.State]++
		}
		return
	}
	owner := snapshot.ProcessKey{Process: in.Owner, NetNS: sk.NetNS}
	t.byProcess.add(owner, sk.State)
	if in.Dir != snapshot.Outbound {
		return
	}
	key := snapshot.RouteKey{ProcessKey: owner, Remote: netip.AddrPortFrom(sk.Remote.Addr().Unmap(), sk.Remote.Port())}
	if t.c.routeStates[sk.State] {
		t.byRoute.add(key, sk.State)
	}
	if sk.State != tables.StateCloseWait && !in.Held {
		return
	}
	// Dead but held: CLOSE_WAIT, and CLOSE sockets the kernel dropped
	// while the process kept them (their age continues from CLOSE_WAIT).
	u := t.unread[key]
	if u == nil {
		u = &rankedValue{}
		t.unread[key] = u
	}
	u.rank++
	if tables.UnreadData(sk) > 0 {
		u.value++
	}
	a := t.ages[key]
	if a == nil {
		a = &closeWaitAge{}
		t.ages[key] = a
	}
	a.add(in, t.c.stuckAfter)
}

func (t *processTally) Emit(s *snapshot.Snapshot, ch chan<- prometheus.Metric) error {
	if s.OwnersErr != nil {
		return s.OwnersErr
	}
	c := t.c
	routeLabels := func(k snapshot.RouteKey) []string {
		return []string{s.OwnerNames[k.Process], s.NetnsName(k.NetNS), k.Remote.Addr().String(), strconv.Itoa(int(k.Remote.Port()))}
	}
	folded := t.byProcess.emit(ch, c.process, c.maxSeries, func(k snapshot.ProcessKey) []string {
		return []string{s.OwnerNames[k.Process], s.NetnsName(k.NetNS)}
	})
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_connections")
	folded = t.byRoute.emit(ch, c.route, c.maxSeries, routeLabels)
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_remote_connections")
	folded = emitRanked(ch, c.unread, t.unread, c.maxSeries, routeLabels)
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_remote_close_wait_unread_sockets")
	folded = c.fds.emit(s, ch, c.maxSeries)
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_open_fds")
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_max_fds")
	for _, st := range tables.AllStates {
		ch <- prometheus.MustNewConstMetric(c.unresolved, prometheus.GaugeValue, t.unresolved[st], tables.StateNames[st])
	}
	if c.ages {
		// The routes with the most CLOSE_WAIT sockets keep their own series.
		folded = emitBoundedAges(ch, c.oldest, c.stuck, t.ages, c.maxSeries, routeLabels)
		ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_remote_close_wait_oldest_seconds")
		ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_remote_close_wait_stuck_sockets")
	}
	if s.TableErr != nil {
		return s.TableErr
	}
	return s.FDsErr
}

// ParseStates reads a comma-separated list of state names.
func ParseStates(list []string) ([]tables.State, error) {
	var out []tables.State
	for _, name := range list {
		st, ok := tables.ParseState(name)
		if !ok {
			return nil, fmt.Errorf("unknown TCP state %q (known: established, syn_sent, syn_recv, fin_wait1, fin_wait2, time_wait, close, close_wait, last_ack, listen, closing)", name)
		}
		out = append(out, st)
	}
	return out, nil
}
