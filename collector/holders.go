package collector

import (
	"context"
	"slices"
	"strconv"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Route names one route as tcpstate_process_remote_connections labels it:
// process name, remote address and remote port.
type Route struct {
	Process, Address, Port string
}

// GatherRoutes reads one snapshot and returns the families a scrape of it
// would carry and, from the same reading, the pids holding each route's
// sockets, sorted: what `top` shows. The process walk runs even when no
// enabled collector needs it.
func (e *Exporter) GatherRoutes(ctx context.Context) ([]*dto.MetricFamily, map[Route][]int, error) {
	rp := &snapshot.RoutePids{Pids: map[snapshot.RouteKey][]int32{}}
	for _, st := range e.opts.RouteStates {
		rp.States[st] = true
	}
	s := e.read(ctx, snapshot.Request{WithOwners: true, RoutePids: rp})
	reg := prometheus.NewRegistry()
	if err := reg.Register(snapshotCollector{e, s}); err != nil {
		return nil, nil, err
	}
	families, err := reg.Gather()
	if err != nil {
		return nil, nil, err
	}
	out := make(map[Route][]int, len(rp.Pids))
	for k, pids := range rp.Pids {
		r := Route{s.OwnerNames[k.Process], k.Remote.Addr().String(), strconv.Itoa(int(k.Remote.Port()))}
		// top shows a route once, whatever namespaces (pods) hold it.
		for _, p := range pids {
			if !slices.Contains(out[r], int(p)) {
				out[r] = append(out[r], int(p))
			}
		}
		slices.Sort(out[r])
	}
	return families, out, nil
}

// snapshotCollector emits the families of one snapshot already read.
type snapshotCollector struct {
	e *Exporter
	s *snapshot.Snapshot
}

func (c snapshotCollector) Describe(chan<- *prometheus.Desc)    {}
func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) { c.e.emit(c.s, ch) }
