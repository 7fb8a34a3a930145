package collector

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// connectionsCollector counts every socket by family and state.
type connectionsCollector struct {
	connections, unknown, netns, netnsInfo *prometheus.Desc
	maxSeries                              int
}

func newConnectionsCollector(o Options) snapshot.View {
	return &connectionsCollector{
		netns: prometheus.NewDesc(namespace+"_netns_connections",
			"TCP sockets by network namespace and state, with --collector.netns: netns is \"host\" for the exporter's own namespace, else the container id or the name of the namespace's first process.", []string{"netns", "state"}, nil),
		netnsInfo: prometheus.NewDesc(namespace+"_netns_info",
			"A network namespace's container and Kubernetes pod, from the cgroups of its processes (\"\" where none), with --collector.netns; always 1. Join on netns, then pod_uid with kube_pod_info's uid.", []string{"netns", "container_id", "pod_uid"}, nil),
		maxSeries: o.MaxSeries,
		connections: prometheus.NewDesc(namespace+"_connections",
			"TCP sockets by address family and state.", []string{"family", "state"}, nil),
		unknown: prometheus.NewDesc(namespace+"_unknown_state_connections",
			"TCP sockets whose state code this exporter does not know, by address family.", []string{"family"}, nil),
	}
}

func (c *connectionsCollector) NewTally(s *snapshot.Snapshot) snapshot.Tally {
	return &connectionsTally{c: c, namespaced: s.Namespaced}
}

type connectionsTally struct {
	c          *connectionsCollector
	namespaced bool
	counts     [2][tables.NumStates]float64
	unknown    [2]float64
	// byNS counts per network namespace, indexed by Socket.NetNS.
	byNS [][tables.NumStates]float64
}

func (t *connectionsTally) Add(sk *tables.Socket, in *snapshot.SockInfo) {
	if in.Held {
		return // the kernel's tables only
	}
	f := familyIndex(sk.Family)
	if !sk.State.Valid() {
		t.unknown[f]++
		return
	}
	t.counts[f][sk.State]++
	if t.namespaced {
		for int(sk.NetNS) >= len(t.byNS) {
			t.byNS = append(t.byNS, [tables.NumStates]float64{})
		}
		t.byNS[sk.NetNS][sk.State]++
	}
}

func (t *connectionsTally) Emit(s *snapshot.Snapshot, ch chan<- prometheus.Metric) error {
	c := t.c
	for f, family := range []tables.Family{tables.IPv4, tables.IPv6} {
		for _, st := range tables.AllStates {
			ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, t.counts[f][st], family.String(), tables.StateNames[st])
		}
		ch <- prometheus.MustNewConstMetric(c.unknown, prometheus.GaugeValue, t.unknown[f], family.String())
	}
	if t.namespaced && s.Namespaces != nil {
		t.emitNamespaces(s, ch)
	}
	return s.TableErr
}

// emitNamespaces sends every namespace read, with all eleven states, and
// its container and pod; each family keeps the --collector.max-series
// namespaces with the most sockets.
func (t *connectionsTally) emitNamespaces(s *snapshot.Snapshot, ch chan<- prometheus.Metric) {
	c := t.c
	byNS := newBoundedFamily[uint16]()
	byNS.everyState = true
	info := make(map[uint16]*rankedValue, len(s.Namespaces))
	for ns := range s.Namespaces {
		counts := new([tables.NumStates]float64)
		if ns < len(t.byNS) {
			counts = &t.byNS[ns]
		}
		byNS.counts[uint16(ns)] = counts
		v := &rankedValue{value: 1}
		for _, n := range counts {
			v.rank += n
		}
		info[uint16(ns)] = v
	}
	folded := byNS.emit(ch, c.netns, c.maxSeries, func(ns uint16) []string { return []string{s.Namespaces[ns]} })
	ch <- prometheus.MustNewConstMetric(truncatedDesc, prometheus.GaugeValue, float64(folded), namespace+"_netns_connections")
	folded = emitFolded(info, c.maxSeries, func(ns uint16) []string {
		var cg tables.CgroupInfo
		if int(ns) < len(s.NamespaceCgroups) {
			cg = s.NamespaceCgroups[ns]
		}
		return []string{s.Namespaces[ns], cg.ContainerID, cg.PodUID}
	},
		func(v *rankedValue) float64 { return v.rank },
		func(dst, src *rankedValue) { dst.rank += src.rank; dst.value = 1 },
		func(labels []string, _ *rankedValue) {
			ch <- prometheus.MustNewConstMetric(c.netnsInfo, prometheus.GaugeValue, 1, labels...)
		})
	ch <- prometheus.MustNewConstMetric(truncatedDesc, prometheus.GaugeValue, float64(folded), namespace+"_netns_info")
}

func familyIndex(f tables.Family) int {
	if f == tables.IPv6 {
		return 1
	}
	return 0
}
