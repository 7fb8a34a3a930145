package collector

// Benchmarks of the parsers and of a whole scrape on generated tables. They
// only run with -bench; `make bench` runs them with -benchmem and puts the
// numbers in docs/performance.md.

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// benchSizes are the table sizes the benchmarks run at, in lines (sockets).
var benchSizes = []int{1_000, 10_000, 100_000, 1_000_000}

// fakeSocket returns the i-th socket of a generated host with n sockets: 20
// listeners, then a mix of inbound and outbound connections to a few
// upstream ports in realistic states; one in ten is IPv6 (half of those
// IPv4-mapped).
func fakeSocket(i int) Socket {
	if i < 20 {
		return Socket{Local: netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(8000+i)), Remote: netip.AddrPortFrom(netip.IPv4Unspecified(), 0),
			State: StateListen, RxQueue: uint64(i % 3), UID: 1000, Inode: uint64(1_000_000 + i), Family: IPv4}
	}
	local := netip.AddrFrom4([4]byte{10, 0, 0, 5})
	remote := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
	var s Socket
	s.Family = IPv4
	s.UID = 1000
	s.Inode = uint64(1_000_000 + i)
	switch i % 10 {
	case 0, 1, 2: // inbound to a listener
		s.Local = netip.AddrPortFrom(local, uint16(8000+i%20))
		s.Remote = netip.AddrPortFrom(remote, uint16(32768+i%28000))
	default: // outbound to an upstream
		s.Local = netip.AddrPortFrom(local, uint16(32768+i%28000))
		s.Remote = netip.AddrPortFrom(remote, []uint16{9000, 5432, 6379, 443, 80, 11211, 9200}[i%7])
	}
	switch i % 16 {
	case 0, 1:
		s.State, s.Inode, s.UID = StateTimeWait, 0, 0
	case 2:
		s.State, s.RxQueue = StateCloseWait, 1
	case 3:
		s.State, s.TxQueue = StateFinWait2, 0
	default:
		s.State, s.TxQueue = StateEstablished, uint64(i%5)
	}
	if i%10 == 9 {
		s.Family = IPv6
		if i%20 == 9 {
			s.Local = netip.AddrPortFrom(netip.AddrFrom16(local.As16()), s.Local.Port())
			s.Remote = netip.AddrPortFrom(netip.AddrFrom16(remote.As16()), s.Remote.Port())
		} else {
			s.Local = netip.AddrPortFrom(netip.MustParseAddr("2001:db8::5"), s.Local.Port())
			r := netip.MustParseAddr("2001:db8::1:0").As16()
			r[14], r[15] = byte(i>>8), byte(i)
			s.Remote = netip.AddrPortFrom(netip.AddrFrom16(r), s.Remote.Port())
		}
	}
	return s
}

// fakeSocketOf returns fakeSocket(i) as a socket of the given family's
// table: IPv4 addresses are IPv4-mapped in the IPv6 table, and IPv6 ones
// become IPv4 addresses in the IPv4 table.
func fakeSocketOf(i int, family Family) Socket {
	s := fakeSocket(i)
	conv := func(ap netip.AddrPort) netip.AddrPort {
		a := ap.Addr()
		switch {
		case family == IPv6:
			a = netip.AddrFrom16(a.As16())
		case a.Is4In6() || a.Is4():
			a = a.Unmap()
		default:
			b := a.As16()
			a = netip.AddrFrom4([4]byte{10, 2, b[14], b[15]})
		}
		return netip.AddrPortFrom(a, ap.Port())
	}
	s.Family, s.Local, s.Remote = family, conv(s.Local), conv(s.Remote)
	return s
}

// hexAddr prints an address as the kernel does in /proc/net/tcp: each
// 32-bit word in host byte order.
func hexAddr(b []byte, a netip.Addr) []byte {
	raw := a.AsSlice()
	for w := 0; w < len(raw); w += 4 {
		b = fmt.Appendf(b, "%08X", binary.NativeEndian.Uint32(raw[w:]))
	}
	return b
}

// writeTables writes a procfs tree under dir with n sockets in net/tcp and
// net/tcp6, and returns its root.
func writeTables(tb testing.TB, dir string, n int) string {
	tb.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
		tb.Fatal(err)
	}
	// The kernel's default ephemeral range, which holds the generated
	// sockets' client ports: the ephemeral collector counts them.
	if err := os.MkdirAll(filepath.Join(dir, "sys", "net", "ipv4"), 0o755); err != nil {
		tb.Fatal(err)
	}
	for name, text := range map[string]string{"ip_local_port_range": "32768\t60999\n", "ip_local_reserved_ports": "\n"} {
		if err := os.WriteFile(filepath.Join(dir, "sys", "net", "ipv4", name), []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	files := map[Family]*bufio.Writer{}
	for fam, name := range map[Family]string{IPv4: "tcp", IPv6: "tcp6"} {
		f, err := os.Create(filepath.Join(dir, "net", name))
		if err != nil {
			tb.Fatal(err)
		}
		defer f.Close()
		w := bufio.NewWriterSize(f, 1<<20)
		defer w.Flush()
		w.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
		files[fam] = w
	}
	slot := map[Family]int{}
	var line []byte
	for i := range n {
		s := fakeSocket(i)
		line = fmt.Appendf(line[:0], "%4d: ", slot[s.Family])
		slot[s.Family]++
		line = hexAddr(line, s.Local.Addr())
		line = fmt.Appendf(line, ":%04X ", s.Local.Port())
		line = hexAddr(line, s.Remote.Addr())
		line = fmt.Appendf(line, ":%04X %02X %08X:%08X 00:00000000 00000000 %5d        0 %d 1 0000000000000000 20 4 30 10 -1\n",
			s.Remote.Port(), uint8(s.State), s.TxQueue, s.RxQueue, s.UID, s.Inode)
		files[s.Family].Write(line)
	}
	return dir
}

var tableRoots = map[int]string{}

// tableRoot returns a generated tree with n sockets, made once per run of
// the benchmark binary in a temporary folder.
func tableRoot(b *testing.B, n int) string {
	b.Helper()
	if root, ok := tableRoots[n]; ok {
		return root
	}
	dir, err := os.MkdirTemp("", "tcpstate-bench-"+strconv.Itoa(n)+"-")
	if err != nil {
		b.Fatal(err)
	}
	tableRoots[n] = writeTables(b, dir, n)
	return dir
}

// removeTableRoots deletes the generated trees; the last benchmark calls it.
func removeTableRoots() {
	for n, dir := range tableRoots {
		os.RemoveAll(dir)
		delete(tableRoots, n)
	}
}

func reportPerSocket(b *testing.B, sockets int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sockets), "ns/socket")
}

// BenchmarkProcfsTables reads generated /proc/net/tcp and tcp6 tables. The
// allocations per read stay the same at every size: none per line.
func BenchmarkProcfsTables(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("lines=%d", n), func(b *testing.B) {
			src := NewProcfsTables(tableRoot(b, n))
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
		s := fakeSocketOf(i, family)
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

// BenchmarkScrape runs whole scrapes (every collector; the generated tree
// has no processes, so the /proc/PID/fd walk finds no owner) and drains
// their metrics, as an HTTP scrape would before encoding them.
func BenchmarkScrape(b *testing.B) {
	defer removeTableRoots()
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("lines=%d", n), func(b *testing.B) {
			root := tableRoot(b, n)
			e, err := NewExporter(Options{ProcRoot: root, MaxSeries: 1000, RouteStates: []State{StateCloseWait, StateEstablished}, Workers: 2}, Names())
			if err != nil {
				b.Fatal(err)
			}
			ch := make(chan prometheus.Metric, 4096)
			series := 0
			scrape := func() {
				done := make(chan int)
				go func() {
					k := 0
					for range ch {
						k++
					}
					done <- k
				}()
				e.Collect(ch)
				close(ch)
				series = <-done
				ch = make(chan prometheus.Metric, 4096)
			}
			// The first readings size the buffers and maps.
			scrape()
			scrape()
			for b.Loop() {
				scrape()
			}
			b.ReportMetric(float64(series), "series")
			reportPerSocket(b, n)
		})
	}
}
