package snapshot

import (
	"net/netip"
	"sync"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// CloseWaitTracker remembers, in one record per socket keyed by inode, what
// the exporter must know of a socket past the reading that listed it: how
// long it has been in CLOSE_WAIT, and, for an outbound socket that may end
// held after the kernel drops it (heldroutes.go), its route.
//
// A CLOSE_WAIT socket's age has two clocks, each a lower bound, and the
// tracker reports the larger:
//
//   - the kernel's: with the netlink source a CLOSE_WAIT socket carries
//     tcpi_last_ack_recv (Socket.AckAge), the time since it last received an
//     ACK, which for a socket whose process sends nothing is the time since
//     the peer's FIN. It is right from the first reading after a start, and
//     as fine as a millisecond. Something the peer sends later (an answer to
//     a keepalive probe) restarts it, so it is only a lower bound;
//   - the exporter's: when it first saw the socket in CLOSE_WAIT, as fine as
//     its readings (the scrape interval, or the sampler's), starting afresh
//     when the exporter restarts. The procfs source and the other network
//     namespaces (read through /proc/PID/net) have only this one.
//
// A record keeps the earliest start either clock has shown, so that an age
// never goes backwards between readings, and the socket's addresses, which
// tell an inode reused by a new socket from the old one and give a held
// socket its route. A record costs 40 bytes in a packed store (the local
// address is an index into the tracker's few local addresses) and a
// 16-byte index entry at the index map's load (records.go): 63 to 75
// bytes a socket as that load varies with the count (64 at 100 000, 74 at
// 36 000; see TestSocketRecordMemory). A complete reading forgets the records of
// sockets it neither listed (in CLOSE_WAIT, or as a pool's) nor found held;
// an incomplete one forgets nothing.
//
// At most MaxTracked records are kept, CLOSE_WAIT sockets and remembered
// routes together (--collector.close-wait.max-tracked). Once full, a new
// CLOSE_WAIT socket has only its kernel age, if the source gives one
// (counted as untracked), and a new pool socket's route is not remembered
// (if the kernel drops it, it counts per process only); the sockets already
// recorded keep theirs. The same holds for a socket whose local address
// would be the 65 536th distinct one (a host has a few: its own, its
// pods'); the addresses are forgotten when no record uses them.
//
// The reading's methods (begin, observe, see, held, end) are called by one
// reading at a time, the Reader's; Tracked and Sources may be called from
// any goroutine.
type CloseWaitTracker struct {
	MaxTracked int
	// clock reads the time the kernel's ages are counted from (a test
	// sets it).
	clock func() time.Time

	records    recordStore
	generation uint32
	// locals are the local addresses of the records, which point into it
	// (socketRecord.local); localIDs finds them.
	locals   []netip.Addr
	localIDs map[netip.Addr]uint16
	// Counted by the reading under way.
	untrackedNow, fullNow int
	counting              [numAgeSources]int

	mu sync.Mutex // guards the last complete figures below
	// tracked counts the records of CLOSE_WAIT sockets, routes the
	// remembered routes, after the last reading; untracked the CLOSE_WAIT
	// sockets it left out by the cap, full the routes.
	tracked, routes, untracked, full int
	sources                          [numAgeSources]int
}

// AgeSource says which clock a CLOSE_WAIT socket's age came from.
type AgeSource uint8

const (
	// AgeNone: the socket has no age (ages are off, or it is over
	// --collector.close-wait.max-tracked and the kernel gave none).
	AgeNone AgeSource = iota
	// AgeFirstSeen: counted from when the exporter first saw the socket in
	// CLOSE_WAIT.
	AgeFirstSeen
	// AgeKernel: counted from the kernel's last ACK received (tcp_info).
	AgeKernel

	numAgeSources = 3
)

var ageSourceNames = [numAgeSources]string{AgeNone: "none", AgeFirstSeen: "first_seen", AgeKernel: "kernel"}

// String returns the label value: none, first_seen or kernel.
func (a AgeSource) String() string { return ageSourceNames[a] }

// socketRecord is all the exporter remembers of one socket between
// readings: 40 bytes, the remote address in its 16-byte form (a flag says
// whether it was IPv4) rather than as a netip.AddrPort (32 bytes), the
// local one an index into CloseWaitTracker.locals.
type socketRecord struct {
	remote [16]byte
	// since is when the socket was first known dead (CLOSE_WAIT, or found
	// held), in unix nanoseconds, by source's clock; 0: not yet.
	since        int64
	generation   uint32 // of the last reading that listed it or found it held
	lport, rport uint16
	local        uint16
	netns        uint16
	family       tables.Family
	source       AgeSource
	flags        recordFlags
}

type recordFlags uint8

const (
	remote4 recordFlags = 1 << iota // the remote address is IPv4
	// closeWait: the last reading that listed the socket listed it in
	// CLOSE_WAIT (tcpstate_close_wait_tracked_sockets counts these).
	closeWait
	// route: an outbound socket in CLOSE_WAIT or of a pool; if the kernel
	// drops it while a process holds it, its route and pool are known.
	route
)

// maxLocals bounds the distinct local addresses of the records.
const maxLocals = 1 << 16

// newRecord records a socket's addresses; false when its local address
// would be one too many.
func (t *CloseWaitTracker) newRecord(s *tables.Socket) (socketRecord, bool) {
	a := s.Local.Addr()
	id, ok := t.localIDs[a]
	if !ok {
		if len(t.locals) >= maxLocals {
			return socketRecord{}, false
		}
		id = uint16(len(t.locals))
		t.locals = append(t.locals, a)
		t.localIDs[a] = id
	}
	e := socketRecord{remote: s.Remote.Addr().As16(), lport: s.Local.Port(), rport: s.Remote.Port(), local: id, netns: s.NetNS, family: s.Family}
	if s.Remote.Addr().Is4() {
		e.flags |= remote4
	}
	return e, true
}

// sameSocket tells whether the record is of s, and not of an earlier
// socket whose inode s reuses.
func (t *CloseWaitTracker) sameSocket(e *socketRecord, s *tables.Socket) bool {
	r := s.Remote.Addr()
	return e.lport == s.Local.Port() && e.rport == s.Remote.Port() && e.remote == r.As16() &&
		(e.flags&remote4 != 0) == r.Is4() && t.locals[e.local] == s.Local.Addr()
}

// local and remote return a record's endpoints as the tables gave them.
func (t *CloseWaitTracker) local(e *socketRecord) netip.AddrPort {
	return netip.AddrPortFrom(t.locals[e.local], e.lport)
}

func (t *CloseWaitTracker) remote(e *socketRecord) netip.AddrPort {
	a := netip.AddrFrom16(e.remote)
	if e.flags&remote4 != 0 {
		a = a.Unmap()
	}
	return netip.AddrPortFrom(a, e.rport)
}

// closeWaitSince is when a CLOSE_WAIT socket entered that state, as far as
// the exporter can tell, and which clock said so.
type closeWaitSince struct {
	nanos  int64 // unix nanoseconds; 0 with AgeNone
	source AgeSource
}

// NewCloseWaitTracker returns a tracker that keeps at most maxTracked
// records.
func NewCloseWaitTracker(maxTracked int) *CloseWaitTracker {
	return &CloseWaitTracker{MaxTracked: maxTracked, clock: time.Now, records: newRecordStore(), localIDs: map[netip.Addr]uint16{}}
}

// begin starts a reading: the sockets observe, see and held take until end
// are its sockets.
func (t *CloseWaitTracker) begin() {
	t.generation++
	t.counting = [numAgeSources]int{}
	t.untrackedNow, t.fullNow = 0, 0
}

// observe takes one CLOSE_WAIT socket of the reading that began at taken,
// and returns how long it had been in CLOSE_WAIT then, and by which clock:
// the earliest start the kernel's clock or the tracker's first sighting has
// shown (AgeNone for an untracked socket without a kernel age). A first
// sighting counts from taken, so the sockets first seen by one reading
// share an age; the kernel's clock is read as the socket streams, a little
// after taken, so its age may come out short by that much, never long.
// An outbound socket's record also keeps its route (in.Dir says which;
// in.routed is set when it does).
func (t *CloseWaitTracker) observe(s *tables.Socket, in *SockInfo, taken time.Time) {
	t.observeAs(s, in, taken, true)
}

// observeKnown is observe for a socket the tracker already knows: its age
// needs no kernel reading (the kernel's clock only ever restarts later).
// A socket it does not know is left alone, uncounted, and it returns false.
func (t *CloseWaitTracker) observeKnown(s *tables.Socket, in *SockInfo, taken time.Time) bool {
	if s.Inode == 0 {
		return false
	}
	e, ok := t.records.get(s.Inode)
	if !ok || e.flags&closeWait == 0 || !t.sameSocket(&e, s) {
		return false
	}
	e.generation = t.generation
	t.markRoute(&e, in)
	t.records.set(s.Inode, e)
	t.counting[e.source]++
	in.Age, in.AgeSource = time.Duration(max(taken.UnixNano()-e.since, 0)), e.source
	return true
}

// observeAs is observe; without remember a socket the tracker does not
// know yet is not remembered (its kernel age is to come at a later
// reading), and has an age only from the kernel.
func (t *CloseWaitTracker) observeAs(s *tables.Socket, in *SockInfo, taken time.Time, remember bool) {
	takenNanos := taken.UnixNano()
	// The kernel's bound, when there is one: now less the time since the
	// last ACK received.
	var kernel closeWaitSince
	if s.HasAckAge {
		kernel = closeWaitSince{t.clock().UnixNano() - int64(s.AckAge)*int64(time.Millisecond), AgeKernel}
	}
	since := kernel
	if s.Inode != 0 && remember {
		since = t.remember(s, in, kernel, takenNanos)
	}
	t.counting[since.source]++
	in.Age, in.AgeSource = 0, since.source
	if since.source != AgeNone {
		in.Age = time.Duration(max(takenNanos-since.nanos, 0))
	}
}

// remember records a CLOSE_WAIT socket's sighting and returns its start.
func (t *CloseWaitTracker) remember(s *tables.Socket, in *SockInfo, kernel closeWaitSince, nowNanos int64) closeWaitSince {
	e, ok := t.records.get(s.Inode)
	if ok && !t.sameSocket(&e, s) {
		ok = false // the inode of a socket gone, reused
	}
	if !ok {
		var room bool
		if t.records.len() < t.MaxTracked {
			e, room = t.newRecord(s)
		}
		if !room {
			t.untrackedNow++
			return kernel
		}
	}
	if e.since == 0 {
		// Seen dead for the first time: the kernel's clock, when there is
		// one, knows better than this reading.
		e.since, e.source = nowNanos, AgeFirstSeen
		if kernel.source == AgeKernel {
			e.since, e.source = kernel.nanos, AgeKernel
		}
	} else if kernel.source == AgeKernel && kernel.nanos <= e.since {
		// Keep the earlier start: a keepalive probe answered by the peer
		// restarts the kernel's clock, and an age must not go backwards.
		e.since, e.source = kernel.nanos, AgeKernel
	}
	e.flags |= closeWait
	e.generation = t.generation
	t.markRoute(&e, in)
	t.records.set(s.Inode, e)
	return closeWaitSince{e.since, e.source}
}

// markRoute keeps the route of an outbound CLOSE_WAIT socket's record,
// which remember (heldroutes.go) then need not look up again.
func (t *CloseWaitTracker) markRoute(e *socketRecord, in *SockInfo) {
	if in.Dir == Outbound && !in.Held {
		e.flags |= route
		in.routed = true
	}
}

// end closes a reading. complete says whether the reading listed every
// socket: only a complete one lets the tracker forget the sockets it
// neither listed nor found held.
func (t *CloseWaitTracker) end(complete bool) {
	tracked, routes := 0, 0
	var used []bool // by local address, when they are to be compacted
	if complete && len(t.locals) > 64 {
		used = make([]bool, len(t.locals))
	}
	t.records.each(func(_ uint64, e *socketRecord) bool {
		if complete && e.generation != t.generation {
			return false
		}
		if e.flags&closeWait != 0 {
			tracked++
		}
		if e.flags&route != 0 {
			routes++
		}
		if used != nil {
			used[e.local] = true
		}
		return true
	})
	if t.records.len() == 0 && t.records.slots > 0 {
		t.records.reset() // no dead socket left: its memory given back
	}
	if used != nil {
		t.compactLocals(used)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sources, t.untracked, t.full = t.counting, t.untrackedNow, t.fullNow
	t.tracked, t.routes = tracked, routes
}

// compactLocals forgets the local addresses no record uses, when they are
// at least half, and renumbers the records'.
func (t *CloseWaitTracker) compactLocals(used []bool) {
	n := 0
	for _, u := range used {
		if u {
			n++
		}
	}
	if n > len(t.locals)/2 {
		return
	}
	newID := make([]uint16, len(t.locals))
	kept := t.locals[:0]
	clear(t.localIDs)
	for i, a := range t.locals {
		if used[i] {
			newID[i] = uint16(len(kept))
			t.localIDs[a] = newID[i]
			kept = append(kept, a)
		}
	}
	clear(t.locals[len(kept):])
	t.locals = kept
	t.records.each(func(_ uint64, e *socketRecord) bool {
		e.local = newID[e.local]
		return true
	})
}

// Tracked returns how many CLOSE_WAIT sockets are tracked, and how many
// CLOSE_WAIT sockets of the last reading were left out by the cap.
func (t *CloseWaitTracker) Tracked() (tracked, untracked int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tracked, t.untracked
}

// Remembered returns how many routes are remembered, and how many sockets
// of the last reading the cap left out.
func (t *CloseWaitTracker) Remembered() (remembered, full int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.routes, t.full
}

// Sources returns how many CLOSE_WAIT sockets of the last reading had their
// age from each clock, indexed by AgeSource.
func (t *CloseWaitTracker) Sources() [numAgeSources]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sources
}
