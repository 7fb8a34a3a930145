package collector

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Route names one route as tcpstate_process_remote_connections labels it:
// process name, network namespace, remote address and remote port.
type Route struct {
	Process, Netns, Address, Port string
}

// TopReading is one reading as `top` asks for it: the families a scrape of
// it would carry, the pids holding each route's sockets and, when asked,
// the dead sockets one by one, all from the same reading.
type TopReading struct {
	Families []*dto.MetricFamily
	// Pids lists, sorted, the pids holding each route's sockets.
	Pids map[Route][]int
	// Sockets are the dead sockets (CLOSE_WAIT, CLOSE) as CloseWaitSockets
	// lists them; SocketsErr says when the listing may miss some.
	Sockets    []snapshot.CloseWaitSocket
	SocketsErr error
	Taken      time.Time
	// FirstReading: this is the exporter's first reading, so an age it
	// counts from its own first sighting is 0 and means nothing yet.
	FirstReading bool
}

// ReadTop reads one snapshot with the process walk (even when no enabled
// collector needs it) and returns what `top` shows of it.
func (e *Exporter) ReadTop(ctx context.Context, withSockets bool) (*TopReading, error) {
	rp := &snapshot.RoutePids{Pids: map[snapshot.RouteKey][]int32{}}
	for _, st := range e.opts.RouteStates {
		rp.States[st] = true
	}
	before := e.Readings()
	s := e.read(ctx, snapshot.Request{WithOwners: true, RoutePids: rp, CloseWait: withSockets})
	reg := prometheus.NewRegistry()
	if err := reg.Register(snapshotCollector{e, s}); err != nil {
		return nil, err
	}
	families, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	out := &TopReading{Families: families, Pids: make(map[Route][]int, len(rp.Pids)), Taken: s.Taken, FirstReading: before == 0}
	for k, pids := range rp.Pids {
		r := Route{s.OwnerNames[k.Process], s.NetnsName(k.NetNS), k.Remote.Addr().String(), strconv.Itoa(int(k.Remote.Port()))}
		for _, p := range pids {
			if !slices.Contains(out.Pids[r], int(p)) {
				out.Pids[r] = append(out.Pids[r], int(p))
			}
		}
		slices.Sort(out.Pids[r])
	}
	if withSockets {
		out.Sockets, out.SocketsErr = closeWaitSockets(s)
	}
	return out, nil
}

// snapshotCollector emits the families of one snapshot already read.
type snapshotCollector struct {
	e *Exporter
	s *snapshot.Snapshot
}

func (c snapshotCollector) Describe(chan<- *prometheus.Desc)    {}
func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) { c.e.emit(c.s, ch) }
