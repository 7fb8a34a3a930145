package tables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// heldSockets opens sockets on loopback in as many states as can be made
// to stay put, and returns the endpoints of its listeners: every socket it
// made has one of them as its local or remote address and port.
func heldSockets(t *testing.T, network, host string) []netip.AddrPort {
	t.Helper()
	var ports []netip.AddrPort
	keep := func(c interface{ Close() error }) { t.Cleanup(func() { c.Close() }) }
	listen := func() net.Listener {
		l, err := net.Listen(network, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		keep(l)
		ports = append(ports, l.Addr().(*net.TCPAddr).AddrPort())
		return l
	}
	dial := func(l net.Listener) (client, server net.Conn) {
		c, err := net.Dial(network, l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	}

	// ESTABLISHED at both ends, with bytes waiting to be read.
	l := listen()
	for range 3 {
		c, s := dial(l)
		keep(c)
		keep(s)
		if _, err := c.Write([]byte("unread")); err != nil {
			t.Fatal(err)
		}
	}
	// CLOSE_WAIT at the client, FIN_WAIT2 (orphaned, inode 0) at the server.
	for range 2 {
		c, s := dial(l)
		keep(c)
		s.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("read data where EOF was expected")
		}
	}
	// TIME_WAIT at the client, which closes first.
	{
		c, s := dial(l)
		c.Close()
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = s.Read(make([]byte, 1))
		s.Close()
	}
	// SYN_RECV: with TCP_DEFER_ACCEPT the server keeps a request socket
	// until the client sends data, which it does not.
	{
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 30)
			})
			return errors.Join(err, serr)
		}}
		dl, err := lc.Listen(context.Background(), network, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		keep(dl)
		ports = append(ports, dl.Addr().(*net.TCPAddr).AddrPort())
		c, err := net.Dial(network, dl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		keep(c)
	}
	return ports
}

// ours keeps the sockets with one of the endpoints as local or remote
// address and port (IPv4-mapped addresses read as IPv4), sorted.
func ours(socks []Socket, endpoints []netip.AddrPort) []Socket {
	unmap := func(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }
	var out []Socket
	for _, s := range socks {
		if slices.Contains(endpoints, unmap(s.Local)) || slices.Contains(endpoints, unmap(s.Remote)) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Socket) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return out
}

func byFamilyAndState(socks []Socket) map[string]int {
	out := map[string]int{}
	for _, s := range socks {
		out[s.Family.String()+" "+s.State.String()]++
	}
	return out
}

// TestNetlinkMatchesProcfs holds real sockets on loopback, IPv4, IPv6 and
// IPv4-mapped on a dual-stack listener, and checks that both sources read
// each of them the same, field by field.
func TestNetlinkMatchesProcfs(t *testing.T) {
	t.Parallel()
	nl := &NetlinkTables{AgesInDump: true}
	if err := nl.probe(context.Background()); err != nil {
		t.Skipf("netlink sock_diag unavailable here: %v", err)
	}
	ports := heldSockets(t, "tcp4", "127.0.0.1")
	if _, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		ports = append(ports, heldSockets(t, "tcp6", "::1")...)
		// A dual-stack listener: IPv4 clients, accepted as IPv4-mapped
		// sockets in the IPv6 table.
		dual, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer dual.Close()
		port := dual.Addr().(*net.TCPAddr).Port
		ports = append(ports, dual.Addr().(*net.TCPAddr).AddrPort(), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
		c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := dual.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
	} else {
		t.Log("no IPv6 on loopback; comparing IPv4 only")
	}

	procfs := NewProcfsTables("/proc")
	var fromNetlink, fromProcfs []Socket
	// A socket may change state between the two readings (a retransmission
	// timer): read again then.
	for try := 0; try < 3; try++ {
		a, err := AppendSockets(context.Background(), procfs, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := AppendSockets(context.Background(), nl, nil)
		if err != nil {
			t.Fatal(err)
		}
		fromProcfs, fromNetlink = ours(a, ports), ours(b, ports)
		// Only netlink reads the kernel's age of CLOSE_WAIT sockets, and
		// for every one of them: checked, then left out of the comparison.
		for i := range fromNetlink {
			s := &fromNetlink[i]
			if s.HasAckAge != (s.State == StateCloseWait) || s.AckAge > 60000 {
				t.Errorf("netlink: kernel age %v %d ms on %+v; want one, below a minute, exactly on CLOSE_WAIT sockets", s.HasAckAge, s.AckAge, *s)
			}
			s.AckAge, s.HasAckAge = 0, false
			// Only netlink reads a listener's accept queue limit: the
			// backlog Go's net.Listen asks for, capped by somaxconn.
			if s.HasBacklog != (s.State == StateListen) || (s.HasBacklog && s.Backlog == 0) {
				t.Errorf("netlink: accept queue limit %v %d on %+v; want one, above 0, exactly on listening sockets", s.HasBacklog, s.Backlog, *s)
			}
			s.Backlog, s.HasBacklog = 0, false
		}
		if slices.Equal(fromProcfs, fromNetlink) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !slices.Equal(fromProcfs, fromNetlink) {
		for _, s := range fromProcfs {
			if !slices.Contains(fromNetlink, s) {
				t.Errorf("only procfs has %+v", s)
			}
		}
		for _, s := range fromNetlink {
			if !slices.Contains(fromProcfs, s) {
				t.Errorf("only netlink has %+v", s)
			}
		}
	}
	counts := byFamilyAndState(fromNetlink)
	t.Logf("compared %d sockets: %v", len(fromNetlink), counts)
	for _, want := range []string{"ipv4 listen", "ipv4 established", "ipv4 close_wait", "ipv4 fin_wait2", "ipv4 time_wait", "ipv4 syn_recv"} {
		if counts[want] == 0 {
			t.Errorf("no %s socket was compared", want)
		}
	}
	for _, s := range fromNetlink {
		if s.State == StateEstablished && s.Inode == 0 {
			t.Errorf("established socket without inode: %+v", s)
		}
		if s.Family == IPv6 && s.Local.Addr().Is4In6() {
			return // the dual-stack case was compared
		}
	}
	if counts["ipv6 listen"] > 0 {
		t.Error("no IPv4-mapped socket in the IPv6 table")
	}
}

// TestNetlinkQueryAges: the CLOSE_WAIT sockets a plain dump lists without
// an age get the same kernel age from one lookup each as from a dump that
// asks for it; a socket that does not exist gets none, and no error.
func TestNetlinkQueryAges(t *testing.T) {
	t.Parallel()
	nl := NewNetlinkTables()
	if err := nl.probe(context.Background()); err != nil {
		t.Skipf("netlink sock_diag unavailable here: %v", err)
	}
	ports := heldSockets(t, "tcp4", "127.0.0.1")
	if _, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		ports = append(ports, heldSockets(t, "tcp6", "::1")...)
	}
	closeWait := func(socks []Socket) []Socket {
		return slices.DeleteFunc(ours(socks, ports), func(s Socket) bool { return s.State != StateCloseWait })
	}
	withAges := &NetlinkTables{AgesInDump: true}
	dumpedAt := time.Now()
	dumped, err := AppendSockets(context.Background(), withAges, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := AppendSockets(context.Background(), nl, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, got := closeWait(dumped), closeWait(plain)
	if len(got) == 0 || len(got) != len(want) {
		t.Fatalf("%d CLOSE_WAIT sockets in the plain dump, %d in the one with ages", len(got), len(want))
	}
	ptrs := []*Socket{}
	for i := range got {
		if got[i].HasAckAge {
			t.Fatalf("the plain dump gave an age: %+v", got[i])
		}
		ptrs = append(ptrs, &got[i])
	}
	ghost := Socket{Local: ap("127.0.0.1:1"), Remote: ap("127.0.0.1:2"), State: StateCloseWait, Family: IPv4}
	ptrs = append(ptrs, &ghost)
	if err := nl.QueryAges(context.Background(), ptrs); err != nil {
		t.Fatal(err)
	}
	// The lookup is as much older as time went by since the dump began (on
	// a busy host, seconds), plus the clock's granularity.
	apart := int(time.Since(dumpedAt).Milliseconds()) + 20
	if ghost.HasAckAge {
		t.Errorf("a socket that does not exist got an age: %+v", ghost)
	}
	for i := range got {
		if !got[i].HasAckAge || !want[i].HasAckAge || got[i].Inode != want[i].Inode {
			t.Fatalf("socket %d: looked up %+v, dumped %+v", i, got[i], want[i])
		}
		// The lookup is at least as old, by at most the time between them.
		if d := int(got[i].AckAge) - int(want[i].AckAge); d < 0 || d > apart {
			t.Errorf("socket %d: age %d ms looked up, %d ms dumped, %d ms apart", i, got[i].AckAge, want[i].AckAge, apart)
		}
	}
}

func TestDiagMessagesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, fam := range []Family{IPv4, IPv6} {
		reads := diagAnswer(500, fam, 9)
		var got []Socket
		done := false
		for _, r := range reads {
			var err error
			if got, done, err = appendDiagMessages(r, 9, fam, got); err != nil {
				t.Fatal(err)
			}
		}
		if !done || len(got) != 500 {
			t.Fatalf("%v: %d sockets, done %v", fam, len(got), done)
		}
		for i, s := range got {
			want := SyntheticSocketOf(i, fam)
			if want.State == StateListen {
				// diagAnswer reports a backlog limit of 4096, as sock_diag does.
				want.Backlog, want.HasBacklog = 4096, true
			}
			if s != want {
				t.Fatalf("%v socket %d:\n got %+v\nwant %+v", fam, i, s, want)
			}
		}
	}
}

// appendDiagMessages streams one read of a dump answer into dst.
func appendDiagMessages(b []byte, seq uint32, family Family, dst []Socket) ([]Socket, bool, error) {
	ds := diagStream{family: family, name: "test dump", fn: func(s *Socket) { dst = append(dst, *s) }}
	done, err := ds.messages(b, seq)
	return dst, done, err
}

func nlmsg(typ uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(payload)+3)
	binary.NativeEndian.PutUint32(b[0:], uint32(nlmsgHdrLen+len(payload)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func errPayload(e unix.Errno) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, uint32(-int32(e)))
	return b
}

func TestDiagMessageErrors(t *testing.T) {
	t.Parallel()
	one := appendDiagMsg(nil, 5, SyntheticSocket(30))
	cases := []struct {
		name     string
		read     []byte
		sockets  int
		done     bool
		errorHas string
	}{
		{"error reply", nlmsg(unix.NLMSG_ERROR, 5, errPayload(unix.ENOENT)), 0, true, "no such file"},
		{"done with error", append(slices.Clone(one), nlmsg(unix.NLMSG_DONE, 5, errPayload(unix.EINTR))...), 1, true, "interrupted"},
		{"done", append(slices.Clone(one), nlmsg(unix.NLMSG_DONE, 5, make([]byte, 4))...), 1, true, ""},
		{"stale sequence skipped", append(appendDiagMsg(nil, 4, SyntheticSocket(31)), one...), 1, false, ""},
		{"short message", nlmsg(sockDiagByFamily, 5, make([]byte, 20)), 0, false, "short inet_diag_msg"},
		{"length past the read", one[:40], 0, false, "malformed message"},
	}
	for _, c := range cases {
		got, done, err := appendDiagMessages(c.read, 5, IPv4, nil)
		if len(got) != c.sockets || done != c.done {
			t.Errorf("%s: %d sockets, done %v; want %d, %v", c.name, len(got), done, c.sockets, c.done)
		}
		if (c.errorHas == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.errorHas)) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.errorHas)
		}
	}
}

// TestDiagKernelAge reads tcpi_last_ack_recv from INET_DIAG_INFO, and no
// age from a message without it or with a cut attribute.
func TestDiagKernelAge(t *testing.T) {
	t.Parallel()
	cw := Socket{Local: ap("10.0.0.5:40000"), Remote: ap("10.1.2.3:9000"), State: StateCloseWait, Inode: 9, Family: IPv4, AckAge: 4024, HasAckAge: true}
	got, _, err := appendDiagMessages(appendDiagMsg(nil, 1, cw), 1, IPv4, nil)
	if err != nil || len(got) != 1 || got[0] != cw {
		t.Fatalf("got %+v, %v; want %+v", got, err, cw)
	}
	plain := cw
	plain.AckAge, plain.HasAckAge = 0, false
	got, _, err = appendDiagMessages(appendDiagMsg(nil, 1, plain), 1, IPv4, nil)
	if err != nil || len(got) != 1 || got[0] != plain {
		t.Fatalf("without tcp_info: got %+v, %v", got, err)
	}
	// An INET_DIAG_INFO attribute too short to hold the field, and one
	// whose length runs past the message: no age, no panic.
	for _, cut := range []int{rtaHdrLen + lastAckRecvOff, 600} {
		m := appendDiagMsg(nil, 1, cw)
		info := nlmsgHdrLen + inetDiagMsgLen + 8
		binary.NativeEndian.PutUint16(m[info:], uint16(cut))
		if cut < 600 {
			m = m[:info+cut]
			binary.NativeEndian.PutUint32(m, uint32(len(m)))
		}
		got, _, err = appendDiagMessages(m, 1, IPv4, nil)
		if err != nil || len(got) != 1 || got[0].HasAckAge {
			t.Errorf("attribute of %d bytes: got %+v, %v; want the socket without an age", cut, got, err)
		}
	}
}

func TestListenerQueuesAndRequestUID(t *testing.T) {
	t.Parallel()
	m := appendDiagMsg(nil, 1, Socket{Local: ap("0.0.0.0:80"), Remote: ap("0.0.0.0:0"), State: StateListen, RxQueue: 3, UID: 33, Inode: 7, Family: IPv4})
	m = appendDiagMsg(m, 1, Socket{Local: ap("10.0.0.1:80"), Remote: ap("10.0.0.2:5000"), State: StateSynRecv, Family: IPv4})
	socks, _, err := appendDiagMessages(m, 1, IPv4, nil)
	if err != nil || len(socks) != 2 {
		t.Fatal(socks, err)
	}
	if socks[0].TxQueue != 0 || socks[0].RxQueue != 3 {
		t.Errorf("listener queues tx %d rx %d; want 0 and 3, as /proc/net/tcp shows them", socks[0].TxQueue, socks[0].RxQueue)
	}
	if socks[1].UID != 33 {
		t.Errorf("request socket uid %d, want the listener's 33", socks[1].UID)
	}
}

// TestDiagListenerOrder: a listener after connected sockets in one dump is
// reported (the classifier relies on the kernel's order), and still
// streamed.
func TestDiagListenerOrder(t *testing.T) {
	t.Parallel()
	m := appendDiagMsg(nil, 1, Socket{Local: ap("10.0.0.1:80"), Remote: ap("10.0.0.2:5000"), State: StateEstablished, Inode: 8, Family: IPv4})
	m = appendDiagMsg(m, 1, Socket{Local: ap("0.0.0.0:80"), Remote: ap("0.0.0.0:0"), State: StateListen, Inode: 7, Family: IPv4})
	var got []Socket
	ds := diagStream{family: IPv4, name: "sock_diag AF_INET dump", fn: func(s *Socket) { got = append(got, *s) }}
	if _, err := ds.messages(m, 1); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || ds.bad == nil || !strings.Contains(ds.bad.Error(), "listening socket after connected ones") || ds.bad.Line != 2 {
		t.Fatalf("got %d sockets, problem %v; want both and the listener reported at message 2", len(got), ds.bad)
	}
}
