package snapshot

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// CloseWaitTracker tells how long each socket has been in CLOSE_WAIT. Two
// clocks give a lower bound each, and the tracker reports the larger:
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
// The tracker remembers, per socket, the earliest start either clock has
// shown, so that an age never goes backwards between readings, and forgets
// a socket when it leaves CLOSE_WAIT. A tracked socket costs one map entry
// (a 16-byte key, a 16-byte value and the map's overhead: about 50 bytes,
// see TestCloseWaitTrackerMemory); at most MaxTracked sockets are tracked.
// Beyond that a socket with a kernel age still has that age, the others
// none.
type CloseWaitTracker struct {
	MaxTracked int
	seed       maphash.Seed
	// clock reads the time the kernel's ages are counted from (a test
	// sets it).
	clock func() time.Time

	mu         sync.Mutex
	first      map[closeWaitKey]closeWaitEntry
	generation uint32
	untracked  int // CLOSE_WAIT sockets of the last reading left out by the cap
	sources    [numAgeSources]int
	// The same, counted by the reading under way.
	untrackedNow int
	counting     [numAgeSources]int
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

// closeWaitSince is when a CLOSE_WAIT socket entered that state, as far as
// the exporter can tell, and which clock said so.
type closeWaitSince struct {
	nanos  int64 // unix nanoseconds; 0 with AgeNone
	source AgeSource
}

// closeWaitKey names a socket by its inode and a hash of its addresses, so
// that an inode reused by a new socket is not mistaken for the old one.
type closeWaitKey struct {
	inode, tuple uint64
}

type closeWaitEntry struct {
	since      int64 // unix nanoseconds
	generation uint32
	source     AgeSource
}

// NewCloseWaitTracker returns a tracker that tracks at most maxTracked
// sockets.
func NewCloseWaitTracker(maxTracked int) *CloseWaitTracker {
	return &CloseWaitTracker{MaxTracked: maxTracked, seed: maphash.MakeSeed(), clock: time.Now, first: map[closeWaitKey]closeWaitEntry{}}
}

func (t *CloseWaitTracker) key(s *tables.Socket) closeWaitKey {
	var h maphash.Hash
	h.SetSeed(t.seed)
	l, r := s.Local.Addr().As16(), s.Remote.Addr().As16()
	h.Write(l[:])
	h.Write(r[:])
	var ports [4]byte
	ports[0], ports[1] = byte(s.Local.Port()>>8), byte(s.Local.Port())
	ports[2], ports[3] = byte(s.Remote.Port()>>8), byte(s.Remote.Port())
	h.Write(ports[:])
	return closeWaitKey{inode: s.Inode, tuple: h.Sum64()}
}

// begin starts a reading: the sockets observe sees until end are its
// sockets.
func (t *CloseWaitTracker) begin() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.generation++
	t.counting = [numAgeSources]int{}
	t.untrackedNow = 0
}

// observe takes one CLOSE_WAIT socket of the reading that began at taken,
// and returns how long it had been in CLOSE_WAIT then, and by which clock:
// the earliest start the kernel's clock or the tracker's first sighting has
// shown (AgeNone for an untracked socket without a kernel age). A first
// sighting counts from taken, so the sockets first seen by one reading
// share an age; the kernel's clock is read as the socket streams, a little
// after taken, so its age may come out short by that much, never long.
func (t *CloseWaitTracker) observe(s *tables.Socket, taken time.Time) (time.Duration, AgeSource) {
	return t.observeAs(s, taken, true)
}

// observeKnown is observe for a socket the tracker already knows: its age
// needs no kernel reading (the kernel's clock only ever restarts later).
// A socket it does not know is left alone, uncounted, and ok is false.
func (t *CloseWaitTracker) observeKnown(s *tables.Socket, taken time.Time) (age time.Duration, src AgeSource, ok bool) {
	if s.Inode == 0 {
		return 0, AgeNone, false
	}
	k := t.key(s)
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.first[k]
	if !ok {
		return 0, AgeNone, false
	}
	e.generation = t.generation
	t.first[k] = e
	t.counting[e.source]++
	return time.Duration(max(taken.UnixNano()-e.since, 0)), e.source, true
}

// observeAs is observe; without remember a socket the tracker does not
// know yet is not remembered (its kernel age is to come at a later
// reading), and has an age only from the kernel.
func (t *CloseWaitTracker) observeAs(s *tables.Socket, taken time.Time, remember bool) (time.Duration, AgeSource) {
	takenNanos := taken.UnixNano()
	// The kernel's bound, when there is one: now less the time since the
	// last ACK received.
	var kernel closeWaitSince
	if s.HasAckAge {
		kernel = closeWaitSince{t.clock().UnixNano() - int64(s.AckAge)*int64(time.Millisecond), AgeKernel}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	since := kernel
	if s.Inode != 0 && remember {
		since = t.remember(s, kernel, takenNanos)
	}
	t.counting[since.source]++
	if since.source == AgeNone {
		return 0, AgeNone
	}
	return time.Duration(max(takenNanos-since.nanos, 0)), since.source
}

// remember records a socket's sighting and returns its start. Called with
// t.mu held.
func (t *CloseWaitTracker) remember(s *tables.Socket, kernel closeWaitSince, nowNanos int64) closeWaitSince {
	k := t.key(s)
	e, ok := t.first[k]
	if !ok {
		if len(t.first) >= t.MaxTracked {
			t.untrackedNow++
			return kernel
		}
		// Seen for the first time: the kernel's clock, when there is one,
		// knows better than this reading.
		e.since, e.source = nowNanos, AgeFirstSeen
		if kernel.source == AgeKernel {
			e.since, e.source = kernel.nanos, AgeKernel
		}
	} else if kernel.source == AgeKernel && kernel.nanos <= e.since {
		// Keep the earlier start: a keepalive probe answered by the peer
		// restarts the kernel's clock, and an age must not go backwards.
		e.since, e.source = kernel.nanos, AgeKernel
	}
	e.generation = t.generation
	t.first[k] = e
	return closeWaitSince{e.since, e.source}
}

// end closes a reading. complete says whether the reading listed every
// socket: only a complete one lets the tracker forget the sockets it did
// not see.
func (t *CloseWaitTracker) end(complete bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sources, t.untracked = t.counting, t.untrackedNow
	if complete {
		for k, e := range t.first {
			if e.generation != t.generation {
				delete(t.first, k)
			}
		}
	}
}

// Tracked returns how many sockets are tracked, and how many CLOSE_WAIT
// sockets of the last reading were left out by the cap.
func (t *CloseWaitTracker) Tracked() (tracked, untracked int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.first), t.untracked
}

// Sources returns how many CLOSE_WAIT sockets of the last reading had their
// age from each clock, indexed by AgeSource.
func (t *CloseWaitTracker) Sources() [numAgeSources]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sources
}
