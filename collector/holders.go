package collector

import (
	"context"
	"net/netip"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Route names one route as tcpstate_process_remote_connections labels it:
// process name, remote address and remote port.
type Route struct {
	Process, Address, Port string
}

// routePids collects, as the tables stream, the pids that hold each
// route's outbound sockets in the states of --collector.process.remote-states
// (a socket held by several processes counts for its lowest pid, as its
// owner does).
type routePids struct {
	states [numStates]bool
	pids   map[routeKey][]int32
}

func (r *routePids) add(sk *Socket, in *sockInfo) {
	if in.dir != Outbound || in.owner == noOwner || !sk.State.Valid() || !r.states[sk.State] {
		return
	}
	key := routeKey{processKey{in.owner, sk.NetNS}, netip.AddrPortFrom(sk.Remote.Addr().Unmap(), sk.Remote.Port())}
	if p := r.pids[key]; !slices.Contains(p, in.pid) {
		r.pids[key] = append(p, in.pid)
	}
}

// GatherRoutes reads one snapshot and returns the families a scrape of it
// would carry and, from the same reading, the pids holding each route's
// sockets, sorted: what `top` shows. The process walk runs even when no
// enabled collector needs it.
func (e *Exporter) GatherRoutes(ctx context.Context) ([]*dto.MetricFamily, map[Route][]int, error) {
	rp := &routePids{pids: map[routeKey][]int32{}}
	for _, st := range e.opts.RouteStates {
		rp.states[st] = true
	}
	s := e.read(ctx, readRequest{withOwners: true, routePids: rp})
	reg := prometheus.NewRegistry()
	if err := reg.Register(snapshotCollector{e, s}); err != nil {
		return nil, nil, err
	}
	families, err := reg.Gather()
	if err != nil {
		return nil, nil, err
	}
	out := make(map[Route][]int, len(rp.pids))
	for k, pids := range rp.pids {
		r := Route{s.OwnerNames[k.process], k.remote.Addr().String(), strconv.Itoa(int(k.remote.Port()))}
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
	s *Snapshot
}

func (c snapshotCollector) Describe(chan<- *prometheus.Desc)    {}
func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) { c.e.emit(c.s, ch) }
