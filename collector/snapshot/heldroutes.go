package snapshot

import (
	"net/netip"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// heldRoute is what the exporter remembers of a socket that may end held
// after the kernel drops it: its endpoints, for the per-route and pool
// families, and since when it has been dead (in CLOSE_WAIT, then CLOSE).
type heldRoute struct {
	local, remote netip.AddrPort
	since         int64 // unix nanoseconds; 0: not dead yet
	generation    uint32
	netns         uint16
	family        tables.Family
	source        AgeSource
}

// HeldRoutes remembers the routes of the outbound sockets seen in
// CLOSE_WAIT or matching a declared pool, by inode, so that once the kernel
// forgets a socket its pool and remote endpoint are still known. At most
// Max sockets are remembered (beyond that a new socket's route is not, and
// once dropped it counts only per process); an entry costs about 130 bytes
// (TestHeldRoutesMemory). A socket is forgotten at the first complete
// reading that neither lists it nor finds it held.
type HeldRoutes struct {
	Max int

	routes     map[uint64]heldRoute
	generation uint32
	// full counts the sockets of the last reading left out by Max.
	full, fullNow int
}

// NewHeldRoutes returns a memory of at most max routes.
func NewHeldRoutes(max int) *HeldRoutes {
	return &HeldRoutes{Max: max, routes: map[uint64]heldRoute{}}
}

func (h *HeldRoutes) begin() { h.generation++; h.fullNow = 0 }

// see notes a listed socket worth remembering; a CLOSE_WAIT one's age (by
// in) dates its death.
func (h *HeldRoutes) see(sk *tables.Socket, in *SockInfo, taken time.Time) {
	if sk.Inode == 0 {
		return
	}
	e, ok := h.routes[sk.Inode]
	if !ok || e.remote != sk.Remote || e.local != sk.Local {
		if !ok && len(h.routes) >= h.Max {
			h.fullNow++
			return
		}
		e = heldRoute{local: sk.Local, remote: sk.Remote, netns: sk.NetNS, family: sk.Family}
	}
	if sk.State == tables.StateCloseWait && in.AgeSource != AgeNone {
		since := taken.UnixNano() - int64(in.Age)
		if e.since == 0 || since < e.since {
			e.since, e.source = since, in.AgeSource
		}
	}
	e.generation = h.generation
	h.routes[sk.Inode] = e
}

// held returns the route of a held socket, dated from when it was first
// seen dead (CLOSE_WAIT) or, never seen so, from this reading.
func (h *HeldRoutes) held(ino uint64, taken time.Time) (heldRoute, bool) {
	e, ok := h.routes[ino]
	if !ok {
		return e, false
	}
	if e.since == 0 {
		e.since, e.source = taken.UnixNano(), AgeFirstSeen
	}
	e.generation = h.generation
	h.routes[ino] = e
	return e, true
}

// end closes a reading; only a complete one forgets.
func (h *HeldRoutes) end(complete bool) {
	h.full = h.fullNow
	if !complete {
		return
	}
	for ino, e := range h.routes {
		if e.generation != h.generation {
			delete(h.routes, ino)
		}
	}
}

// Remembered returns how many routes are remembered, and how many sockets
// of the last reading Max left out.
func (h *HeldRoutes) Remembered() (remembered, full int) { return len(h.routes), h.full }

// poolRoutes tells, for one reading, whether an outbound socket matches a
// declared pool, asking each pool's process regexp once per process name.
type poolRoutes struct {
	cfg   *config.Config
	match [][]int8 // per pool and owner: 0 not asked, 1 yes, -1 no
}

func (p *poolRoutes) reset(cfg *config.Config) {
	p.cfg = cfg
	p.match = p.match[:0]
	if cfg != nil {
		for range cfg.Pools {
			p.match = append(p.match, nil)
		}
	}
}

func (p *poolRoutes) matches(sk *tables.Socket, in *SockInfo, names []string) bool {
	if p.cfg == nil {
		return false
	}
	for i, pool := range p.cfg.Pools {
		if !pool.MatchesRemote(sk.Remote) {
			continue
		}
		if pool.Process == nil {
			return true
		}
		if in.Owner == owners.NoOwner || int(in.Owner) >= len(names) {
			continue
		}
		m := p.match[i]
		for int(in.Owner) >= len(m) {
			m = append(m, 0)
		}
		p.match[i] = m
		if m[in.Owner] == 0 {
			m[in.Owner] = -1
			if pool.Process.MatchString(names[in.Owner]) {
				m[in.Owner] = 1
			}
		}
		if m[in.Owner] == 1 {
			return true
		}
	}
	return false
}

// remember notes, as a socket is counted, the route of an outbound socket
// in CLOSE_WAIT or of a pool.
func (r *Reader) remember(s *Snapshot, sk *tables.Socket, in *SockInfo) {
	if r.Routes == nil || in.Held || in.Dir != Outbound {
		return
	}
	if sk.State == tables.StateCloseWait || r.pools.matches(sk, in, s.OwnerNames) {
		r.Routes.see(sk, in, s.Taken)
	}
}

// countHeld hands the walk's held sockets to the views as sockets in state
// CLOSE: with their route and age when remembered, else per process only.
func (r *Reader) countHeld(s *Snapshot, w *owners.OwnerWalk) {
	s.Held = len(w.Held)
	for _, h := range w.Held {
		sk := tables.Socket{State: tables.StateClose, Inode: h.Inode}
		in := SockInfo{Dir: Unrouted, Owner: h.Name, pid: h.Pid, Held: true}
		if r.Routes != nil {
			if e, ok := r.Routes.held(h.Inode, s.Taken); ok {
				sk.Local, sk.Remote, sk.NetNS, sk.Family = e.local, e.remote, e.netns, e.family
				in.Dir = Outbound
				in.Age, in.AgeSource = time.Duration(max(s.Taken.UnixNano()-e.since, 0)), e.source
			}
		}
		r.count(s, &sk, &in)
	}
}
