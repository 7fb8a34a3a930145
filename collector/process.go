package collector

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// processCollector counts sockets by the process holding them, outbound
// sockets by process and remote endpoint (the route of a client pool), and
// the sockets whose owner could not be found.
type processCollector struct {
	process, route, unresolved, truncated *prometheus.Desc
	oldest, stuck, unread                 *prometheus.Desc
	maxSeries                             int
	routeStates                           [numStates]bool
	stuckAfter                            time.Duration
	ages                                  bool // CLOSE_WAIT ages are tracked
}

func newProcessCollector(o Options) familyCollector {
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

// processKey names a process by name and network namespace: processes of
// one name in different pods are told apart.
type processKey struct {
	process int32
	netns   uint16
}

type routeKey struct {
	processKey
	remote netip.AddrPort
}

func (c *processCollector) newTally(*Snapshot) tally {
	return &processTally{c: c,
		byProcess: newBoundedFamily[processKey](),
		byRoute:   newBoundedFamily[routeKey](),
		unread:    map[routeKey]*rankedValue{},
		ages:      map[routeKey]*closeWaitAge{},
	}
}

type processTally struct {
	c          *processCollector
	byProcess  *boundedFamily[processKey]
	byRoute    *boundedFamily[routeKey]
	unresolved [numStates]float64
	// Per route: CLOSE_WAIT sockets (the rank) and those with unread data;
	// their ages.
	unread map[routeKey]*rankedValue
	ages   map[routeKey]*closeWaitAge
}

func (t *processTally) add(sk *Socket, in *sockInfo) {
	if !sk.State.Valid() {
		return
	}
	if in.owner == noOwner {
		if sk.Inode != 0 {
			t.unresolved[sk.State]++
		}
		return
	}
	owner := processKey{in.owner, sk.NetNS}
	t.byProcess.add(owner, sk.State)
	if in.dir != Outbound {
		return
	}
	key := routeKey{owner, netip.AddrPortFrom(sk.Remote.Addr().Unmap(), sk.Remote.Port())}
	if t.c.routeStates[sk.State] {
		t.byRoute.add(key, sk.State)
	}
	if sk.State != StateCloseWait && !in.held {
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
	if unreadData(sk) > 0 {
		u.value++
	}
	a := t.ages[key]
	if a == nil {
		a = &closeWaitAge{}
		t.ages[key] = a
	}
	a.add(in, t.c.stuckAfter)
}

func (t *processTally) emit(s *Snapshot, ch chan<- prometheus.Metric) error {
	if s.OwnersErr != nil {
		return s.OwnersErr
	}
	c := t.c
	routeLabels := func(k routeKey) []string {
		return []string{s.OwnerNames[k.process], s.netnsName(k.netns), k.remote.Addr().String(), strconv.Itoa(int(k.remote.Port()))}
	}
	folded := t.byProcess.emit(ch, c.process, c.maxSeries, func(k processKey) []string {
		return []string{s.OwnerNames[k.process], s.netnsName(k.netns)}
	})
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_connections")
	folded = t.byRoute.emit(ch, c.route, c.maxSeries, routeLabels)
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_remote_connections")
	folded = emitRanked(ch, c.unread, t.unread, c.maxSeries, routeLabels)
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_remote_close_wait_unread_sockets")
	for _, st := range allStates {
		ch <- prometheus.MustNewConstMetric(c.unresolved, prometheus.GaugeValue, t.unresolved[st], stateNames[st])
	}
	if c.ages {
		// The routes with the most CLOSE_WAIT sockets keep their own series.
		folded = emitBoundedAges(ch, c.oldest, c.stuck, t.ages, c.maxSeries, routeLabels)
		ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_remote_close_wait_oldest_seconds")
		ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_remote_close_wait_stuck_sockets")
	}
	return s.TableErr
}

// ParseStates reads a comma-separated list of state names.
func ParseStates(list []string) ([]State, error) {
	var out []State
	for _, name := range list {
		st, ok := ParseState(name)
		if !ok {
			return nil, fmt.Errorf("unknown TCP state %q (known: established, syn_sent, syn_recv, fin_wait1, fin_wait2, time_wait, close, close_wait, last_ack, listen, closing)", name)
		}
		out = append(out, st)
	}
	return out, nil
}
