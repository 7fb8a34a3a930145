package snapshot

import (
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// The routes of sockets that may end held after the kernel drops them live
// in the CloseWaitTracker's records (closewait.go), beside their CLOSE_WAIT
// ages: an outbound socket seen in CLOSE_WAIT (marked as it is aged) or
// matching a declared pool (marked by see) keeps its endpoints, so that once
// the kernel forgets it its pool and remote endpoint are still known, and
// its age goes on from CLOSE_WAIT into CLOSE.

// see notes a listed outbound socket of a pool, or in CLOSE_WAIT but not
// aged by the tracker (over its cap for ages): its route, and a CLOSE_WAIT
// one's age (by in) dates its death.
func (t *CloseWaitTracker) see(sk *tables.Socket, in *SockInfo, taken time.Time) {
	if sk.Inode == 0 {
		return
	}
	e, ok := t.records.get(sk.Inode)
	if !ok || !t.sameSocket(&e, sk) {
		room := ok || t.records.len() < t.MaxTracked
		if room {
			e, room = t.newRecord(sk)
		}
		if !room {
			t.fullNow++
			return
		}
	}
	if sk.State == tables.StateCloseWait {
		if in.AgeSource != AgeNone {
			since := taken.UnixNano() - int64(in.Age)
			if e.since == 0 || since < e.since {
				e.since, e.source = since, in.AgeSource
			}
		}
	} else {
		e.flags &^= closeWait
	}
	e.flags |= route
	e.generation = t.generation
	t.records.set(sk.Inode, e)
}

// held returns the record of a held socket whose route is remembered,
// dated from when it was first seen dead (CLOSE_WAIT) or, never seen so,
// from this reading.
func (t *CloseWaitTracker) held(ino uint64, taken time.Time) (socketRecord, bool) {
	e, ok := t.records.get(ino)
	if !ok || e.flags&route == 0 {
		return e, false
	}
	if e.since == 0 {
		e.since, e.source = taken.UnixNano(), AgeFirstSeen
	}
	e.flags &^= closeWait
	e.generation = t.generation
	t.records.set(ino, e)
	return e, true
}

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
// in CLOSE_WAIT or of a pool, unless the tracker did as it aged it.
func (r *Reader) remember(s *Snapshot, sk *tables.Socket, in *SockInfo) {
	if r.Tracker == nil || in.Held || in.routed || in.Dir != Outbound {
		return
	}
	if sk.State == tables.StateCloseWait || r.pools.matches(sk, in, s.OwnerNames) {
		r.Tracker.see(sk, in, s.Taken)
	}
}

// countHeld hands the walk's held sockets to the views as sockets in state
// CLOSE: with their route and age when remembered, else per process only.
func (r *Reader) countHeld(s *Snapshot, w *owners.OwnerWalk) {
	s.Held = len(w.Held)
	for _, h := range w.Held {
		sk := tables.Socket{State: tables.StateClose, Inode: h.Inode}
		in := SockInfo{Dir: Unrouted, Owner: h.Name, pid: h.Pid, Held: true}
		if r.Tracker != nil {
			if e, ok := r.Tracker.held(h.Inode, s.Taken); ok {
				sk.Local, sk.Remote, sk.NetNS, sk.Family = r.Tracker.local(&e), r.Tracker.remote(&e), e.netns, e.family
				in.Dir = Outbound
				in.Age, in.AgeSource = time.Duration(max(s.Taken.UnixNano()-e.since, 0)), e.source
			}
		}
		r.count(s, &sk, &in)
	}
}
