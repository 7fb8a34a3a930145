package collector

import (
	"strconv"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
)

// portsCollector counts outbound sockets by remote port and inbound and
// listening sockets by local port.
type portsCollector struct {
	remote, local *prometheus.Desc
	truncated     *prometheus.Desc
	maxSeries     int
}

func newPortsCollector(o Options) snapshot.View {
	return &portsCollector{
		remote: prometheus.NewDesc(namespace+"_remote_port_connections",
			"Outbound TCP sockets (whose local address and port belong to no listening socket) by state and remote port.", []string{"remote_port", "state"}, nil),
		local: prometheus.NewDesc(namespace+"_local_port_connections",
			"Inbound TCP sockets (accepted on a listening port) and listening sockets by state and local port.", []string{"local_port", "state"}, nil),
		truncated: truncatedDesc,
		maxSeries: o.MaxSeries,
	}
}

func (c *portsCollector) NewTally(*snapshot.Snapshot) snapshot.Tally {
	return &portsTally{c: c, remote: newBoundedFamily[uint16](), local: newBoundedFamily[uint16]()}
}

type portsTally struct {
	c             *portsCollector
	remote, local *boundedFamily[uint16]
}

func (t *portsTally) Add(sk *tables.Socket, in *snapshot.SockInfo) {
	if !sk.State.Valid() || in.Held {
		return
	}
	if in.Dir == snapshot.Outbound {
		t.remote.add(sk.Remote.Port(), sk.State)
	} else {
		t.local.add(sk.Local.Port(), sk.State)
	}
}

func (t *portsTally) Emit(s *snapshot.Snapshot, ch chan<- prometheus.Metric) error {
	c := t.c
	portLabel := func(p uint16) []string { return []string{strconv.Itoa(int(p))} }
	folded := t.remote.emit(ch, c.remote, c.maxSeries, portLabel)
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_remote_port_connections")
	folded = t.local.emit(ch, c.local, c.maxSeries, portLabel)
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_local_port_connections")
	return s.TableErr
}
