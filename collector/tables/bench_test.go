package tables

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// Benchmarks of the table parsers on generated tables. They only run with
// -bench; `make bench` runs them with -benchmem and puts the numbers in
// docs/performance.md.

// benchSizes are the table sizes the benchmarks run at, in lines (sockets).
var benchSizes = []int{1_000, 10_000, 100_000, 1_000_000}

// syntheticRoot writes a procfs tree with n synthetic sockets. With
// b.Loop the benchmark body, and so this, runs once per size.
func syntheticRoot(b *testing.B, n int) string {
	root := b.TempDir()
	if err := WriteSyntheticTables(root, n); err != nil {
		b.Fatal(err)
	}
	return root
}

func reportPerSocket(b *testing.B, sockets int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sockets), "ns/socket")
}

// BenchmarkProcfsTables reads generated /proc/net/tcp and tcp6  The
// allocations per read stay the same at every size: none per line.
func BenchmarkProcfsTables(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("lines=%d", n), func(b *testing.B) {
			src := NewProcfsTables(syntheticRoot(b, n))
			got := 0
			count := func(*Socket) { got++ }
			for b.Loop() {
				got = 0
				if err := src.Stream(context.Background(), count); err != nil || got != n {
					b.Fatalf("read %d sockets, err %v", got, err)
				}
			}
			reportPerSocket(b, n)
		})
	}
}

// diagAnswer returns a dump answer as the kernel sends it: n inet_diag
// messages with the generated sockets of one family, in reads of at most
// 32 KiB, the last ending in NLMSG_DONE.
func diagAnswer(n int, family Family, seq uint32) [][]byte {
	ne := binary.NativeEndian
	var reads [][]byte
	cur := make([]byte, 0, recvBufSize)
	const msgLen = nlmsgHdrLen + inetDiagMsgLen + 8 // with an 8-byte attribute
	for i := range n {
		s := SyntheticSocketOf(i, family)
		if len(cur)+msgLen > recvBufSize {
			reads = append(reads, cur)
			cur = make([]byte, 0, recvBufSize)
		}
		cur = appendDiagMsg(cur, seq, s)
	}
	done := make([]byte, nlmsgHdrLen+4)
	ne.PutUint32(done[0:], uint32(len(done)))
	ne.PutUint16(done[4:], unix.NLMSG_DONE)
	ne.PutUint32(done[8:], seq)
	cur = append(cur, done...)
	return append(reads, cur)
}

// appendDiagMsg encodes s as the kernel would, with an INET_DIAG_SHUTDOWN
// attribute as every real message has.
func appendDiagMsg(b []byte, seq uint32, s Socket) []byte {
	ne := binary.NativeEndian
	// Attributes: INET_DIAG_SHUTDOWN (as the kernel always sends it), and
	// for a socket with a kernel age INET_DIAG_INFO, a struct tcp_info of
	// the size kernel 6.x sends.
	attrs := make([]byte, 8)
	ne.PutUint16(attrs[0:], 5) // nla_len
	ne.PutUint16(attrs[2:], 8) // INET_DIAG_SHUTDOWN
	if s.HasAckAge {
		info := make([]byte, rtaHdrLen+232)
		ne.PutUint16(info[0:], uint16(len(info)))
		ne.PutUint16(info[2:], inetDiagInfo)
		info[rtaHdrLen] = uint8(s.State)
		ne.PutUint32(info[rtaHdrLen+lastAckRecvOff:], s.AckAge)
		attrs = append(attrs, info...)
	}
	msgLen := nlmsgHdrLen + inetDiagMsgLen + len(attrs)
	m := make([]byte, nlmsgHdrLen+inetDiagMsgLen, msgLen)
	ne.PutUint32(m[0:], uint32(msgLen))
	ne.PutUint16(m[4:], sockDiagByFamily)
	ne.PutUint16(m[6:], unix.NLM_F_MULTI)
	ne.PutUint32(m[8:], seq)
	d := m[nlmsgHdrLen:]
	d[0] = unix.AF_INET
	if s.Family == IPv6 {
		d[0] = unix.AF_INET6
	}
	d[1] = uint8(s.State)
	binary.BigEndian.PutUint16(d[4:], s.Local.Port())
	binary.BigEndian.PutUint16(d[6:], s.Remote.Port())
	copy(d[8:24], s.Local.Addr().AsSlice())
	copy(d[24:40], s.Remote.Addr().AsSlice())
	ne.PutUint32(d[56:], uint32(s.RxQueue))
	tx := uint32(s.TxQueue)
	if s.State == StateListen {
		tx = 4096 // the backlog limit, as sock_diag reports it
	}
	ne.PutUint32(d[60:], tx)
	ne.PutUint32(d[64:], s.UID)
	ne.PutUint32(d[68:], uint32(s.Inode))
	return append(b, append(m, attrs...)...)
}

// BenchmarkNetlinkParse parses generated sock_diag answers: the part of a
// netlink reading done in the exporter, without the kernel's.
func BenchmarkNetlinkParse(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			reads := diagAnswer(n, IPv4, 7)
			got := 0
			// One stream per dump, as a reading has: the sockets are
			// counted, not kept.
			ds := diagStream{family: IPv4, name: "bench dump", fn: func(*Socket) { got++ }}
			for b.Loop() {
				got = 0
				ds.listenerUID, ds.connected, ds.count, ds.bad = nil, false, 0, nil
				for _, r := range reads {
					if _, err := ds.messages(r, 7); err != nil {
						b.Fatal(err)
					}
				}
			}
			if got != n {
				b.Fatalf("parsed %d sockets, want %d", got, n)
			}
			reportPerSocket(b, n)
		})
	}
}

// BenchmarkNetlinkDumpHost dumps this host's real TCP sockets through
// sock_diag, without and with INET_DIAG_SKMEMINFO (the memory collector's
// request: 40 more bytes per full socket from the kernel), and with it
// asked of the listeners alone (the accept queue collector's, for their
// drops: one more dump, of the listening table only), so that the
// cost of asking for each socket's memory is measured where it is paid,
// in the kernel and in the parse. The host's sockets are whatever it
// holds: the per-socket figures are what compare.
func BenchmarkNetlinkDumpHost(b *testing.B) {
	// meminfo=listeners is the default exporter's: the listeners dumped
	// apart with SK_MEMINFO (their drops), the rest without it.
	for _, memInfo := range []string{"false", "true", "listeners"} {
		b.Run("meminfo="+memInfo, func(b *testing.B) {
			src := NewNetlinkTables()
			src.MemInfo = memInfo == "true"
			src.ListenMemInfo = memInfo == "listeners"
			got := 0
			count := func(*Socket) { got++ }
			for b.Loop() {
				got = 0
				if err := src.Stream(context.Background(), count); err != nil {
					b.Skipf("sock_diag: %v", err)
				}
			}
			reportPerSocket(b, got)
		})
	}
}
