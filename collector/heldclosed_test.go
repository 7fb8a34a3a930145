package collector

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// gauge returns the value of the series of family name whose labels
// include want, and whether it exists.
func gauge(t *testing.T, fams []*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	return sample(fams, name, want)
}

// gather scrapes e once.
func gather(t *testing.T, e *Exporter) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// ownComm is this test binary's process name, as the process families
// label it.
func ownComm(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestHeldClosedSockets holds real loopback client sockets through what an
// idle pool lives through: three whose server closes them (CLOSE_WAIT) and
// then, once the client writes on them, resets them; two whose server
// resets them at once (a load balancer dropping idle connections, SO_LINGER
// 0). The kernel drops all five from its tables while this process keeps
// their fds: they must count as state close, per process and in the pool,
// with ages that go on from CLOSE_WAIT, beside a unix socketpair and a UDP
// socket that never count. Both sources. With TCPSTATE_HEAVY=1 (make
// heavy) it runs beside 42 000 sockets of other processes (holdBusyHost).
func TestHeldClosedSockets(t *testing.T) {
	if os.Getenv("TCPSTATE_HEAVY") == "1" {
		holdBusyHost(t)
	}
	renameSelf(t, fmt.Sprintf("held-%d", os.Getpid()))
	for _, kind := range []string{"procfs", "netlink"} {
		t.Run(kind, func(t *testing.T) {
			var src tables.TableSource = tables.NewProcfsTables("/proc")
			if kind == "netlink" {
				src = tables.NewNetlinkTables()
			}
			testHeldClosed(t, src)
		})
	}
}

// renameSelf sets this process's name (its comm, which the process
// families label it with) to name until t ends: a test binary of this
// package from another checkout, run beside this one on a shared host, has
// the same name and may hold sockets in state close of its own, which the
// families would add to this test's. No parallel test runs while a
// sequential one does, so none sees the name change.
func renameSelf(t *testing.T, name string) {
	t.Helper()
	old := ownComm(t)
	if err := os.WriteFile("/proc/self/comm", []byte(name), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile("/proc/self/comm", []byte(old), 0); err != nil {
			t.Error(err)
		}
	})
}

// heldRoom bounds the exporters of TestHeldClosedSockets far above what a
// host holds. The CLOSE_WAIT tracker's bound is also the held routes' (and
// both give their slots first come, in table order): at 1 000, a host with
// a thousand CLOSE_WAIT sockets of its own took every slot before the
// test's, whose routes and ages were then never known (issue 23). The
// bounds have tests of their own; the exporter's defaults are 100 000
// tracked sockets and 1 000 series.
const heldRoom = 1 << 20

func testHeldClosed(t *testing.T, src tables.TableSource) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cfg, err := config.ParseConfig(fmt.Appendf(nil, "pools:\n  - name: heldpool\n    remote_address: 127.0.0.1\n    remote_port: %d\n    max: 5\n", port))
	if err != nil {
		t.Fatal(err)
	}
	// Sockets that never count: a unix pair and a UDP socket.
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[0])
	defer unix.Close(pair[1])
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()

	const viaCloseWait, viaReset = 3, 2
	var clients []*net.TCPConn
	var served []*net.TCPConn
	for range viaCloseWait + viaReset {
		d := net.Dialer{KeepAlive: -1}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c.(*net.TCPConn))
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		served = append(served, s.(*net.TCPConn))
	}
	tracker := snapshot.NewCloseWaitTracker(heldRoom)
	e, err := NewExporter(Options{ProcRoot: "/proc", MaxSeries: heldRoom, RouteStates: []tables.State{tables.StateCloseWait, tables.StateClose, tables.StateEstablished},
		Config: func() *config.Config { return cfg }, Workers: 2, Tables: src, CloseWait: tracker, StuckAfter: time.Hour}, []string{"connections", "process", "pools"})
	if err != nil {
		t.Fatal(err)
	}
	comm := ownComm(t)
	pool := func(fams []*dto.MetricFamily, state string) float64 {
		v, _ := gauge(t, fams, "tcpstate_pool_connections", map[string]string{"pool": "heldpool", "state": state})
		return v
	}
	// Seen established first: the pool's routes are remembered.
	if fams := gather(t, e); pool(fams, "established") != viaCloseWait+viaReset {
		t.Fatalf("pool established = %v, want %d", pool(fams, "established"), viaCloseWait+viaReset)
	}
	for _, s := range served[:viaCloseWait] {
		s.Close() // FIN: the clients go to CLOSE_WAIT
	}
	for _, c := range clients[:viaCloseWait] {
		waitState(t, c, tables.StateCloseWait)
	}
	if fams := gather(t, e); pool(fams, "close_wait") != viaCloseWait {
		t.Fatalf("pool close_wait = %v, want %d", pool(fams, "close_wait"), viaCloseWait)
	}
	cwSeen := time.Now()
	for _, s := range served[viaCloseWait:] {
		s.SetLinger(0) // RST
		s.Close()
	}
	for _, c := range clients[:viaCloseWait] {
		// Data on a socket whose peer is gone: answered with RST.
		c.Write([]byte("x"))
	}
	waitGone(t, src, clients)

	// The sockets were in CLOSE_WAIT before cwSeen, and the reading starts
	// after this: its oldest age is at least dead. (Measured before the
	// reading, which takes seconds on a busy host.)
	dead := time.Since(cwSeen).Seconds()
	fams := gather(t, e)
	if v := pool(fams, "close"); v != viaCloseWait+viaReset {
		t.Errorf("pool close = %v, want %d", v, viaCloseWait+viaReset)
	}
	if v := pool(fams, "close_wait"); v != 0 {
		t.Errorf("pool close_wait = %v, want 0", v)
	}
	if v, _ := gauge(t, fams, "tcpstate_process_connections", map[string]string{"process": comm, "state": "close"}); v != viaCloseWait+viaReset {
		t.Errorf("process close = %v, want %d (the unix pair and the UDP socket never count)", v, viaCloseWait+viaReset)
	}
	if v, _ := gauge(t, fams, "tcpstate_process_remote_connections", map[string]string{"process": comm, "remote_port": fmt.Sprint(port), "state": "close"}); v != viaCloseWait+viaReset {
		t.Errorf("route close = %v, want %d", v, viaCloseWait+viaReset)
	}
	// The oldest age goes on from CLOSE_WAIT.
	oldest, ok := gauge(t, fams, "tcpstate_pool_close_wait_oldest_seconds", map[string]string{"pool": "heldpool"})
	if !ok || oldest < dead-1 {
		t.Errorf("pool oldest = %v (present %v), want at least about %.1f s, from CLOSE_WAIT", oldest, ok, dead)
	}

	// top --sockets lists them, saying which.
	socks, err := e.CloseWaitSockets(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	closed := 0
	for _, s := range socks {
		if s.State == tables.StateClose && s.Remote.Port() == uint16(port) {
			closed++
		}
	}
	if closed != viaCloseWait+viaReset {
		t.Errorf("CloseWaitSockets lists %d held sockets, want %d: %+v", closed, viaCloseWait+viaReset, socks)
	}

	// An exporter started after the resets never saw the routes: the
	// sockets still count per process, in no pool.
	fresh, err := NewExporter(Options{ProcRoot: "/proc", MaxSeries: heldRoom, RouteStates: []tables.State{tables.StateClose},
		Config: func() *config.Config { return cfg }, Workers: 2, Tables: src, CloseWait: snapshot.NewCloseWaitTracker(heldRoom), StuckAfter: time.Hour}, []string{"process", "pools"})
	if err != nil {
		t.Fatal(err)
	}
	fams = gather(t, fresh)
	if v, _ := gauge(t, fams, "tcpstate_process_connections", map[string]string{"process": comm, "state": "close"}); v != viaCloseWait+viaReset {
		t.Errorf("fresh exporter: process close = %v, want %d", v, viaCloseWait+viaReset)
	}
	if v := pool(fams, "close"); v != 0 {
		t.Errorf("fresh exporter: pool close = %v, want 0 (routes never seen)", v)
	}

	// Closed by the application: gone.
	for _, c := range clients {
		c.Close()
	}
	fams = gather(t, e)
	if v := pool(fams, "close"); v != 0 {
		t.Errorf("after close(): pool close = %v, want 0", v)
	}
	if v, _ := gauge(t, fams, "tcpstate_process_connections", map[string]string{"process": comm, "state": "close"}); v != 0 {
		t.Errorf("after close(): process close = %v, want 0", v)
	}
	runtime.KeepAlive(udp)
}

// holdBusyHost holds, until t ends, 42 000 TCP sockets that are none of
// the test's, as a busy host does: for each of three loopback addresses
// (one IPv6) a sockhold server and client, six processes each well under
// the 20 000 fd limit, with 3 500 established pairs and 7 000 client
// sockets the server closed, left in CLOSE_WAIT. The 21 000 CLOSE_WAIT
// sockets are more than any small bound on tracked sockets (the test's was
// 1 000) and than the kernel-age lookups a reading defers (maxDeferred).
// Keepalive is off, or unanswered probes would reset some. The helpers
// exit when their stdin closes, at t's cleanup or when the test binary
// dies however it dies, and after 10 minutes in any case.
func holdBusyHost(t *testing.T) {
	t.Helper()
	const established, closeWait = 3500, 7000
	addrs := []string{"127.0.0.2", "127.0.0.3", "::1"}
	start := time.Now()
	bin := filepath.Join(t.TempDir(), "sockhold")
	if err := testutil.Build(map[string]string{bin: "github.com/tcpstate-exporter/tcpstate_exporter/internal/sockhold"}); err != nil {
		t.Fatal(err)
	}
	built := time.Since(start)
	var clients []*busyHelper
	for _, a := range addrs {
		srv := startBusyHelper(t, bin, "serve", "-comm", "busy-srv", "-keepalive=false", "-listen", net.JoinHostPort(a, "0"))
		srv.wait(t)
		if len(srv.lines) != 1 {
			t.Fatalf("sockhold serve printed %q, want one listening line", srv.lines)
		}
		target := strings.TrimPrefix(srv.lines[0], "listening ")
		clients = append(clients, startBusyHelper(t, bin, "connect", "-comm", "busy-cli", "-keepalive=false",
			"-established", target+"="+strconv.Itoa(established), "-close-wait", target+"="+strconv.Itoa(closeWait)))
	}
	for _, c := range clients {
		c.wait(t)
		if want := fmt.Sprintf("connected %d refused=0", established+closeWait); !slices.Contains(c.lines, want) {
			t.Fatalf("sockhold connect printed %q, want %q", c.lines, want)
		}
	}
	t.Logf("holding %d sockets of other processes (%d established, %d CLOSE_WAIT) in %d helpers; sockhold built in %v, all ready in %v",
		len(addrs)*(2*established+closeWait), 2*len(addrs)*established, len(addrs)*closeWait, 2*len(addrs),
		built.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// busyHelper is a running sockhold process of holdBusyHost.
type busyHelper struct {
	cmd   *exec.Cmd
	stdin io.Closer
	ready chan error
	lines []string // what it printed before "ready"
}

// startBusyHelper starts sockhold with args; wait waits for it to be ready.
func startBusyHelper(t *testing.T, bin string, args ...string) *busyHelper {
	t.Helper()
	h := &busyHelper{cmd: exec.Command(bin, append(args, "-stdin", "-hold=10m")...), ready: make(chan error, 1)}
	stdin, err := h.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.stdin, h.cmd.Stderr = stdin, os.Stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.release)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				h.ready <- nil
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
			h.lines = append(h.lines, sc.Text())
		}
		h.ready <- fmt.Errorf("sockhold %v ended before it was ready", args)
	}()
	return h
}

func (h *busyHelper) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-h.ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("sockhold %v not ready after a minute", h.cmd.Args[1:])
	}
}

// release closes the helper's stdin and waits for it to exit; it kills it
// (by its pid) after 10 seconds.
func (h *busyHelper) release() {
	h.stdin.Close()
	done := make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
	}
}

// waitGone polls until no table lists the clients' sockets.
func waitGone(t *testing.T, src tables.TableSource, clients []*net.TCPConn) {
	t.Helper()
	want := map[string]bool{}
	for _, c := range clients {
		want[c.LocalAddr().String()+" "+c.RemoteAddr().String()] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, states := 0, []string{}
		if err := src.Stream(t.Context(), func(sk *tables.Socket) {
			if want[unmapped(sk.Local).String()+" "+unmapped(sk.Remote).String()] {
				left++
				states = append(states, sk.State.String()+" "+sk.Local.String()+" "+sk.Remote.String())
			}
		}); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d client sockets still in the tables after 10 s: %v", left, states)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
