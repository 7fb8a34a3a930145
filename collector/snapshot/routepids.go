package snapshot

import (
	"net/netip"
	"slices"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// RoutePids collects, as the tables stream, the pids that hold each
// route's outbound sockets in the states of --collector.process.remote-states
// (a socket held by several processes counts for its lowest pid, as its
// owner does).
type RoutePids struct {
	States [tables.NumStates]bool
	Pids   map[RouteKey][]int32
}

func (r *RoutePids) add(sk *tables.Socket, in *SockInfo) {
	if in.Dir != Outbound || in.Owner == owners.NoOwner || !sk.State.Valid() || !r.States[sk.State] {
		return
	}
	key := RouteKey{ProcessKey{in.Owner, sk.NetNS}, netip.AddrPortFrom(sk.Remote.Addr().Unmap(), sk.Remote.Port())}
	if p := r.Pids[key]; !slices.Contains(p, in.pid) {
		r.Pids[key] = append(p, in.pid)
	}
}

// ProcessKey names a process by name and network namespace: processes of
// one name in different pods are told apart.
type ProcessKey struct {
	Process int32
	NetNS   uint16
}

type RouteKey struct {
	ProcessKey
	Remote netip.AddrPort
}
