// Package nlcompare measures ways of reading the kernel's TCP sockets
// through netlink sock_diag, to choose the one collector/tables/netlink.go uses:
// our own request on golang.org/x/sys/unix, github.com/mdlayher/netlink and
// github.com/vishvananda/netlink. It is a module of its own so that the
// libraries it weighs never enter the exporter's go.mod.
//
//	cd bench/nlcompare && go test -bench . -benchmem
//
// Each benchmark dumps every TCP socket of both families (the exporter's
// request: all states, no extensions) and converts it to a
// tables.Socket; the test checks that every way yields the same sockets.
package nlcompare

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

var conns = flag.Int("conns", 8000, "loopback connections to hold during the benchmarks (two sockets each)")

func TestMain(m *testing.M) {
	flag.Parse()
	release, err := holdConnections(*conns)
	if err != nil {
		fmt.Fprintln(os.Stderr, "holding connections:", err)
		os.Exit(1)
	}
	code := m.Run()
	release()
	os.Exit(code)
}

// holdConnections opens n connections to a listener on 127.0.0.3.
func holdConnections(n int) (func(), error) {
	l, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		return nil, err
	}
	listener = l.Addr().(*net.TCPAddr).AddrPort()
	var held []io.Closer
	accepted := make(chan net.Conn, 256)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	for range n {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return nil, err
		}
		held = append(held, c, <-accepted)
	}
	return func() {
		l.Close()
		for _, c := range held {
			c.Close()
		}
	}, nil
}

const (
	sockDiagByFamily = 20
	allStates        = 0xffffffff
)

// request is struct inet_diag_req_v2 for TCP, every state, no extensions.
func request(family uint8) []byte {
	b := make([]byte, 56)
	b[0] = family
	b[1] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:], allStates)
	return b
}

// toSocket reads a struct inet_diag_msg the way collector/tables/netlink.go does.
func toSocket(m []byte, family tables.Family) tables.Socket {
	ne := binary.NativeEndian
	s := tables.Socket{Family: family, State: tables.State(m[1])}
	sport, dport := binary.BigEndian.Uint16(m[4:]), binary.BigEndian.Uint16(m[6:])
	if family == tables.IPv4 {
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m[8:12])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m[24:28])), dport)
	} else {
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(m[8:24])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(m[24:40])), dport)
	}
	s.RxQueue, s.TxQueue = uint64(ne.Uint32(m[56:])), uint64(ne.Uint32(m[60:]))
	if s.State == tables.StateListen {
		s.TxQueue = 0
	}
	s.UID, s.Inode = ne.Uint32(m[64:]), uint64(ne.Uint32(m[68:]))
	return s
}

// nlt reads as the exporter does in steady state, the same request as the
// other ways: one dump of every state per family, no extension.
var nlt = tables.NewNetlinkTables()

// ours is collector/tables/netlink.go: our request on golang.org/x/sys/unix, read in
// place from one reused buffer.
func ours(dst []tables.Socket) ([]tables.Socket, error) {
	return tables.AppendSockets(context.Background(), nlt, dst)
}

var families = []uint8{unix.AF_INET, unix.AF_INET6}

// ways are the readings compared; each appends every socket to dst.
var ways = []struct {
	name string
	read func(dst []tables.Socket) ([]tables.Socket, error)
}{
	{"unix", ours},
	{"mdlayher-Execute", mdlayherExecute},
	{"mdlayher-ReceiveIter-pooled", mdlayherIter},
	{"vishvananda-SocketDiagTCP", vishvanandaSocketDiagTCP},
	{"vishvananda-nl-ExecuteIter", vishvanandaExecuteIter},
}

// mdlayherExecute is how node_exporter's tcpstat collector reads: one Dial
// per scrape, Execute collects every message.
func mdlayherExecute(dst []tables.Socket) ([]tables.Socket, error) {
	c, err := netlink.Dial(unix.NETLINK_INET_DIAG, nil)
	if err != nil {
		return dst, err
	}
	defer c.Close()
	for _, f := range families {
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: sockDiagByFamily, Flags: netlink.Request | netlink.Dump},
			Data:   request(f),
		})
		if err != nil {
			return dst, err
		}
		for _, m := range msgs {
			dst = append(dst, toSocket(m.Data, tables.FamilyOf(f)))
		}
	}
	return dst, nil
}

var pooled *netlink.Conn

// mdlayherIter is the library at its leanest: a kept Conn with a fixed,
// reused receive buffer, read message by message.
func mdlayherIter(dst []tables.Socket) ([]tables.Socket, error) {
	if pooled == nil {
		c, err := netlink.Dial(unix.NETLINK_INET_DIAG, &netlink.Config{MessageBufferSize: 32 << 10})
		if err != nil {
			return dst, err
		}
		pooled = c
	}
	for _, f := range families {
		if _, err := pooled.Send(netlink.Message{
			Header: netlink.Header{Type: sockDiagByFamily, Flags: netlink.Request | netlink.Dump},
			Data:   request(f),
		}); err != nil {
			return dst, err
		}
		for m, err := range pooled.ReceiveIter() {
			if err != nil {
				return dst, err
			}
			dst = append(dst, toSocket(m.Data, tables.FamilyOf(f)))
		}
	}
	return dst, nil
}

// vishvanandaSocketDiagTCP is the library's own call; it always asks the
// kernel for tcp_info and Vegas info too, and returns a *Socket each.
func vishvanandaSocketDiagTCP(dst []tables.Socket) ([]tables.Socket, error) {
	for _, f := range families {
		socks, err := vnl.SocketDiagTCP(f)
		if err != nil {
			return dst, err
		}
		for _, s := range socks {
			var sk tables.Socket
			sk.Family = tables.FamilyOf(f)
			sk.State = tables.State(s.State)
			src, _ := netip.AddrFromSlice(s.ID.Source)
			dstIP, _ := netip.AddrFromSlice(s.ID.Destination)
			if f == unix.AF_INET {
				src, dstIP = src.Unmap(), dstIP.Unmap()
			}
			sk.Local = netip.AddrPortFrom(src, s.ID.SourcePort)
			sk.Remote = netip.AddrPortFrom(dstIP, s.ID.DestinationPort)
			sk.RxQueue, sk.TxQueue = uint64(s.RQueue), uint64(s.WQueue)
			if sk.State == tables.StateListen {
				sk.TxQueue = 0
			}
			sk.UID, sk.Inode = s.UID, uint64(s.INode)
			dst = append(dst, sk)
		}
	}
	return dst, nil
}

type rawRequest []byte

func (r rawRequest) Len() int          { return len(r) }
func (r rawRequest) Serialize() []byte { return r }

// vishvanandaExecuteIter uses the library's netlink layer with our request.
func vishvanandaExecuteIter(dst []tables.Socket) ([]tables.Socket, error) {
	for _, f := range families {
		req := nl.NewNetlinkRequest(sockDiagByFamily, unix.NLM_F_DUMP)
		req.AddData(rawRequest(request(f)))
		err := req.ExecuteIter(unix.NETLINK_INET_DIAG, sockDiagByFamily, func(m []byte) bool {
			dst = append(dst, toSocket(m, tables.FamilyOf(f)))
			return true
		})
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// TestSameSockets checks that every way reads the same sockets (those that
// do not change between two readings: the held connections).
// listener is the endpoint every held connection goes to.
var listener netip.AddrPort

func TestSameSockets(t *testing.T) {
	ref, err := ways[0].read(nil)
	if err != nil {
		t.Fatal(err)
	}
	held := func(socks []tables.Socket) []tables.Socket {
		var out []tables.Socket
		for _, s := range socks {
			if (s.Local == listener || s.Remote == listener) && s.State != tables.StateTimeWait {
				out = append(out, s)
			}
		}
		slices.SortFunc(out, func(a, b tables.Socket) int { return int(a.Inode) - int(b.Inode) })
		return out
	}
	want := held(ref)
	if len(want) < 2**conns+1 {
		t.Fatalf("reference read %d held sockets, want at least %d", len(want), 2**conns+1)
	}
	for _, w := range ways[1:] {
		got, err := w.read(nil)
		if err != nil {
			t.Errorf("%s: %v", w.name, err)
			continue
		}
		if g := held(got); !slices.Equal(g, want) {
			t.Errorf("%s: %d held sockets differ from the reference's %d", w.name, len(g), len(want))
		}
	}
}

func BenchmarkDump(b *testing.B) {
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			var buf []tables.Socket
			for b.Loop() {
				var err error
				if buf, err = w.read(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "sockets")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(buf)), "ns/socket")
		})
	}
}
