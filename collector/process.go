package collector

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// processCollector counts sockets by the process holding them, outbound
// sockets by process and remote endpoint (the route of a client pool), and
// the sockets whose owner could not be found.
type processCollector struct {
	process, route, unresolved, truncated *prometheus.Desc
	maxSeries                             int
	routeStates                           [numStates]bool
}

func newProcessCollector(o Options) familyCollector {
	c := &processCollector{
		process: prometheus.NewDesc(namespace+"_process_connections",
			"TCP sockets by the name (comm) of the process holding them and state; a socket held by several processes counts once, for the lowest pid.", []string{"process", "state"}, nil),
		route: prometheus.NewDesc(namespace+"_process_remote_connections",
			"Outbound TCP sockets by holding process name, remote address and port, and state (only the states chosen by --collector.process.remote-states).", []string{"process", "remote_address", "remote_port", "state"}, nil),
		unresolved: prometheus.NewDesc(namespace+"_unresolved_sockets",
			"TCP sockets with an inode whose holding process was not found (fd folders not readable, or the process exited during the scrape), by state.", []string{"state"}, nil),
		truncated: truncatedDesc,
		maxSeries: o.MaxSeries,
	}
	for _, st := range o.RouteStates {
		c.routeStates[st] = true
	}
	return c
}

type routeKey struct {
	process int32
	remote  netip.AddrPort
}

func (c *processCollector) Update(s *Snapshot, ch chan<- prometheus.Metric) error {
	if s.OwnersErr != nil {
		return s.OwnersErr
	}
	byProcess := newBoundedFamily[int32]()
	byRoute := newBoundedFamily[routeKey]()
	var unresolved [numStates]float64
	for i := range s.Sockets {
		sk := &s.Sockets[i]
		if !sk.State.Valid() {
			continue
		}
		owner := s.Owner[i]
		if owner == noOwner {
			if sk.Inode != 0 {
				unresolved[sk.State]++
			}
			continue
		}
		byProcess.add(owner, sk.State)
		if s.Direction[i] == Outbound && c.routeStates[sk.State] {
			remote := netip.AddrPortFrom(sk.Remote.Addr().Unmap(), sk.Remote.Port())
			byRoute.add(routeKey{owner, remote}, sk.State)
		}
	}
	folded := byProcess.emit(ch, c.process, c.maxSeries, func(p int32) []string {
		return []string{s.OwnerNames[p]}
	})
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_connections")
	folded = byRoute.emit(ch, c.route, c.maxSeries, func(k routeKey) []string {
		return []string{s.OwnerNames[k.process], k.remote.Addr().String(), strconv.Itoa(int(k.remote.Port()))}
	})
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_remote_connections")
	for _, st := range allStates {
		ch <- prometheus.MustNewConstMetric(c.unresolved, prometheus.GaugeValue, unresolved[st], stateNames[st])
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
