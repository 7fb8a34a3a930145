package collector

import "github.com/prometheus/client_golang/prometheus"

// queuesCollector sums the bytes waiting in socket queues by state. The
// receive side counts data only (see unreadData): in CLOSE_WAIT, bytes mean
// a response nobody read, not merely a connection the peer closed.
type queuesCollector struct {
	receive, transmit *prometheus.Desc
}

func newQueuesCollector(Options) familyCollector {
	return &queuesCollector{
		receive: prometheus.NewDesc(namespace+"_receive_queue_bytes",
			"Data bytes received but not yet read by the application, summed over TCP sockets by state; the peer's FIN is not counted, and listening sockets are left out (their queue counts connections, not bytes).", []string{"state"}, nil),
		transmit: prometheus.NewDesc(namespace+"_transmit_queue_bytes",
			"Bytes sent but not yet acknowledged by the peer, summed over TCP sockets by state.", []string{"state"}, nil),
	}
}

func (c *queuesCollector) newTally(*Snapshot) tally { return &queuesTally{c: c} }

type queuesTally struct {
	c      *queuesCollector
	rx, tx [numStates]float64
}

func (t *queuesTally) add(sk *Socket, in *sockInfo) {
	if sk.State.Valid() && sk.State != StateListen && !in.held {
		t.rx[sk.State] += float64(unreadData(sk))
		t.tx[sk.State] += float64(sk.TxQueue)
	}
}

func (t *queuesTally) emit(s *Snapshot, ch chan<- prometheus.Metric) error {
	for _, st := range allStates {
		ch <- prometheus.MustNewConstMetric(t.c.receive, prometheus.GaugeValue, t.rx[st], stateNames[st])
		ch <- prometheus.MustNewConstMetric(t.c.transmit, prometheus.GaugeValue, t.tx[st], stateNames[st])
	}
	return s.TableErr
}

// unreadData returns the data bytes a socket received and its process has
// not read. Both sources report the kernel's rcv_nxt - copied_seq, in which
// a FIN takes one sequence number until the process reads the end of
// stream; reads are in order, so in a state where the peer's FIN has
// arrived (CLOSE_WAIT, LAST_ACK, CLOSING) a non-empty queue always ends
// with that FIN. Measured on real sockets, on both sources, by
// TestKernelReceiveQueueAccounting: an idle CLOSE_WAIT socket reads 1, one
// holding an unread 100-byte response 101, one read to the end of stream 0.
func unreadData(sk *Socket) uint64 {
	switch sk.State {
	case StateCloseWait, StateLastAck, StateClosing:
		if sk.RxQueue > 0 {
			return sk.RxQueue - 1
		}
	}
	return sk.RxQueue
}
