package snapshot

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

func cwSocket(inode uint64, remotePort uint16, st tables.State) tables.Socket {
	return tables.Socket{Local: ap("10.0.0.5:40000"), Remote: netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), remotePort), State: st, Inode: inode, Family: tables.IPv4}
}

// age is what the tracker said of one socket.
type age struct {
	d   time.Duration
	src AgeSource
}

// reading runs one reading of the tracker over socks at now and returns
// each socket's age (zero for sockets not in CLOSE_WAIT).
func reading(tr *CloseWaitTracker, socks []tables.Socket, now time.Time, complete bool) []age {
	tr.clock = func() time.Time { return now }
	out := make([]age, len(socks))
	tr.begin()
	for i := range socks {
		if socks[i].State == tables.StateCloseWait {
			in := SockInfo{Dir: Outbound}
			tr.observe(&socks[i], &in, now)
			out[i].d, out[i].src = in.Age, in.AgeSource
		}
	}
	tr.end(complete)
	return out
}

func seen(d time.Duration) age   { return age{d, AgeFirstSeen} }
func kernel(d time.Duration) age { return age{d, AgeKernel} }

// withAckAge gives s the kernel's time since its last ACK.
func withAckAge(s tables.Socket, ago time.Duration) tables.Socket {
	s.AckAge, s.HasAckAge = uint32(ago/time.Millisecond), true
	return s
}

func TestCloseWaitTrackerAges(t *testing.T) {
	t.Parallel()
	tr := NewCloseWaitTracker(100)
	t0 := time.Unix(1000, 0)
	first := reading(tr, []tables.Socket{cwSocket(1, 9000, tables.StateCloseWait), cwSocket(2, 9000, tables.StateEstablished)}, t0, true)
	if first[0] != seen(0) || first[1] != (age{}) {
		t.Fatalf("first reading: %v", first)
	}
	// A minute later socket 1 keeps its first sighting; socket 2 entered
	// CLOSE_WAIT since and starts now.
	t1 := t0.Add(time.Minute)
	second := reading(tr, []tables.Socket{cwSocket(1, 9000, tables.StateCloseWait), cwSocket(2, 9000, tables.StateCloseWait)}, t1, true)
	if second[0] != seen(time.Minute) || second[1] != seen(0) {
		t.Fatalf("second reading: %v", second)
	}
	// An incomplete reading that misses socket 2 must not forget it.
	t2 := t1.Add(time.Minute)
	reading(tr, []tables.Socket{cwSocket(1, 9000, tables.StateCloseWait)}, t2, false)
	if n, _ := tr.Tracked(); n != 2 {
		t.Fatalf("an incomplete reading forgot sockets: %d tracked", n)
	}
	// Socket 1 leaves CLOSE_WAIT and is forgotten; its inode reused by a new
	// socket toward another port is a new socket.
	t3 := t2.Add(time.Minute)
	third := reading(tr, []tables.Socket{cwSocket(1, 9001, tables.StateCloseWait), cwSocket(2, 9000, tables.StateCloseWait)}, t3, true)
	if third[0] != seen(0) || third[1] != seen(2*time.Minute) {
		t.Fatalf("inode reuse: %v", third)
	}
	if n, _ := tr.Tracked(); n != 2 {
		t.Fatalf("%d tracked, want 2", n)
	}
	if src := tr.Sources(); src != [numAgeSources]int{AgeFirstSeen: 2} {
		t.Fatalf("sources %v, want 2 first-seen", src)
	}
}

// TestCloseWaitTrackerKernelAges: the kernel's clock gives a socket its
// full age at the first reading; when it restarts (a keepalive probe
// answered), the earlier start is kept, so an age never goes backwards.
func TestCloseWaitTrackerKernelAges(t *testing.T) {
	t.Parallel()
	tr := NewCloseWaitTracker(100)
	t0 := time.Unix(1000, 0)
	first := reading(tr, []tables.Socket{
		withAckAge(cwSocket(1, 9000, tables.StateCloseWait), 7*time.Minute),
		cwSocket(2, 9000, tables.StateCloseWait), // another namespace: no kernel age
	}, t0, true)
	if first[0] != kernel(7*time.Minute) || first[1] != seen(0) {
		t.Fatalf("first reading: %v", first)
	}
	if src := tr.Sources(); src != [numAgeSources]int{AgeKernel: 1, AgeFirstSeen: 1} {
		t.Fatalf("sources %v", src)
	}
	// A minute later a keepalive probe was answered 2 s ago: the kernel's
	// clock restarted, the start stays.
	t1 := t0.Add(time.Minute)
	second := reading(tr, []tables.Socket{
		withAckAge(cwSocket(1, 9000, tables.StateCloseWait), 2*time.Second),
		withAckAge(cwSocket(2, 9000, tables.StateCloseWait), 30*time.Second),
	}, t1, true)
	if second[0] != kernel(8*time.Minute) {
		t.Fatalf("socket 1 went backwards: %v", second[0])
	}
	// Socket 2's first sighting (a minute ago) beats the kernel's 30 s.
	if second[1] != seen(time.Minute) {
		t.Fatalf("socket 2: %v, want its first sighting", second[1])
	}
	// Over the cap, a kernel age still counts; without one, no age.
	small := NewCloseWaitTracker(1)
	got := reading(small, []tables.Socket{
		cwSocket(1, 9000, tables.StateCloseWait),
		withAckAge(cwSocket(2, 9000, tables.StateCloseWait), time.Hour),
		cwSocket(3, 9000, tables.StateCloseWait),
	}, t0, true)
	if got[1] != kernel(time.Hour) || got[2] != (age{}) {
		t.Fatalf("over the cap: %v", got)
	}
	if src := small.Sources(); src != [numAgeSources]int{AgeFirstSeen: 1, AgeKernel: 1, AgeNone: 1} {
		t.Fatalf("sources over the cap %v", src)
	}
}

func TestCloseWaitTrackerCap(t *testing.T) {
	t.Parallel()
	tr := NewCloseWaitTracker(3)
	var socks []tables.Socket
	for i := range 5 {
		socks = append(socks, cwSocket(uint64(i+1), 9000, tables.StateCloseWait))
	}
	ages := reading(tr, socks, time.Unix(1, 0), true)
	tracked, untracked := tr.Tracked()
	if tracked != 3 || untracked != 2 || ages[3].src != AgeNone || ages[4].src != AgeNone {
		t.Fatalf("tracked %d, untracked %d, ages %v", tracked, untracked, ages)
	}
}

// TestSocketRecordMemory measures what a tracked CLOSE_WAIT socket costs,
// its age and its route in one record, the figure the tracker's
// documentation and docs/performance.md state.
func TestSocketRecordMemory(t *testing.T) {
	const n = 100000
	socks := make([]tables.Socket, n)
	for i := range socks {
		socks[i] = cwSocket(uint64(i+1), uint16(1+i%60000), tables.StateCloseWait)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := NewCloseWaitTracker(n)
	tr.begin()
	for i := range socks {
		in := SockInfo{Dir: Outbound}
		tr.observe(&socks[i], &in, time.Unix(1, 0))
		if !in.routed {
			t.Fatal("an outbound CLOSE_WAIT socket's route was not kept as it was aged")
		}
	}
	tr.end(true)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSocket := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
	t.Logf("%.0f bytes per tracked CLOSE_WAIT socket (age and route)", perSocket)
	tracked, _ := tr.Tracked()
	routes, _ := tr.Remembered()
	if tracked != n || routes != n || tr.records.len() != n {
		t.Fatalf("%d tracked, %d routes, %d records; want %d of each", tracked, routes, tr.records.len(), n)
	}
	if perSocket > 120 {
		t.Errorf("%.0f bytes per tracked socket, the target is at most 120 (the documentation says 63 to 75)", perSocket)
	}
	runtime.KeepAlive(tr)
	runtime.KeepAlive(socks)
}

// agingTables is a source of CLOSE_WAIT sockets whose kernel age is known
// only to a dump that asks for it, or to a lookup: as netlink.
type agingTables struct {
	socks      []tables.Socket
	inDump     bool
	dumps      []bool // per reading: were the ages dumped
	looked     int    // sockets looked up
	ackAgeMs   uint32
	lookupFail bool
}

func (a *agingTables) Stream(_ context.Context, fn func(*tables.Socket)) error {
	a.dumps = append(a.dumps, a.inDump)
	for _, s := range a.socks {
		if a.inDump {
			s.AckAge, s.HasAckAge = a.ackAgeMs, true
		}
		fn(&s)
	}
	return nil
}

func (a *agingTables) SetAgesInDump(on bool) { a.inDump = on }

func (a *agingTables) QueryAges(_ context.Context, socks []*tables.Socket) error {
	if a.lookupFail {
		return errors.New("lookups refused")
	}
	for _, s := range socks {
		s.AckAge, s.HasAckAge = a.ackAgeMs, true
		a.looked++
	}
	return nil
}

// TestReaderKernelAgeModes: the first reading dumps every CLOSE_WAIT
// socket's kernel age; later ones look up only the sockets the tracker
// does not know; when more are new than can be set aside, or lookups
// fail, the next reading dumps the ages again.
func TestReaderKernelAgeModes(t *testing.T) {
	t.Parallel()
	src := &agingTables{ackAgeMs: 90_000}
	add := func(n int) {
		for range n {
			src.socks = append(src.socks, cwSocket(uint64(len(src.socks)+1), 9000, tables.StateCloseWait))
		}
	}
	tr := NewCloseWaitTracker(1 << 20)
	r := Reader{Tables: src, Tracker: tr, NeedDumpAges: true}
	read := func() [numAgeSources]int {
		r.Read(context.Background(), Request{})
		return tr.Sources()
	}
	add(3)
	if got := read(); got[AgeKernel] != 3 || !src.dumps[0] || src.looked != 0 {
		t.Fatalf("first reading: sources %v, dumped %v, looked up %d; want 3 kernel ages from the dump", got, src.dumps, src.looked)
	}
	add(2)
	if got := read(); got[AgeKernel] != 5 || src.dumps[1] || src.looked != 2 {
		t.Fatalf("second reading: sources %v, dumped %v, looked up %d; want the 2 new ones looked up", got, src.dumps, src.looked)
	}
	// More new sockets than can be set aside: those left over have no age
	// this time and are not remembered; the next reading dumps.
	add(maxDeferred + 10)
	got := read()
	if got[AgeNone] != 10 || got[AgeKernel] != maxDeferred+5 || !r.NeedDumpAges {
		t.Fatalf("overflow: sources %v, next dumps %v; want 10 without an age and a dump next", got, r.NeedDumpAges)
	}
	if got := read(); got[AgeKernel] != maxDeferred+15 || !src.dumps[3] {
		t.Fatalf("after the overflow: sources %v, dumped %v", got, src.dumps)
	}
	// Failing lookups: first-seen ages, and the next reading dumps.
	src.lookupFail = true
	add(1)
	if got := read(); got[AgeFirstSeen] != 1 || !r.NeedDumpAges {
		t.Fatalf("failed lookups: sources %v, next dumps %v", got, r.NeedDumpAges)
	}
}

// TestReaderKernelAgesPastTheBound: with more CLOSE_WAIT sockets than the
// tracker may track, the ones left out keep their kernel age at every
// reading (every reading dumps the ages), not every other one.
func TestReaderKernelAgesPastTheBound(t *testing.T) {
	t.Parallel()
	src := &agingTables{ackAgeMs: 90_000}
	for i := range maxDeferred + 100 {
		src.socks = append(src.socks, cwSocket(uint64(i+1), 9000, tables.StateCloseWait))
	}
	tr := NewCloseWaitTracker(50)
	r := Reader{Tables: src, Tracker: tr, NeedDumpAges: true}
	for i := range 4 {
		r.Read(context.Background(), Request{})
		if got := tr.Sources(); got[AgeKernel] != len(src.socks) || !src.dumps[i] {
			t.Fatalf("reading %d: sources %v, dumped %v, looked up %d; want every socket's kernel age, dumped", i, got, src.dumps, src.looked)
		}
	}
	if src.looked != 0 {
		t.Errorf("%d sockets looked up one by one; the dumps have every age", src.looked)
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
