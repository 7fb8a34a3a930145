package collector

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
)

func cwSocket(inode uint64, remotePort uint16, st State) Socket {
	return Socket{Local: ap("10.0.0.5:40000"), Remote: netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), remotePort), State: st, Inode: inode, Family: IPv4}
}

func TestCloseWaitTrackerAges(t *testing.T) {
	t.Parallel()
	tr := NewCloseWaitTracker(100)
	t0 := time.Unix(1000, 0)
	first := tr.Observe([]Socket{cwSocket(1, 9000, StateCloseWait), cwSocket(2, 9000, StateEstablished)}, t0, true, nil)
	if first[0] != t0.UnixNano() || first[1] != 0 {
		t.Fatalf("first reading: %v", first)
	}
	// A minute later socket 1 keeps its first sighting; socket 2 entered
	// CLOSE_WAIT since and starts now.
	t1 := t0.Add(time.Minute)
	second := tr.Observe([]Socket{cwSocket(1, 9000, StateCloseWait), cwSocket(2, 9000, StateCloseWait)}, t1, true, first)
	if second[0] != t0.UnixNano() || second[1] != t1.UnixNano() {
		t.Fatalf("second reading: %v", second)
	}
	// An incomplete reading that misses socket 2 must not forget it.
	t2 := t1.Add(time.Minute)
	tr.Observe([]Socket{cwSocket(1, 9000, StateCloseWait)}, t2, false, nil)
	if n, _ := tr.Tracked(); n != 2 {
		t.Fatalf("an incomplete reading forgot sockets: %d tracked", n)
	}
	// Socket 1 leaves CLOSE_WAIT and is forgotten; its inode reused by a new
	// socket toward another port is a new socket.
	t3 := t2.Add(time.Minute)
	third := tr.Observe([]Socket{cwSocket(1, 9001, StateCloseWait), cwSocket(2, 9000, StateCloseWait)}, t3, true, nil)
	if third[0] != t3.UnixNano() || third[1] != t1.UnixNano() {
		t.Fatalf("inode reuse: %v", third)
	}
	if n, _ := tr.Tracked(); n != 2 {
		t.Fatalf("%d tracked, want 2", n)
	}
}

func TestCloseWaitTrackerCap(t *testing.T) {
	t.Parallel()
	tr := NewCloseWaitTracker(3)
	var socks []Socket
	for i := range 5 {
		socks = append(socks, cwSocket(uint64(i+1), 9000, StateCloseWait))
	}
	since := tr.Observe(socks, time.Unix(1, 0), true, nil)
	tracked, untracked := tr.Tracked()
	if tracked != 3 || untracked != 2 || since[3] != 0 || since[4] != 0 {
		t.Fatalf("tracked %d, untracked %d, since %v", tracked, untracked, since)
	}
}

func TestCloseWaitAgeSummary(t *testing.T) {
	t.Parallel()
	now := time.Unix(10000, 0).UnixNano()
	var a closeWaitAge
	a.add(now-int64(10*time.Minute), now, 5*time.Minute)
	a.add(now-int64(time.Minute), now, 5*time.Minute)
	a.add(0, now, 5*time.Minute) // untracked: counted, no age
	if a.count != 3 || a.stuck != 1 || a.oldest != 600 || !a.known {
		t.Fatalf("%+v", a)
	}
}

// TestCloseWaitTrackerMemory measures what a tracked socket costs, the
// figure the tracker's documentation states.
func TestCloseWaitTrackerMemory(t *testing.T) {
	const n = 100000
	socks := make([]Socket, n)
	for i := range socks {
		socks[i] = cwSocket(uint64(i+1), uint16(1+i%60000), StateCloseWait)
	}
	since := make([]int64, 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := NewCloseWaitTracker(n)
	tr.Observe(socks, time.Unix(1, 0), true, since)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSocket := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
	t.Logf("%.0f bytes per tracked socket", perSocket)
	if perSocket > 80 {
		t.Errorf("%.0f bytes per tracked socket, the documentation says about 50", perSocket)
	}
	runtime.KeepAlive(tr)
	runtime.KeepAlive(socks)
	runtime.KeepAlive(since)
}
