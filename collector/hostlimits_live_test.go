package collector

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"
)

// sample returns the value of a gauge or counter series of family name
// whose labels include want, and whether it exists.
func sample(fams []*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
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
			if m.Counter != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// stalledPeer is a loopback server that accepts and never reads, and
// clients whose send queues are filled toward it.
type stalledPeer struct {
	l       net.Listener
	port    string
	clients []*net.TCPConn
	written int64 // bytes the clients wrote in all
}

// newStalledPeer starts the server and n clients, each writing until its
// send queue and the server's receive queue are full.
func newStalledPeer(t *testing.T, n int) *stalledPeer {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stalledPeer{l: l, port: strconv.Itoa(l.Addr().(*net.TCPAddr).Port)}
	t.Cleanup(func() {
		l.Close()
		for _, c := range p.clients {
			c.Close()
		}
	})
	chunk := make([]byte, 64<<10)
	for range n {
		d := net.Dialer{KeepAlive: -1}
		c, err := d.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		tc := c.(*net.TCPConn)
		p.clients = append(p.clients, tc)
		// Bounded: the queues hold a few MB at most.
		for i := 0; i < 1000; i++ {
			tc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			w, err := tc.Write(chunk)
			p.written += int64(w)
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return p
}

// ssMemory sums what ss reports for the sockets toward 127.0.0.1:port:
// skmem's r + w + f (mem), or Recv-Q + Send-Q (queues).
func ssMemory(t *testing.T, port string) (mem, queues int64) {
	t.Helper()
	cmd := exec.Command("ss", "-tnmH", "-a", "dst", "127.0.0.1:"+port)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ss: %v %s", err, stderr.String())
	}
	for _, f := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(f, "skmem:("); ok {
			for _, kv := range strings.Split(strings.TrimSuffix(rest, ")"), ",") {
				i := strings.IndexFunc(kv, func(r rune) bool { return r >= '0' && r <= '9' })
				if i < 0 {
					t.Fatalf("ss skmem %q: no number", kv)
				}
				switch kv[:i] {
				case "r", "w", "f":
					n, err := strconv.ParseInt(kv[i:], 10, 64)
					if err != nil {
						t.Fatalf("ss skmem %q: %v", kv, err)
					}
					mem += n
				}
			}
		}
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 5 || strings.HasPrefix(f[0], "skmem") {
			continue
		}
		rq, err1 := strconv.ParseInt(f[1], 10, 64)
		sq, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("ss line %q: queues not numbers", line)
		}
		queues += rq + sq
	}
	return mem, queues
}

// settle waits until the queues toward 127.0.0.1:port stop moving (the
// receiver's buffer grows for a while after the writes stop), bounded.
func settle(t *testing.T, port string) {
	t.Helper()
	lastMem, lastQueues := ssMemory(t, port)
	for range 100 {
		time.Sleep(100 * time.Millisecond)
		mem, queues := ssMemory(t, port)
		if mem == lastMem && queues == lastQueues {
			return
		}
		lastMem, lastQueues = mem, queues
	}
	t.Fatalf("the queues toward port %s still move after 10 s", port)
}

// TestHostLimitsLive: real loopback sockets whose peer never reads, their
// memory per process and per peer (exactly what ss reports for that peer),
// orphans made by closing some of them, counted per peer exactly, a
// listener with a backlog of 1 that drops, and the host's counters and
// limits as the kernel's files say. Netlink source (SK_MEMINFO).
func TestHostLimitsLive(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skipf("needs ss (Debian: iproute2): %v", err)
	}
	src := tables.NewNetlinkTables()
	e, err := NewExporter(Options{ProcRoot: "/proc", MaxSeries: 100000, Tables: src}, []string{"hostlimits", "memory", "acceptqueue"})
	if err != nil {
		t.Fatal(err)
	}
	if !src.MemInfo {
		t.Fatal("the memory collector did not ask the netlink dump for SK_MEMINFO")
	}
	held := newStalledPeer(t, 3)
	orphaned := newStalledPeer(t, 5)
	for _, c := range orphaned.clients {
		c.Close() // unsent data, window shut: an orphan in FIN_WAIT1
	}
	comm := ownComm(t)
	settle(t, held.port)

	// A listener with a backlog of 1 that never accepts.
	dropPort := droppingListener(t)

	var fams []*dto.MetricFamily
	deadline := time.Now().Add(20 * time.Second)
	for {
		fams = gather(t, e)
		o, _ := sample(fams, "tcpstate_orphan_remote_sockets", map[string]string{"remote_address": "127.0.0.1", "remote_port": orphaned.port})
		d, _ := sample(fams, "tcpstate_listen_drops_total", map[string]string{"local_port": dropPort})
		if (o == 5 && d > 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	check := func(name string, labels map[string]string, ok func(float64) bool, want string) {
		t.Helper()
		v, found := sample(fams, name, labels)
		if !found || !ok(v) {
			t.Errorf("%s%v = %v (found %v), want %s", name, labels, v, found, want)
		}
	}
	check("tcpstate_orphan_remote_sockets", map[string]string{"remote_address": "127.0.0.1", "remote_port": orphaned.port},
		func(v float64) bool { return v == 5 }, "5")
	if v, found := sample(fams, "tcpstate_orphan_remote_sockets", map[string]string{"remote_address": "127.0.0.1", "remote_port": held.port}); found {
		t.Errorf("orphans toward the held peer: %v, want none (nothing closed toward it)", v)
	}
	check("tcpstate_listen_drops_total", map[string]string{"local_port": dropPort},
		func(v float64) bool { return v >= 1 }, ">= 1")
	// Both ends are this process's: every byte written sits in a client's
	// send queue or a server's receive queue, each charged at least its size.
	check("tcpstate_process_memory_bytes", map[string]string{"process": comm, "netns": "host"},
		func(v float64) bool { return v >= float64(held.written) }, ">= "+strconv.FormatInt(held.written, 10))
	// The held peer's memory is static (its window is shut): what ss reads.
	ssMem, _ := ssMemory(t, held.port)
	check("tcpstate_remote_memory_bytes", map[string]string{"remote_address": "127.0.0.1", "remote_port": held.port},
		func(v float64) bool { return v == float64(ssMem) }, strconv.FormatInt(ssMem, 10)+" (ss -tm)")
	// The orphans' memory has no process, but stays with their peer.
	check("tcpstate_remote_memory_bytes", map[string]string{"remote_address": "127.0.0.1", "remote_port": orphaned.port},
		func(v float64) bool { return v > 0 }, "> 0")

	// Host-wide: at least ours; the limits as the sysctls say.
	check("tcpstate_orphan_sockets", nil, func(v float64) bool { return v >= 5 }, ">= 5")
	check("tcpstate_memory_bytes", nil, func(v float64) bool { return v > 0 }, "> 0")
	var h tables.HostTCP
	if h, err = tables.ReadHostTCP("/proc"); err != nil {
		t.Fatal(err)
	}
	page := float64(os.Getpagesize())
	for i, th := range memThresholds {
		check("tcpstate_memory_limit_bytes", map[string]string{"threshold": th},
			func(v float64) bool { return v == float64(h.MemLimit[i])*page }, strconv.FormatFloat(float64(h.MemLimit[i])*page, 'f', 0, 64))
	}
	check("tcpstate_orphan_max_sockets", nil, func(v float64) bool { return v == float64(h.MaxOrphans) }, strconv.FormatUint(h.MaxOrphans, 10))
}

// TestHostLimitsLiveProcfs: with the procfs tables each socket's memory is
// its queued bytes (what ss prints as Recv-Q + Send-Q), and no listen
// drops are reported.
func TestHostLimitsLiveProcfs(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skipf("needs ss (Debian: iproute2): %v", err)
	}
	e, err := NewExporter(Options{ProcRoot: "/proc", MaxSeries: 100000, Tables: tables.NewProcfsTables("/proc")}, []string{"hostlimits", "memory", "acceptqueue"})
	if err != nil {
		t.Fatal(err)
	}
	held := newStalledPeer(t, 2)
	settle(t, held.port)
	fams := gather(t, e)
	_, queues := ssMemory(t, held.port)
	v, ok := sample(fams, "tcpstate_remote_memory_bytes", map[string]string{"remote_address": "127.0.0.1", "remote_port": held.port})
	if !ok || v != float64(queues) {
		t.Errorf("tcpstate_remote_memory_bytes = %v (found %v), want %d (ss Send-Q + Recv-Q)", v, ok, queues)
	}
	if _, ok := sample(fams, "tcpstate_listen_drops_total", nil); ok {
		t.Error("tcpstate_listen_drops_total reported from the procfs tables, which have no drops")
	}
}

// TestListenDropsByDefault: with the default collectors (memory off), a
// listener with a backlog of 1 that never accepts still has its drops
// counted: the accept queue view asks the listeners alone for them.
func TestListenDropsByDefault(t *testing.T) {
	src := tables.NewNetlinkTables()
	e, err := NewExporter(Options{ProcRoot: "/proc", MaxSeries: 100000, Tables: src}, []string{"acceptqueue", "connections"})
	if err != nil {
		t.Fatal(err)
	}
	if src.MemInfo || !src.ListenMemInfo {
		t.Fatalf("memory of every socket %v, of listeners %v; want the listeners' only", src.MemInfo, src.ListenMemInfo)
	}
	port := droppingListener(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		fams := gather(t, e)
		d, found := sample(fams, "tcpstate_listen_drops_total", map[string]string{"local_port": port})
		if found && d >= 1 {
			if q, _ := sample(fams, "tcpstate_accept_queue_sockets", map[string]string{"local_port": port}); q != 2 {
				t.Errorf("accept queue of the listener: %v, want 2 (backlog 1 holds backlog + 1)", q)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s tcpstate_listen_drops_total{local_port=%q} = %v (found %v), want >= 1", port, d, found)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// droppingListener listens on 127.0.0.1 with a backlog of 1, never
// accepts, and has ten clients connect to it: the kernel drops the ones
// its queue cannot hold. It returns the port.
func droppingListener(t *testing.T) string {
	t.Helper()
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(lfd) })
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 1); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(lfd)
	for range 10 {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
			t.Fatal(err)
		}
	}
	return strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
}
