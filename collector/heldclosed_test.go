package collector

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"
)

// gauge returns the value of the series of family name whose labels
// include want, and whether it exists.
func gauge(t *testing.T, fams []*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
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
// socket that never count. Both sources.
func TestHeldClosedSockets(t *testing.T) {
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
	tracker := snapshot.NewCloseWaitTracker(1000)
	e, err := NewExporter(Options{ProcRoot: "/proc", MaxSeries: 1000, RouteStates: []tables.State{tables.StateCloseWait, tables.StateClose, tables.StateEstablished},
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
	if min := time.Since(cwSeen).Seconds() - 1; !ok || oldest < min-1 {
		t.Errorf("pool oldest = %v (present %v), want at least about %.1f s, from CLOSE_WAIT", oldest, ok, min)
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
	fresh, err := NewExporter(Options{ProcRoot: "/proc", MaxSeries: 1000, RouteStates: []tables.State{tables.StateClose},
		Config: func() *config.Config { return cfg }, Workers: 2, Tables: src, CloseWait: snapshot.NewCloseWaitTracker(1000), StuckAfter: time.Hour}, []string{"process", "pools"})
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
