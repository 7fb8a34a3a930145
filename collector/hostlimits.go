package collector

import (
	"net/netip"
	"os"
	"strconv"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
)

// hostLimitsCollector reports the TCP resources every process on the host
// shares, against their limits: socket memory (net.ipv4.tcp_mem) and
// orphans (net.ipv4.tcp_max_orphans), from net/sockstat and the sysctls
// under --path.procfs; and the peers of the orphans, from the tables. Both
// counters are host-wide in the kernel, whatever network namespace the
// exporter runs in, and the limits exist only in the host's namespace.
type hostLimitsCollector struct {
	memory, memoryLimit, orphans, orphanMax, orphanRemote, truncated *prometheus.Desc
	procRoot                                                         string
	pageSize                                                         uint64
	maxSeries                                                        int
}

// memThresholds names net.ipv4.tcp_mem's three numbers, in its order.
var memThresholds = [3]string{"min", "pressure", "max"}

func newHostLimitsCollector(o Options) snapshot.View {
	return &hostLimitsCollector{
		memory: prometheus.NewDesc(namespace+"_memory_bytes",
			"Memory the kernel charges to the host's TCP sockets (net/sockstat TCP mem, pages × page size), host-wide: compare with tcpstate_memory_limit_bytes.", nil, nil),
		memoryLimit: prometheus.NewDesc(namespace+"_memory_limit_bytes",
			"The host's TCP memory thresholds (net.ipv4.tcp_mem × page size): above pressure the kernel shrinks socket buffers, at max it refuses memory and drops and resets connections.", []string{"threshold"}, nil),
		orphans: prometheus.NewDesc(namespace+"_orphan_sockets",
			"TCP sockets closed by their process whose connection is not finished (net/sockstat TCP orphan), host-wide.", nil, nil),
		orphanMax: prometheus.NewDesc(namespace+"_orphan_max_sockets",
			"Orphaned TCP sockets the kernel tolerates before it resets them (net.ipv4.tcp_max_orphans).", nil, nil),
		orphanRemote: prometheus.NewDesc(namespace+"_orphan_remote_sockets",
			"Orphaned TCP sockets (closed by their process, not finished: FIN_WAIT1, FIN_WAIT2, LAST_ACK, CLOSING with no fd) by remote address and port, in the network namespaces read.", []string{"remote_address", "remote_port"}, nil),
		truncated: truncatedDesc,
		procRoot:  o.ProcRoot,
		pageSize:  uint64(os.Getpagesize()),
		maxSeries: o.MaxSeries,
	}
}

func (c *hostLimitsCollector) NewTally(*snapshot.Snapshot) snapshot.Tally {
	t := &hostLimitsTally{c: c, orphans: map[netip.AddrPort]*rankedValue{}}
	// Read as the reading begins, beside the tables, so that a scrape
	// sharing the reading sees the same numbers.
	t.host, t.err = tables.ReadHostTCP(c.procRoot)
	return t
}

type hostLimitsTally struct {
	c       *hostLimitsCollector
	host    tables.HostTCP
	err     error
	orphans map[netip.AddrPort]*rankedValue
}

func (t *hostLimitsTally) Add(sk *tables.Socket, _ *snapshot.SockInfo) {
	if !tables.IsOrphan(sk) {
		return
	}
	k := netip.AddrPortFrom(sk.Remote.Addr().Unmap(), sk.Remote.Port())
	v := t.orphans[k]
	if v == nil {
		v = &rankedValue{}
		t.orphans[k] = v
	}
	v.rank++
	v.value++
}

// Emit sends the host families that could be read (a file that could not
// leaves its families out and fails the collector, naming it), and the
// orphans' peers, the most orphans first, the rest in "other".
func (t *hostLimitsTally) Emit(s *snapshot.Snapshot, ch chan<- prometheus.Metric) error {
	c := t.c
	if t.err == nil {
		h := &t.host
		ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, float64(h.MemPages*c.pageSize))
		for i, name := range memThresholds {
			ch <- prometheus.MustNewConstMetric(c.memoryLimit, prometheus.GaugeValue, float64(h.MemLimit[i]*c.pageSize), name)
		}
		ch <- prometheus.MustNewConstMetric(c.orphans, prometheus.GaugeValue, float64(h.Orphans))
		ch <- prometheus.MustNewConstMetric(c.orphanMax, prometheus.GaugeValue, float64(h.MaxOrphans))
	}
	folded := emitRanked(ch, c.orphanRemote, t.orphans, c.maxSeries, remoteLabels)
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_orphan_remote_sockets")
	if t.err != nil {
		return t.err
	}
	return s.TableErr
}

func remoteLabels(k netip.AddrPort) []string {
	return []string{k.Addr().String(), strconv.Itoa(int(k.Port()))}
}
