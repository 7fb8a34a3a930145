package snapshot

import (
	"runtime"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// TestHeldRoutesMemory measures what a remembered route costs, as the
// documentation states it.
func TestHeldRoutesMemory(t *testing.T) {
	const n = 100000
	socks := make([]tables.Socket, n)
	for i := range socks {
		socks[i] = cwSocket(uint64(i+1), uint16(1+i%60000), tables.StateCloseWait)
	}
	in := SockInfo{Dir: Outbound, Age: time.Second, AgeSource: AgeKernel}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := NewHeldRoutes(n)
	h.begin()
	for i := range socks {
		h.see(&socks[i], &in, time.Unix(100, 0))
	}
	h.end(true)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perRoute := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
	t.Logf("%.0f bytes per remembered route", perRoute)
	if remembered, _ := h.Remembered(); remembered != n {
		t.Fatalf("%d routes remembered, want %d", remembered, n)
	}
	if perRoute > 200 {
		t.Errorf("%.0f bytes per remembered route, the documentation says about 130", perRoute)
	}
	runtime.KeepAlive(h)
	runtime.KeepAlive(socks)
}

// TestHeldRoutesBoundAndForget: past Max a new route is not remembered
// (and counted as left out); a complete reading forgets what it neither
// listed nor found held, an incomplete one forgets nothing; a route's
// death dates from CLOSE_WAIT, or from when it was first found held.
func TestHeldRoutesBoundAndForget(t *testing.T) {
	h := NewHeldRoutes(2)
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
	if !ok || e.source != AgeKernel || t1.UnixNano()-e.since != int64(70*time.Second) {
		t.Errorf("held a: %+v %v; want dead for 70 s by the kernel's clock", e, ok)
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
	if _, ok := h.routes[1]; ok {
		t.Error("a complete reading kept a socket it neither listed nor found held")
	}
	if _, ok := h.held(3, t1); ok {
		t.Error("c was never remembered, yet has a route")
	}
}
