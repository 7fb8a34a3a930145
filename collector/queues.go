package collector

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// queuesCollector sums the bytes waiting in socket queues by state. The
// receive side counts data only (see unreadData): in CLOSE_WAIT, bytes mean
// a response nobody read, not merely a connection the peer closed.
type queuesCollector struct {
	receive, transmit *prometheus.Desc
}

func newQueuesCollector(Options) snapshot.View {
	return &queuesCollector{
		receive: prometheus.NewDesc(namespace+"_receive_queue_bytes",
			"Data bytes received but not yet read by the application, summed over TCP sockets by state; the peer's FIN is not counted, and listening sockets are left out (their queue counts connections, not bytes).", []string{"state"}, nil),
		transmit: prometheus.NewDesc(namespace+"_transmit_queue_bytes",
			"Bytes sent but not yet acknowledged by the peer, summed over TCP sockets by state.", []string{"state"}, nil),
	}
}

func (c *queuesCollector) NewTally(*snapshot.Snapshot) snapshot.Tally { return &queuesTally{c: c} }

type queuesTally struct {
	c      *queuesCollector
	rx, tx [tables.NumStates]float64
}

func (t *queuesTally) Add(sk *tables.Socket, in *snapshot.SockInfo) {
	if sk.State.Valid() && sk.State != tables.StateListen && !in.Held {
		t.rx[sk.State] += float64(tables.UnreadData(sk))
		t.tx[sk.State] += float64(sk.TxQueue)
	}
}

func (t *queuesTally) Emit(s *snapshot.Snapshot, ch chan<- prometheus.Metric) error {
	for _, st := range tables.AllStates {
		ch <- prometheus.MustNewConstMetric(t.c.receive, prometheus.GaugeValue, t.rx[st], tables.StateNames[st])
		ch <- prometheus.MustNewConstMetric(t.c.transmit, prometheus.GaugeValue, t.tx[st], tables.StateNames[st])
	}
	return s.TableErr
}
