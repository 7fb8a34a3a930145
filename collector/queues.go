package collector

import "github.com/prometheus/client_golang/prometheus"

// queuesCollector sums the bytes waiting in socket queues by state. Unread
// bytes in CLOSE_WAIT sockets mean the application stopped reading.
type queuesCollector struct {
	receive, transmit *prometheus.Desc
}

func newQueuesCollector(Options) familyCollector {
	return &queuesCollector{
		receive: prometheus.NewDesc(namespace+"_receive_queue_bytes",
			"Bytes received but not yet read by the application, summed over TCP sockets by state; listening sockets are left out, their queue counts connections, not bytes.", []string{"state"}, nil),
		transmit: prometheus.NewDesc(namespace+"_transmit_queue_bytes",
			"Bytes sent but not yet acknowledged by the peer, summed over TCP sockets by state.", []string{"state"}, nil),
	}
}

func (c *queuesCollector) Update(s *Snapshot, ch chan<- prometheus.Metric) error {
	var rx, tx [numStates]float64
	for i := range s.Sockets {
		sk := &s.Sockets[i]
		if sk.State.Valid() && sk.State != StateListen {
			rx[sk.State] += float64(sk.RxQueue)
			tx[sk.State] += float64(sk.TxQueue)
		}
	}
	for _, st := range allStates {
		ch <- prometheus.MustNewConstMetric(c.receive, prometheus.GaugeValue, rx[st], stateNames[st])
		ch <- prometheus.MustNewConstMetric(c.transmit, prometheus.GaugeValue, tx[st], stateNames[st])
	}
	return s.TableErr
}
