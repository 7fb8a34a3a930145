package snapshot

import (
	"runtime"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// BenchmarkTrackedSocket measures the CLOSE_WAIT tracker at 100 000
// outbound CLOSE_WAIT sockets: the heap one record (age and route) costs
// (bytes/socket, the growth of the live heap once every socket is
// recorded), and a reading that ages every socket again (ns/socket).
// `make bench` puts both in docs/performance.md.
func BenchmarkTrackedSocket(b *testing.B) {
	const n = 100_000
	socks := make([]tables.Socket, n)
	for i := range socks {
		socks[i] = cwSocket(uint64(i+1), uint16(1+i%60000), tables.StateCloseWait)
		if i%10 == 9 {
			socks[i] = withAckAge(socks[i], time.Minute)
		}
	}
	taken := time.Unix(1000, 0)
	read := func(tr *CloseWaitTracker) {
		tr.begin()
		for i := range socks {
			in := SockInfo{Dir: Outbound}
			tr.observe(&socks[i], &in, taken)
		}
		tr.end(true)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := NewCloseWaitTracker(n)
	read(tr)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSocket := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
	if tracked, _ := tr.Tracked(); tracked != n {
		b.Fatalf("%d tracked, want %d", tracked, n)
	}
	for b.Loop() {
		read(tr)
	}
	b.ReportMetric(perSocket, "bytes/socket")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/socket")
}
