package collector

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"
)

// inNetnsEnv tells a re-executed test binary that it runs inside the
// network namespace TestKernelReceiveQueueAccounting made for it.
const inNetnsEnv = "TCPSTATE_QUEUE_TEST_NETNS"

// responseBytes is what the server sends before its FIN in the scenarios
// that leave a response unread.
const responseBytes = 100

// queueScenario is one client socket brought to a state with a known
// amount of data received and not read.
type queueScenario struct {
	name  string
	state tables.State
	// unread is the data the client received and did not read; the FIN is
	// not data.
	unread uint64
	// kernelRx is what both sources must report as the receive queue: the
	// kernel counts rcv_nxt - copied_seq, and a FIN takes one sequence
	// number until the application reads the end of stream.
	kernelRx uint64
	local    netip.AddrPort // filled in when made
}

// TestKernelReceiveQueueAccounting brings real client sockets into every
// state in which the peer's FIN has arrived (CLOSE_WAIT, LAST_ACK,
// CLOSING), with and without unread data, plus FIN_WAIT2 with unread data
// and no FIN, and checks, on both sources (procfs text and netlink
// sock_diag), what the kernel reports as the receive queue and that
// tcpstate_receive_queue_bytes counts the data only.
//
// LAST_ACK and CLOSING need packets to be lost, so the sockets live in a
// network namespace of their own with nftables rules that drop chosen
// segments on its loopback: the test re-executes itself there through
// `ip netns exec`. It needs root, ip and nft (Debian: nftables).
func TestKernelReceiveQueueAccounting(t *testing.T) {
	if os.Getenv(inNetnsEnv) != "" {
		measureReceiveQueues(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: it creates a network namespace and nftables rules")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian: iproute2, nftables): %v", tool, err)
		}
	}
	name := fmt.Sprintf("tcpst-rxq-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	defer func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del: %v\n%s", err, out)
		}
	}()
	cmd := exec.Command("ip", "netns", "exec", name, os.Args[0], "-test.run=^TestKernelReceiveQueueAccounting$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inNetnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("inside network namespace %s:\n%s", name, out)
	if err != nil {
		t.Fatalf("the measurement inside the namespace failed: %v", err)
	}
}

// nft runs one nft command inside the test's namespace.
func nft(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("nft", args...).CombinedOutput(); err != nil {
		t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// dropRule drops, on output, the segments from one port to another.
func dropRule(from, to uint16) string {
	return fmt.Sprintf("tcp sport %d tcp dport %d drop", from, to)
}

func measureReceiveQueues(t *testing.T) {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v\n%s", err, out)
	}
	nft(t, "add", "table", "inet", "rxq")
	nft(t, "add", "chain", "inet", "rxq", "out", "{ type filter hook output priority 0; }")

	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serverPort := uint16(l.Addr().(*net.TCPAddr).Port)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// dial returns a client connection and its accepted peer, without
	// keepalive probes: they would change nothing here but the timing.
	dial := func() (*net.TCPConn, *net.TCPConn, uint16) {
		d := net.Dialer{KeepAlive: -1}
		c, err := d.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c, s)
		return c.(*net.TCPConn), s.(*net.TCPConn), uint16(c.LocalAddr().(*net.TCPAddr).Port)
	}
	respond := func(s net.Conn) {
		if _, err := s.Write(make([]byte, responseBytes)); err != nil {
			t.Fatal(err)
		}
	}
	var scenarios []*queueScenario
	add := func(sc *queueScenario, port uint16) {
		sc.local = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		scenarios = append(scenarios, sc)
	}

	// CLOSE_WAIT, the server sent nothing and the client never read: an
	// idle pooled connection.
	c, s, port := dial()
	s.Close()
	add(&queueScenario{name: "close_wait idle, end of stream not read", state: tables.StateCloseWait, unread: 0, kernelRx: 1}, port)
	// CLOSE_WAIT with a response nobody read: a leaked request.
	c, s, port = dial()
	respond(s)
	s.Close()
	add(&queueScenario{name: "close_wait, response not read", state: tables.StateCloseWait, unread: responseBytes, kernelRx: responseBytes + 1}, port)
	// (Reading just the response may consume the FIN too: the receiver
	// coalesces the FIN into the response's last segment, and reading that
	// segment's last byte reads the end of stream; the queue then reads 0.)
	// CLOSE_WAIT, read to the end of stream and still open.
	c, s, port = dial()
	respond(s)
	s.Close()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	add(&queueScenario{name: "close_wait, read to the end of stream", state: tables.StateCloseWait, unread: 0, kernelRx: 0}, port)

	// LAST_ACK: the client shuts down its side after the server's FIN, and
	// the server's ACK of that is dropped.
	c, s, port = dial()
	respond(s)
	s.Close()
	waitState(t, c, tables.StateCloseWait)
	nft(t, "add", "rule", "inet", "rxq", "out", dropRule(serverPort, port))
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	add(&queueScenario{name: "last_ack, response not read", state: tables.StateLastAck, unread: responseBytes, kernelRx: responseBytes + 1}, port)
	c, s, port = dial()
	s.Close()
	waitState(t, c, tables.StateCloseWait)
	nft(t, "add", "rule", "inet", "rxq", "out", dropRule(serverPort, port))
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	add(&queueScenario{name: "last_ack idle, end of stream not read", state: tables.StateLastAck, unread: 0, kernelRx: 1}, port)

	// CLOSING: both FINs cross. Both directions are dropped while each side
	// shuts down, then the server's retransmitted FIN is let through: it
	// does not acknowledge the client's FIN, which the server never got.
	c, s, port = dial()
	respond(s)
	waitRx(t, port, responseBytes)
	nft(t, "add", "rule", "inet", "rxq", "out", dropRule(serverPort, port))
	nft(t, "add", "rule", "inet", "rxq", "out", dropRule(port, serverPort))
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	deleteRule(t, dropRule(serverPort, port))
	add(&queueScenario{name: "closing, response not read", state: tables.StateClosing, unread: responseBytes, kernelRx: responseBytes + 1}, port)

	// FIN_WAIT2 with a response not read: no FIN has arrived, every byte
	// is data.
	c, s, port = dial()
	respond(s)
	waitRx(t, port, responseBytes)
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	add(&queueScenario{name: "fin_wait2, response not read", state: tables.StateFinWait2, unread: responseBytes, kernelRx: responseBytes}, port)

	sources := map[string]tables.TableSource{"procfs": tables.NewProcfsTables("/proc/self"), "netlink": tables.NewNetlinkTables()}
	for _, srcName := range []string{"procfs", "netlink"} {
		src := sources[srcName]
		got := waitForScenarios(t, src, scenarios)
		var wantData [tables.NumStates]uint64
		var socks []tables.Socket
		for _, sc := range scenarios {
			sk, ok := got[sc.local]
			if !ok {
				t.Errorf("%s: %s: socket %s not listed", srcName, sc.name, sc.local)
				continue
			}
			t.Logf("%-8s %-46s state %-10s Recv-Q %3d  unread data %3d", srcName, sc.name, sk.State, sk.RxQueue, tables.UnreadData(&sk))
			if sk.State != sc.state {
				t.Errorf("%s: %s: state %s, want %s", srcName, sc.name, sk.State, sc.state)
			}
			if sk.RxQueue != sc.kernelRx {
				t.Errorf("%s: %s: the kernel reports a receive queue of %d, the model says %d", srcName, sc.name, sk.RxQueue, sc.kernelRx)
			}
			if d := tables.UnreadData(&sk); d != sc.unread {
				t.Errorf("%s: %s: unread data %d, want %d", srcName, sc.name, d, sc.unread)
			}
			wantData[sc.state] += sc.unread
			socks = append(socks, sk)
		}
		// The family sums the data only.
		gotBytes := receiveQueueBytes(t, socks)
		for _, st := range []tables.State{tables.StateCloseWait, tables.StateLastAck, tables.StateClosing, tables.StateFinWait2} {
			if gotBytes[st] != float64(wantData[st]) {
				t.Errorf("%s: tcpstate_receive_queue_bytes{state=%q} = %v, want %d", srcName, st, gotBytes[st], wantData[st])
			}
		}
	}
}

// waitState polls the socket's own TCP state (TCP_INFO) until it is want.
func waitState(t *testing.T, c *net.TCPConn, want tables.State) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st uint8
		if err := raw.Control(func(fd uintptr) {
			info, ierr := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if ierr == nil {
				st = info.State
			}
		}); err != nil {
			t.Fatal(err)
		}
		if tables.State(st) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %s still in %s after 5s, want %s", c.LocalAddr(), tables.State(st), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitRx polls the netlink table until the socket on local port port has
// rx bytes in its receive queue.
func waitRx(t *testing.T, port uint16, rx uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		socks, err := tables.AppendSockets(context.Background(), tables.NewNetlinkTables(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range socks {
			if s.Local.Port() == port && s.RxQueue == rx {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d never had %d bytes queued", port, rx)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func deleteRule(t *testing.T, rule string) {
	t.Helper()
	out, err := exec.Command("nft", "-a", "list", "chain", "inet", "rxq", "out").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, rule) {
			i := strings.LastIndex(line, "# handle ")
			if i < 0 {
				break
			}
			nft(t, "delete", "rule", "inet", "rxq", "out", "handle", strings.TrimSpace(line[i+len("# handle "):]))
			return
		}
	}
	t.Fatalf("no rule %q in:\n%s", rule, out)
}

// waitForScenarios reads src until every scenario's socket is in its
// state (a FIN crossing a dropped segment takes a retransmission), and
// returns the sockets by local endpoint.
func waitForScenarios(t *testing.T, src tables.TableSource, scenarios []*queueScenario) map[netip.AddrPort]tables.Socket {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		socks, err := tables.AppendSockets(context.Background(), src, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[netip.AddrPort]tables.Socket{}
		for _, s := range socks {
			got[s.Local] = s
		}
		ready := true
		for _, sc := range scenarios {
			if s, ok := got[sc.local]; !ok || s.State != sc.state {
				ready = false
			}
		}
		if ready || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receiveQueueBytes runs the queues collector over a snapshot and returns
// tcpstate_receive_queue_bytes by state.
func receiveQueueBytes(t *testing.T, socks []tables.Socket) [tables.NumStates]float64 {
	t.Helper()
	s := &snapshot.Snapshot{}
	tl := newQueuesCollector(Options{}).NewTally(s)
	for i := range socks {
		tl.Add(&socks[i], &snapshot.SockInfo{})
	}
	ch := make(chan prometheus.Metric, 64)
	go func() {
		if err := tl.Emit(s, ch); err != nil {
			t.Error(err)
		}
		close(ch)
	}()
	var out [tables.NumStates]float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(m.Desc().String(), `"tcpstate_receive_queue_bytes"`) {
			continue
		}
		for _, lp := range pb.GetLabel() {
			if st, ok := tables.ParseState(lp.GetValue()); ok && lp.GetName() == "state" {
				out[st] = pb.GetGauge().GetValue()
			}
		}
	}
	return out
}
