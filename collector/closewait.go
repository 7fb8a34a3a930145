package collector

import (
	"cmp"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CloseWaitTracker remembers, across readings, when the exporter first saw
// each socket in CLOSE_WAIT, and forgets a socket when it leaves that state.
// Ages are therefore as fine as the readings (the scrape interval, or the
// sampler's) and start when the exporter first saw the socket: after a
// restart every stuck socket looks new.
//
// A tracked socket costs one map entry (a 16-byte key, a 16-byte value and
// the map's overhead: about 50 bytes, see TestCloseWaitTrackerMemory); at
// most MaxTracked sockets are tracked, and the rest have no age.
type CloseWaitTracker struct {
	maxTracked int
	seed       maphash.Seed

	mu         sync.Mutex
	first      map[closeWaitKey]closeWaitEntry
	generation uint32
	untracked  int // CLOSE_WAIT sockets of the last reading left out by the cap
}

// closeWaitKey names a socket by its inode and a hash of its addresses, so
// that an inode reused by a new socket is not mistaken for the old one.
type closeWaitKey struct {
	inode, tuple uint64
}

type closeWaitEntry struct {
	since      int64 // unix nanoseconds
	generation uint32
}

// NewCloseWaitTracker returns a tracker that tracks at most maxTracked
// sockets.
func NewCloseWaitTracker(maxTracked int) *CloseWaitTracker {
	return &CloseWaitTracker{maxTracked: maxTracked, seed: maphash.MakeSeed(), first: map[closeWaitKey]closeWaitEntry{}}
}

func (t *CloseWaitTracker) key(s *Socket) closeWaitKey {
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

// Observe records a reading taken at now. It returns, parallel to sockets,
// when each CLOSE_WAIT socket was first seen (unix nanoseconds; 0 for other
// sockets and for those beyond the cap). complete says whether the reading
// listed every socket: only a complete one lets the tracker forget.
func (t *CloseWaitTracker) Observe(sockets []Socket, now time.Time, complete bool, since []int64) []int64 {
	since = since[:0]
	t.mu.Lock()
	defer t.mu.Unlock()
	t.generation++
	t.untracked = 0
	nowNanos := now.UnixNano()
	for i := range sockets {
		s := &sockets[i]
		if s.State != StateCloseWait || s.Inode == 0 {
			since = append(since, 0)
			continue
		}
		k := t.key(s)
		e, ok := t.first[k]
		if !ok {
			if len(t.first) >= t.maxTracked {
				t.untracked++
				since = append(since, 0)
				continue
			}
			e.since = nowNanos
		}
		e.generation = t.generation
		t.first[k] = e
		since = append(since, e.since)
	}
	if complete {
		for k, e := range t.first {
			if e.generation != t.generation {
				delete(t.first, k)
			}
		}
	}
	return since
}

// Tracked returns how many sockets are tracked, and how many CLOSE_WAIT
// sockets of the last reading were left out by the cap.
func (t *CloseWaitTracker) Tracked() (tracked, untracked int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.first), t.untracked
}

// closeWaitAge summarises the ages of a group of CLOSE_WAIT sockets.
type closeWaitAge struct {
	count  float64 // CLOSE_WAIT sockets in the group, tracked or not
	oldest float64 // seconds; the oldest tracked socket's age
	stuck  float64 // tracked sockets older than the stuck-after threshold
	known  bool    // whether any socket of the group is tracked
}

func (a *closeWaitAge) add(since, now int64, stuckAfter time.Duration) {
	a.count++
	if since == 0 {
		return
	}
	age := time.Duration(now - since)
	a.known = true
	a.oldest = max(a.oldest, age.Seconds())
	if age > stuckAfter {
		a.stuck++
	}
}

func (a *closeWaitAge) merge(b closeWaitAge) {
	a.count += b.count
	a.stuck += b.stuck
	if b.known {
		a.known = true
		a.oldest = max(a.oldest, b.oldest)
	}
}

// emitBoundedAges sends the oldest age and the stuck count of each group,
// keeping the maxSeries groups with the most CLOSE_WAIT sockets and folding
// the rest into one group whose labels read "other". Groups with no tracked
// socket have no age and are left out. It returns how many groups were
// folded.
func emitBoundedAges[K comparable](ch chan<- prometheus.Metric, oldest, stuck *prometheus.Desc, ages map[K]*closeWaitAge, maxSeries int, labels func(K) []string) int {
	type group struct {
		labels []string
		age    *closeWaitAge
	}
	groups := make([]group, 0, len(ages))
	for k, a := range ages {
		groups = append(groups, group{labels(k), a})
	}
	slices.SortFunc(groups, func(a, b group) int {
		if c := cmp.Compare(b.age.count, a.age.count); c != 0 {
			return c
		}
		return slices.Compare(a.labels, b.labels)
	})
	emit := func(labels []string, a *closeWaitAge) {
		if !a.known {
			return
		}
		ch <- prometheus.MustNewConstMetric(oldest, prometheus.GaugeValue, a.oldest, labels...)
		ch <- prometheus.MustNewConstMetric(stuck, prometheus.GaugeValue, a.stuck, labels...)
	}
	var other closeWaitAge
	folded := 0
	for i, g := range groups {
		if i < maxSeries {
			emit(g.labels, g.age)
			continue
		}
		folded++
		other.merge(*g.age)
	}
	if folded > 0 {
		others := make([]string, len(groups[0].labels))
		for i := range others {
			others[i] = otherLabel
		}
		emit(others, &other)
	}
	return folded
}
