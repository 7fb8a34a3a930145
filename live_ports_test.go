package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLiveServerRemnantsAreInbound is issue 20's case: a server on
// 127.0.0.9:8099 closes 15 connections first, then stops listening. Its 15
// TIME_WAIT sockets have no listener left; by the port range (local 8099
// outside it, remote client port inside) they are inbound: 15 under
// local_port="8099", none under a client's port, none in the ephemeral
// ports of a destination.
func TestLiveServerRemnantsAreInbound(t *testing.T) {
	const n = 15
	ln, port := listenOnUnusedPort(t, "127.0.0.9", 8099)
	series := `tcpstate_local_port_connections{local_port="` + port + `",state="time_wait"}`
	// The clients' ports are ephemeral ones no socket of this host uses at
	// either end: on a busy host another socket could hold a remote port
	// the kernel would otherwise pick for a client here.
	clientPorts := map[string]bool{}
	free := unusedEphemeralPorts(t, n)
	for i := range n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: free[i]}}
		c, err := d.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		clientPorts[strconv.Itoa(c.LocalAddr().(*net.TCPAddr).Port)] = true
		s.Close() // the server closes first: its end goes to TIME_WAIT
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("client read %v, want EOF", err)
		}
		c.Close()
	}
	ln.Close()

	for _, source := range []string{"netlink", "procfs"} {
		t.Run(source, func(t *testing.T) {
			m := parseExposition(t, mustGet(t, startExporter(t, "--collector.tcp.source="+source)))
			if v := m[series]; v != n {
				t.Errorf("%s = %v, want %d", series, v, n)
			}
			for series := range m {
				for p := range clientPorts {
					if strings.Contains(series, `remote_port="`+p+`"`) {
						t.Errorf("a client port's series: %s", series)
					}
				}
			}
		})
	}
}

// listenOnUnusedPort listens on addr at the first port from first on (all
// outside the ephemeral range) that no TCP socket of this namespace uses as
// its local port in any state: an earlier run's TIME_WAIT sockets on the
// same port, alive for a minute, would add to the count under test.
func listenOnUnusedPort(t *testing.T, addr string, first int) (net.Listener, string) {
	t.Helper()
	for port := first; port < first+200; port++ {
		used, err := localPortUsed(port)
		if err != nil {
			t.Fatal(err)
		}
		if used {
			continue
		}
		ln, err := net.Listen("tcp4", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		return ln, strconv.Itoa(port)
	}
	t.Fatalf("no port from %d to %d free of sockets on %s", first, first+199, addr)
	return nil, ""
}

// localPortUsed tells whether /proc/net/tcp or tcp6 lists a socket whose
// local port is port, in any state.
// unusedEphemeralPorts returns n ports of the ephemeral range that no TCP
// socket of this namespace uses, as its local or its remote port.
func unusedEphemeralPorts(t *testing.T, n int) []int {
	t.Helper()
	used := map[int]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 3 {
				continue
			}
			for _, ep := range fields[1:3] {
				if i := strings.LastIndexByte(ep, ':'); i >= 0 {
					if p, err := strconv.ParseUint(ep[i+1:], 16, 16); err == nil {
						used[int(p)] = true
					}
				}
			}
		}
	}
	var ports []int
	// From the middle of the default range (32768-60999), away from where
	// the kernel starts picking.
	for p := 50000; p < 60999 && len(ports) < n; p++ {
		if !used[p] {
			ports = append(ports, p)
		}
	}
	if len(ports) < n {
		t.Fatalf("only %d unused ports in 50000-60998", len(ports))
	}
	return ports
}

func localPortUsed(port int) (bool, error) {
	suffix := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return false, err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if fields := strings.Fields(line); len(fields) > 1 && strings.HasSuffix(fields[1], suffix) {
				return true, nil
			}
		}
	}
	return false, nil
}

// TestLiveAcceptQueue listens with a backlog of 3 and never accepts: the
// queue holds backlog+1 connections, the clients after them time out, and
// the exporter reports 4 waiting of at most 3 (the limit from netlink
// only); once the server accepts them, 0.
func TestLiveAcceptQueue(t *testing.T) {
	const backlog = 3
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 10}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	timedOut := 0
	for range backlog + 3 {
		c, err := net.DialTimeout("tcp4", addr, 500*time.Millisecond)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("dial: %v, want a timeout", err)
			}
			timedOut++
			continue
		}
		conns = append(conns, c)
	}
	if timedOut == 0 {
		t.Errorf("no client timed out against a full accept queue")
	}
	queue := `tcpstate_accept_queue_sockets{local_port="` + port + `"}`
	limit := `tcpstate_accept_queue_max_sockets{local_port="` + port + `"}`
	m := parseExposition(t, mustGet(t, startExporter(t, "--collector.tcp.source=netlink")))
	if m[queue] != backlog+1 || m[limit] != backlog {
		t.Errorf("netlink: %s = %v, %s = %v; want %d and %d", queue, m[queue], limit, m[limit], backlog+1, backlog)
	}
	m = parseExposition(t, mustGet(t, startExporter(t, "--collector.tcp.source=procfs")))
	if _, ok := m[limit]; m[queue] != backlog+1 || ok {
		t.Errorf("procfs: %s = %v, %s present %v; want %d and no limit (/proc/net/tcp has none)", queue, m[queue], limit, ok, backlog+1)
	}

	// The server accepts again: the queue empties.
	for {
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
		conns = append(conns, c)
	}
	m = parseExposition(t, mustGet(t, startExporter(t, "--collector.tcp.source=netlink")))
	if m[queue] != 0 || m[limit] != backlog {
		t.Errorf("after accepting: %s = %v, %s = %v; want 0 and %d", queue, m[queue], limit, m[limit], backlog)
	}
}
