package snapshot

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// TestHeldRoutesBoundAndForget: past the cap a new route is not remembered
// (and counted as left out); a complete reading forgets what it neither
// listed nor found held, an incomplete one forgets nothing; a route's
// death dates from CLOSE_WAIT, or from when it was first found held.
func TestHeldRoutesBoundAndForget(t *testing.T) {
	h := NewCloseWaitTracker(2)
	a, b, c := cwSocket(1, 9000, tables.StateCloseWait), cwSocket(2, 9000, tables.StateEstablished), cwSocket(3, 9000, tables.StateCloseWait)
	cw := SockInfo{Dir: Outbound, Age: 10 * time.Second, AgeSource: AgeKernel}
	est := SockInfo{Dir: Outbound}
	t0 := time.Unix(1000, 0)
	h.begin()
	h.see(&a, &cw, t0)
	h.see(&b, &est, t0)
	h.see(&c, &cw, t0)
	h.end(true)
	if n, full := h.Remembered(); n != 2 || full != 1 {
		t.Fatalf("remembered %d, left out %d; want 2 and 1", n, full)
	}
	// Next reading: a is dropped by the kernel and found held; b is not
	// seen at all, and the reading is incomplete: b stays.
	t1 := t0.Add(time.Minute)
	h.begin()
	e, ok := h.held(1, t1)
	if !ok || e.source != AgeKernel || t1.UnixNano()-e.since != int64(70*time.Second) || h.remote(&e) != a.Remote || h.local(&e) != a.Local {
		t.Errorf("held a: %+v %v; want a's route, dead for 70 s by the kernel's clock", e, ok)
	}
	h.end(false)
	if n, _ := h.Remembered(); n != 2 {
		t.Errorf("an incomplete reading forgot: %d remembered", n)
	}
	// A complete reading that finds b held: dated from then; a, unseen, goes.
	h.begin()
	e, ok = h.held(2, t1)
	if !ok || e.source != AgeFirstSeen || e.since != t1.UnixNano() {
		t.Errorf("held b: %+v %v; want first seen now", e, ok)
	}
	h.end(true)
	if _, ok := h.records.get(1); ok {
		t.Error("a complete reading kept a socket it neither listed nor found held")
	}
	if _, ok := h.held(3, t1); ok {
		t.Error("c was never remembered, yet has a route")
	}
}

// TestOneRecordPerSocket: a CLOSE_WAIT socket's age and route share one
// record; when the kernel drops the socket while it is held, its age goes
// on from CLOSE_WAIT and it no longer counts as a tracked CLOSE_WAIT
// socket; an inbound CLOSE_WAIT socket is aged but its route not kept; the
// cap bounds the records, ages and routes together.
func TestOneRecordPerSocket(t *testing.T) {
	t.Parallel()
	tr := NewCloseWaitTracker(3)
	t0 := time.Unix(1000, 0)
	tr.clock = func() time.Time { return t0 }
	out := withAckAge(cwSocket(1, 9000, tables.StateCloseWait), 5*time.Second)
	inb := cwSocket(2, 9000, tables.StateCloseWait)
	v6 := cwSocket(3, 9000, tables.StateCloseWait)
	v6.Local, v6.Remote, v6.Family = ap("[::ffff:10.0.0.5]:40001"), ap("[2001:db8::7]:443"), tables.IPv6
	pool := cwSocket(4, 9000, tables.StateEstablished)
	over := cwSocket(5, 9000, tables.StateCloseWait)

	tr.begin()
	inOut, inIn, inV6, inOver := SockInfo{Dir: Outbound}, SockInfo{Dir: Inbound}, SockInfo{Dir: Outbound}, SockInfo{Dir: Outbound}
	tr.observe(&out, &inOut, t0)
	tr.observe(&inb, &inIn, t0)
	tr.observe(&v6, &inV6, t0)
	tr.see(&pool, &SockInfo{Dir: Outbound}, t0) // full: not remembered
	tr.observe(&over, &inOver, t0)              // full: no age
	tr.end(true)
	if !inOut.routed || inIn.routed || !inV6.routed || inOver.routed {
		t.Errorf("routed: outbound %v, inbound %v, v6 %v, over the cap %v; want true, false, true, false", inOut.routed, inIn.routed, inV6.routed, inOver.routed)
	}
	if inOut.AgeSource != AgeKernel || inOut.Age != 5*time.Second || inOver.AgeSource != AgeNone {
		t.Errorf("ages: %v %v, over the cap %v", inOut.Age, inOut.AgeSource, inOver.AgeSource)
	}
	tracked, untracked := tr.Tracked()
	routes, full := tr.Remembered()
	if tr.records.len() != 3 || tracked != 3 || untracked != 1 || routes != 2 || full != 1 {
		t.Fatalf("%d records, %d tracked (%d left out), %d routes (%d left out); want 3, 3 (1), 2 (1)", tr.records.len(), tracked, untracked, routes, full)
	}

	// A minute later the outbound and the IPv6 sockets are held; the
	// inbound one too, but its route was never kept.
	t1 := t0.Add(time.Minute)
	tr.begin()
	e, ok := tr.held(1, t1)
	if !ok || tr.local(&e) != out.Local || tr.remote(&e) != out.Remote || e.source != AgeKernel || time.Duration(t1.UnixNano()-e.since) != 65*time.Second {
		t.Errorf("held outbound: %+v %v; want its route, 65 s dead by the kernel's clock", e, ok)
	}
	e, ok = tr.held(3, t1)
	if !ok || tr.local(&e) != v6.Local || tr.remote(&e) != v6.Remote || e.family != tables.IPv6 || e.source != AgeFirstSeen || time.Duration(t1.UnixNano()-e.since) != time.Minute {
		t.Errorf("held IPv6: %+v %v (%v → %v); want its route as listed, a minute dead", e, ok, tr.local(&e), tr.remote(&e))
	}
	if _, ok := tr.held(2, t1); ok {
		t.Error("an inbound socket's route was kept")
	}
	tr.end(true)
	tracked, _ = tr.Tracked()
	routes, _ = tr.Remembered()
	if tr.records.len() != 2 || tracked != 0 || routes != 2 {
		t.Errorf("after the resets: %d records, %d tracked, %d routes; want 2, 0, 2", tr.records.len(), tracked, routes)
	}

	// The inode of a held socket reused by a new socket: a new record.
	tr.begin()
	reused := cwSocket(1, 9001, tables.StateCloseWait)
	in := SockInfo{Dir: Outbound}
	tr.observe(&reused, &in, t1)
	tr.end(true)
	if e, _ := tr.records.get(1); in.AgeSource != AgeFirstSeen || in.Age != 0 || tr.remote(&e) != reused.Remote {
		t.Errorf("reused inode: age %v %v, record %v; want a new socket", in.Age, in.AgeSource, tr.remote(&e))
	}
	if _, ok := tr.records.get(3); ok {
		t.Error("a complete reading kept a socket it neither listed nor found held")
	}
}

func TestRecordAddresses(t *testing.T) {
	t.Parallel()
	tr := NewCloseWaitTracker(10)
	for _, c := range []struct{ local, remote string }{
		{"10.0.0.5:40000", "10.1.2.3:9000"},
		{"[::ffff:10.0.0.5]:40000", "[::ffff:10.1.2.3]:9000"},
		{"[2001:db8::5]:40000", "[2001:db8::1:7]:443"},
		{"0.0.0.0:0", "[::]:0"},
		{"10.0.0.5:40001", "[::ffff:10.1.2.3]:9000"},
	} {
		s := tables.Socket{Local: netip.MustParseAddrPort(c.local), Remote: netip.MustParseAddrPort(c.remote), Inode: 1}
		e, ok := tr.newRecord(&s)
		if !ok || tr.local(&e) != s.Local || tr.remote(&e) != s.Remote || !tr.sameSocket(&e, &s) {
			t.Errorf("%s → %s: recorded as %v → %v", s.Local, s.Remote, tr.local(&e), tr.remote(&e))
		}
		for _, other := range []tables.Socket{
			{Local: s.Local, Remote: netip.AddrPortFrom(s.Remote.Addr(), s.Remote.Port()+1)},
			{Local: netip.AddrPortFrom(netip.MustParseAddr("10.9.9.9"), s.Local.Port()), Remote: s.Remote},
		} {
			if tr.sameSocket(&e, &other) {
				t.Errorf("%s → %s: taken for %s → %s", s.Local, s.Remote, other.Local, other.Remote)
			}
		}
	}
	if len(tr.locals) != 4 {
		t.Errorf("%d local addresses kept, want the 4 distinct ones: %v", len(tr.locals), tr.locals)
	}
}

// TestRecordLocalsBounded: the local addresses records point to are
// forgotten with the records; past maxLocals distinct ones a socket is not
// recorded, and counted as left out.
func TestRecordLocalsBounded(t *testing.T) {
	t.Parallel()
	tr := NewCloseWaitTracker(1 << 20)
	t0 := time.Unix(1000, 0)
	sock := func(i int) tables.Socket {
		s := cwSocket(uint64(i+1), 9000, tables.StateCloseWait)
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)}), 40000)
		return s
	}
	tr.begin()
	for i := range 1000 {
		s := sock(i)
		tr.observe(&s, &SockInfo{Dir: Outbound}, t0)
	}
	tr.end(true)
	// Only the last 10 stay: the other 990 addresses are forgotten, and
	// the records still name theirs.
	tr.begin()
	for i := 990; i < 1000; i++ {
		s := sock(i)
		in := SockInfo{Dir: Outbound}
		tr.observe(&s, &in, t0.Add(time.Second))
		if in.Age != time.Second {
			t.Fatalf("socket %d: age %v after the addresses were renumbered, want 1s", i, in.Age)
		}
	}
	tr.end(true)
	if len(tr.locals) != 10 || len(tr.localIDs) != 10 {
		t.Fatalf("%d local addresses kept, want 10", len(tr.locals))
	}
	tr.records.each(func(ino uint64, e *socketRecord) bool {
		if want := sock(int(ino) - 1).Local; tr.local(e) != want {
			t.Errorf("inode %d: local %v, want %v", ino, tr.local(e), want)
		}
		return true
	})
	// Full: a new address finds no room.
	for i := len(tr.locals); i < maxLocals; i++ {
		a := netip.AddrFrom4([4]byte{10, 4, byte(i >> 8), byte(i)})
		tr.localIDs[a] = uint16(len(tr.locals))
		tr.locals = append(tr.locals, a)
	}
	tr.begin()
	s := sock(2000)
	s.Local = netip.MustParseAddrPort("10.5.0.1:40000")
	in := SockInfo{Dir: Outbound}
	tr.observe(&s, &in, t0)
	tr.end(false)
	if _, untracked := tr.Tracked(); untracked != 1 || in.AgeSource != AgeNone || in.routed {
		t.Errorf("past %d local addresses: untracked %d, age source %v, routed %v; want 1, none, false", maxLocals, untracked, in.AgeSource, in.routed)
	}
}
