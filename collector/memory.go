package collector

import (
	"net/netip"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
)

// memoryCollector names who holds the host's TCP memory: the processes and
// the peers (orphans included: a peer that stopped reading keeps the
// memory of sockets already closed). The listeners' drops are the accept
// queue collector's. With the netlink source each socket's memory is what the
// kernel charges it (SK_MEMINFO r + w + f); the procfs tables, and the
// other network namespaces read through them, give only the bytes in its
// queues (tables.QueueMemory), and no drops.
type memoryCollector struct {
	process, remote, truncated *prometheus.Desc
	maxSeries                  int
}

func newMemoryCollector(o Options) snapshot.View {
	return &memoryCollector{
		process: prometheus.NewDesc(namespace+"_process_memory_bytes",
			"Memory the kernel charges for the TCP sockets of a process (by name and network namespace): receive queue, send queue and forward allocation (SK_MEMINFO rmem_alloc + wmem_queued + fwd_alloc, ss -m's r + w + f) with the netlink source; only the queued bytes (tx_queue + rx_queue) with the procfs source and in other network namespaces. Processes holding none are left out.", []string{"process", "netns"}, nil),
		remote: prometheus.NewDesc(namespace+"_remote_memory_bytes",
			"Memory the kernel charges for the TCP sockets toward a remote address and port, orphans included (as tcpstate_process_memory_bytes: SK_MEMINFO r + w + f with netlink, queued bytes with procfs). Peers holding none are left out.", []string{"remote_address", "remote_port"}, nil),
		truncated: truncatedDesc,
		maxSeries: o.MaxSeries,
	}
}

func (c *memoryCollector) NewTally(*snapshot.Snapshot) snapshot.Tally {
	return &memoryTally{c: c,
		process: map[snapshot.ProcessKey]*rankedValue{},
		remote:  map[netip.AddrPort]*rankedValue{},
	}
}

type memoryTally struct {
	c       *memoryCollector
	process map[snapshot.ProcessKey]*rankedValue
	remote  map[netip.AddrPort]*rankedValue
}

func (t *memoryTally) Add(sk *tables.Socket, in *snapshot.SockInfo) {
	if in.Held || !sk.State.Valid() {
		return
	}
	if sk.State == tables.StateListen {
		return
	}
	mem := sk.Mem
	if !sk.HasMem {
		mem = tables.QueueMemory(sk)
	}
	if mem == 0 {
		return
	}
	if in.Owner != owners.NoOwner {
		addBytes(t.process, snapshot.ProcessKey{Process: in.Owner, NetNS: sk.NetNS}, mem)
	}
	addBytes(t.remote, netip.AddrPortFrom(sk.Remote.Addr().Unmap(), sk.Remote.Port()), mem)
}

func addBytes[K comparable](m map[K]*rankedValue, k K, b uint64) {
	v := m[k]
	if v == nil {
		v = &rankedValue{}
		m[k] = v
	}
	v.rank += float64(b)
	v.value += float64(b)
}

// Emit sends the largest holders first, the rest summed into "other".
func (t *memoryTally) Emit(s *snapshot.Snapshot, ch chan<- prometheus.Metric) error {
	c := t.c
	if s.OwnersErr == nil {
		folded := emitRanked(ch, c.process, t.process, c.maxSeries, func(k snapshot.ProcessKey) []string {
			return []string{s.OwnerNames[k.Process], s.NetnsName(k.NetNS)}
		})
		ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_process_memory_bytes")
	}
	folded := emitRanked(ch, c.remote, t.remote, c.maxSeries, remoteLabels)
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_remote_memory_bytes")
	if s.OwnersErr != nil {
		return s.OwnersErr
	}
	return s.TableErr
}
