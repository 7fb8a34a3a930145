package collector

import "github.com/prometheus/client_golang/prometheus"

// connectionsCollector counts every socket by family and state.
type connectionsCollector struct {
	connections, unknown, netns *prometheus.Desc
	maxSeries                   int
}

func newConnectionsCollector(o Options) familyCollector {
	return &connectionsCollector{
		netns: prometheus.NewDesc(namespace+"_netns_connections",
			"TCP sockets by network namespace and state, with --collector.netns: netns is \"host\" for the exporter's own namespace, else the container id or the name of the namespace's first process.", []string{"netns", "state"}, nil),
		maxSeries: o.MaxSeries,
		connections: prometheus.NewDesc(namespace+"_connections",
			"TCP sockets by address family and state.", []string{"family", "state"}, nil),
		unknown: prometheus.NewDesc(namespace+"_unknown_state_connections",
			"TCP sockets whose state code this exporter does not know, by address family.", []string{"family"}, nil),
	}
}

func (c *connectionsCollector) Update(s *Snapshot, ch chan<- prometheus.Metric) error {
	var counts [2][numStates]float64
	var unknown [2]float64
	for i := range s.Sockets {
		sk := &s.Sockets[i]
		f := familyIndex(sk.Family)
		if sk.State.Valid() {
			counts[f][sk.State]++
		} else {
			unknown[f]++
		}
	}
	for f, family := range []Family{IPv4, IPv6} {
		for _, st := range allStates {
			ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, counts[f][st], family.String(), stateNames[st])
		}
		ch <- prometheus.MustNewConstMetric(c.unknown, prometheus.GaugeValue, unknown[f], family.String())
	}
	if s.Namespaces != nil {
		byNS := newBoundedFamily[uint16]()
		for i := range s.Sockets {
			if sk := &s.Sockets[i]; sk.State.Valid() {
				byNS.add(sk.NetNS, sk.State)
			}
		}
		folded := byNS.emit(ch, c.netns, c.maxSeries, func(ns uint16) []string { return []string{s.Namespaces[ns]} })
		ch <- prometheus.MustNewConstMetric(truncatedDesc, prometheus.GaugeValue, float64(folded), namespace+"_netns_connections")
	}
	return s.TableErr
}

func familyIndex(f Family) int {
	if f == IPv6 {
		return 1
	}
	return 0
}
