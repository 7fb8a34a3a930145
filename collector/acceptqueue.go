package collector

import (
	"strconv"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
)

// acceptQueueCollector reports, per listening port, the connections the
// kernel completed that wait for accept(), and the queue's limit. A full
// queue means the kernel drops new SYNs (or the handshake's last ACK) on
// that port: clients see connect() or their first read time out. The
// listeners' drop counters (SK_MEMINFO drops) say how many were dropped;
// the netlink source asks only the listening sockets for them, one small
// dump, so they cost nothing per connection.
type acceptQueueCollector struct {
	length, limit, drops, truncated *prometheus.Desc
	maxSeries                       int
}

func newAcceptQueueCollector(o Options) snapshot.View {
	return &acceptQueueCollector{
		length: prometheus.NewDesc(namespace+"_accept_queue_sockets",
			"Connections waiting for accept() on listening TCP sockets, summed over the listeners of a local port.", []string{"local_port"}, nil),
		limit: prometheus.NewDesc(namespace+"_accept_queue_max_sockets",
			"Accept queue limit (min(backlog, net.core.somaxconn)) of listening TCP sockets, summed over the listeners of a local port; netlink source only.", []string{"local_port"}, nil),
		drops: prometheus.NewDesc(namespace+"_listen_drops_total",
			"SYNs and completed connections dropped by the listening TCP sockets of a local port (their SK_MEMINFO drops, the ListenOverflows/ListenDrops of one port); restarts with the listener; netlink source only.", []string{"local_port"}, nil),
		truncated: truncatedDesc,
		maxSeries: o.MaxSeries,
	}
}

func (c *acceptQueueCollector) NewTally(*snapshot.Snapshot) snapshot.Tally {
	return &acceptQueueTally{c: c, ports: map[uint16]*acceptQueue{}}
}

// acceptQueue is one local port's listeners, summed.
type acceptQueue struct {
	length, limit float64
	// unknownLimit counts listeners whose limit the source does not give
	// (procfs tables): the port's limit is then not reported.
	unknownLimit int
	// drops sums the listeners' drop counters; unknownDrops counts those
	// whose counter the source does not give (the port's is then not
	// reported).
	drops        float64
	unknownDrops int
}

type acceptQueueTally struct {
	c     *acceptQueueCollector
	ports map[uint16]*acceptQueue
}

func (t *acceptQueueTally) Add(sk *tables.Socket, _ *snapshot.SockInfo) {
	if sk.State != tables.StateListen {
		return
	}
	q := t.ports[sk.Local.Port()]
	if q == nil {
		q = &acceptQueue{}
		t.ports[sk.Local.Port()] = q
	}
	q.length += float64(sk.RxQueue)
	if sk.HasBacklog {
		q.limit += float64(sk.Backlog)
	} else {
		q.unknownLimit++
	}
	if sk.HasMem {
		q.drops += float64(sk.Drops)
	} else {
		q.unknownDrops++
	}
}

// Emit sends both families for the same ports: the longest queues first,
// the rest summed into local_port="other".
func (t *acceptQueueTally) Emit(s *snapshot.Snapshot, ch chan<- prometheus.Metric) error {
	c := t.c
	rank := func(q *acceptQueue) float64 { return q.length }
	folded := emitFolded(t.ports, c.maxSeries, func(p uint16) []string { return []string{strconv.Itoa(int(p))} }, rank,
		func(dst, src *acceptQueue) {
			dst.length += src.length
			dst.limit += src.limit
			dst.unknownLimit += src.unknownLimit
			dst.drops += src.drops
			dst.unknownDrops += src.unknownDrops
		},
		func(labels []string, q *acceptQueue) {
			ch <- prometheus.MustNewConstMetric(c.length, prometheus.GaugeValue, q.length, labels...)
			if q.unknownLimit == 0 {
				ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, q.limit, labels...)
			}
			if q.unknownDrops == 0 {
				ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, q.drops, labels...)
			}
		})
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_accept_queue_sockets")
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_accept_queue_max_sockets")
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_listen_drops_total")
	return s.TableErr
}
