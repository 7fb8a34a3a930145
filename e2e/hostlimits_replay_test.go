package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// hostLimitsEnv enables the host-limits replay (make hostlimits-replay).
// It lowers host-wide sysctls: it must run alone, never beside other tests.
const hostLimitsEnv = "TCPSTATE_HOSTLIMITS"

const hostLimitsScript = "../incident/python/hostlimits.py"

// The replay of issue 25: the host's shared TCP limits driven for real on
// this machine, each alert checked against what the kernel reports.
//
//   - listen drops: a listener with a backlog of 1 that never accepts and a
//     client that keeps connecting; TCPStateListenDrops names the port.
//   - memory: net.ipv4.tcp_mem lowered to a little above what the host
//     holds now: 128 MiB to max, large enough that the kernel's counter,
//     which moves in batches of net.core.mem_pcpu_rsv (256 pages, its
//     minimum) per CPU, stays within the alert's 2% of max; a writer (hl-writer) keeps writing to a server that stopped
//     reading (hl-sink) until the kernel reports pressure
//     (TcpExtTCPMemoryPressures) and memory reaches max;
//     TCPStateMemoryPressure and TCPStateMemoryExhausted must name the
//     writer and the sink's port. tcp_mem is restored as soon as they have.
//   - orphans: net.ipv4.tcp_max_orphans lowered to 64 above the host's
//     orphans; a client (hl-orphaner) closes connections with unsent data
//     toward a server that stopped reading, a few at a time: at half the
//     limit TCPStateOrphansHigh names the server's port; past it the
//     kernel resets orphans (TcpExtTCPAbortOnMemory). Restored at once.
//
// The rules are the shipped file with every `for:` at testFor (the
// expressions and annotations byte for byte). Each sysctl is lowered for
// the shortest time the step needs and restored on every exit path: by the
// step itself, by t.Cleanup, by a SIGINT/SIGTERM handler, and by a guard
// process that restores it when this test process dies for any reason
// (its stdin, a pipe from this process, reaches EOF).
func TestHostLimitsReplay(t *testing.T) {
	if os.Getenv(hostLimitsEnv) != "1" {
		t.Skipf("lowers host-wide sysctls: run `make hostlimits-replay` alone (or %s=1 go test -count=1 -v -run TestHostLimitsReplay ./e2e/)", hostLimitsEnv)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the replay sets net.ipv4.tcp_mem and tcp_max_orphans: run it as root")
	}
	for _, bin := range []string{"prometheus", "prometheus-alertmanager", debianPython, "sysctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: `make hostlimits-replay` installs what the replay needs", bin)
		}
	}
	begin := time.Now()
	hook := startWebhook(t)
	am := startAlertmanager(t, hook.url)
	addr := testutil.FreeAddr(t)
	startProcess(t, "tcpstate_exporter", addr, "/", exporterBin, "--web.listen-address="+addr,
		"--collector.disable-defaults", "--collector.hostlimits", "--collector.memory", "--collector.acceptqueue", "--no-collector.netns")
	rules := testRuleCopy(t)
	// A scrape walks every process's fds on a host that may hold tens of
	// thousands of sockets: 2 s, where a failed scrape would restart `for`.
	prom := startPrometheusScraping(t, addr, am.addr, rules.path, 2*time.Second)
	waitForValue(t, prom, fmt.Sprintf(`count(tcpstate_memory_limit_bytes{job=%q})`, jobName), 3)
	t.Logf("exporter, Prometheus and Alertmanager ready %.1fs after the start", time.Since(begin).Seconds())

	py := func(name string, args ...string) *clientProcess {
		return startClient(t, name, append([]string{debianPython, hostLimitsScript}, args...), "")
	}

	// Listen drops: no sysctl.
	listener := py("hl-listener", "listener")
	dropPort := strings.Fields(listener.waitForLine(t, "ready", startupTimeout))[1]
	knocker := py("hl-knocker", "knocker", dropPort)
	knocker.waitForLine(t, "ready", startupTimeout)
	knocked := time.Now()
	n := hook.waitFor(t, firingTimeout, "firing TCPStateListenDrops", func(n notification) bool {
		a := n.alert("TCPStateListenDrops")
		return a.Status == "firing" && a.Labels["local_port"] == dropPort
	})
	t.Logf("listen drops: TCPStateListenDrops for port %s %.1fs after the first connection attempt: %s",
		dropPort, n.received.Sub(knocked).Seconds(), n.alert("TCPStateListenDrops").Annotations["description"])
	// The knocker keeps going, so that the drop panels have data when the
	// orphan step checks the dashboards.

	t.Run("memory", func(t *testing.T) { replayMemory(t, prom, hook) })
	t.Run("orphans", func(t *testing.T) { replayOrphans(t, prom, hook, dropPort) })
	knocker.stop(t)
	listener.stop(t)
	hook.checkAllAnnotations(t)
	t.Logf("replay done in %.0fs", time.Since(begin).Seconds())
}

func replayMemory(t *testing.T, prom *process, hook *webhook) {
	sink := startClient(t, "hl-sink", []string{debianPython, hostLimitsScript, "sink"}, "")
	sinkPort := strings.Fields(sink.waitForLine(t, "ready", startupTimeout))[1]

	// Thresholds above what the host holds now (other processes' sockets
	// count too): 128 MiB to max, which 64 connections whose send queues
	// hold up to 4 MiB each go past; pressure 1 MiB under max. Under
	// pressure the kernel grants a socket memory only within its fair
	// share of max (max / the TCP sockets allocated host-wide), nothing on
	// a host holding tens of thousands of sockets, so memory would stop
	// just past pressure: with pressure next to max, the writer drives the
	// counter to max itself.
	host := readSockstat(t)
	maxPages := host.mem + 32768
	lowered := fmt.Sprintf("%d %d %d", host.mem+8192, maxPages-256, maxPages)
	pressuresBefore := netstatCounter(t, "TCPMemoryPressures")
	start := time.Now()
	restore := lowerSysctl(t, "net.ipv4.tcp_mem", lowered)
	defer restore()
	t.Logf("memory: sockstat mem %d pages; net.ipv4.tcp_mem lowered to %q", host.mem, lowered)

	writer := startClient(t, "hl-writer", []string{debianPython, hostLimitsScript, "writer", sinkPort, "64"}, "")
	defer writer.stop(t)
	w := writer.waitForLine(t, "ready", startupTimeout)
	t.Logf("memory: the writer's first fill %s bytes, %.1fs after lowering", strings.Fields(w)[1], time.Since(start).Seconds())

	// When the kernel enters pressure, polled (bounded by the waits below).
	var pressureAt time.Time
	peak := 0 // the highest sockstat mem seen, pages
	stopPolling, polled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stopPolling:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if data, err := os.ReadFile("/proc/net/netstat"); err == nil && pressureAt.IsZero() && tcpExt(string(data), "TCPMemoryPressures") > pressuresBefore {
				pressureAt = time.Now()
			}
			if data, err := os.ReadFile("/proc/net/sockstat"); err == nil {
				if s, err := parseSockstat(string(data)); err == nil {
					peak = max(peak, s.mem)
				}
			}
		}
	}()
	stopped := false
	stop := func() {
		if !stopped {
			close(stopPolling)
			<-polled
			stopped = true
			t.Logf("memory: sockstat mem peaked at %d pages (max threshold %d)", peak, maxPages)
		}
	}
	defer stop()
	exhausted := hook.waitFor(t, firingTimeout, "firing TCPStateMemoryExhausted", matchAlert("TCPStateMemoryExhausted", "firing"))
	pressure := hook.waitFor(t, firingTimeout, "firing TCPStateMemoryPressure", matchAlert("TCPStateMemoryPressure", "firing"))
	stop()
	mem := readSockstat(t).mem
	writer.stop(t)
	restore()
	held := time.Since(start)
	if pressureAt.IsZero() {
		t.Errorf("the kernel never reported memory pressure (TcpExtTCPMemoryPressures stayed at %d)", pressuresBefore)
	} else {
		t.Logf("memory: kernel pressure (TcpExtTCPMemoryPressures rose) %.1fs after lowering", pressureAt.Sub(start).Seconds())
	}
	for _, n := range []notification{pressure, exhausted} {
		a := n.Alerts[0]
		d := a.Annotations["description"]
		t.Logf("memory: %s %.1fs after lowering: %s", a.Labels["alertname"], n.received.Sub(start).Seconds(), d)
		for _, want := range []string{"process hl-writer", "peer 127.0.0.1 port " + sinkPort} {
			if !strings.Contains(d, want) {
				t.Errorf("%s does not name %q: %s", a.Labels["alertname"], want, d)
			}
		}
	}
	t.Logf("memory: sockstat mem %d pages at the page; tcp_mem lowered for %.1fs, restored", mem, held.Seconds())
	sink.stop(t)
}

func replayOrphans(t *testing.T, prom *process, hook *webhook, dropPort string) {
	sink := startClient(t, "hl-sink", []string{debianPython, hostLimitsScript, "sink", "4096"}, "")
	sinkPort := strings.Fields(sink.waitForLine(t, "ready", startupTimeout))[1]
	defer sink.stop(t)
	orphaner := startClient(t, "hl-orphaner", []string{debianPython, hostLimitsScript, "orphaner", sinkPort}, "")
	defer orphaner.stop(t)

	host := readSockstat(t)
	limit := host.orphans + 64
	abortsBefore := netstatCounter(t, "TCPAbortOnMemory")
	start := time.Now()
	restore := lowerSysctl(t, "net.ipv4.tcp_max_orphans", strconv.Itoa(limit))
	defer restore()
	t.Logf("orphans: sockstat orphan %d; net.ipv4.tcp_max_orphans lowered to %d", host.orphans, limit)

	// Half the limit and a little more: the warning, and no resets yet.
	batch := func(k int) string {
		want := "orphaned " + strconv.Itoa(orphanTotal(orphaner)+k)
		if _, err := fmt.Fprintln(orphaner.stdin, k); err != nil {
			t.Fatalf("hl-orphaner: %v", err)
		}
		return orphaner.waitForLine(t, want, firingTimeout)
	}
	batch(40)
	high := hook.waitFor(t, firingTimeout, "firing TCPStateOrphansHigh", matchAlert("TCPStateOrphansHigh", "firing"))
	d := high.alert("TCPStateOrphansHigh").Annotations["description"]
	t.Logf("orphans: TCPStateOrphansHigh %.1fs after lowering: %s", high.received.Sub(start).Seconds(), d)
	if want := "peer 127.0.0.1 port " + sinkPort; !strings.Contains(d, want) {
		t.Errorf("TCPStateOrphansHigh does not name %q: %s", want, d)
	}
	checkHostLimitPanels(t, prom, sinkPort, dropPort)
	// Past the limit: the kernel resets orphans.
	batch(40)
	var aborted time.Time
	for deadline := time.Now().Add(firingTimeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if netstatCounter(t, "TCPAbortOnMemory") > abortsBefore {
			aborted = time.Now()
			break
		}
	}
	restore()
	if aborted.IsZero() {
		t.Errorf("the kernel reset no orphan past tcp_max_orphans (TcpExtTCPAbortOnMemory stayed at %d)", abortsBefore)
	} else {
		t.Logf("orphans: kernel resets (TcpExtTCPAbortOnMemory %d -> %d) %.1fs after lowering",
			abortsBefore, netstatCounter(t, "TCPAbortOnMemory"), aborted.Sub(start).Seconds())
	}
	t.Logf("orphans: tcp_max_orphans lowered for %.1fs, restored", time.Since(start).Seconds())
}

// orphanTotal is the orphaner's last reported total.
func orphanTotal(p *clientProcess) int {
	lines := p.lines()
	for i := len(lines) - 1; i >= 0; i-- {
		if f := strings.Fields(lines[i]); len(f) == 2 && f[0] == "orphaned" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

type sockstat struct{ mem, orphans int }

// readSockstat reads the host's TCP mem (pages) and orphans.
func readSockstat(t *testing.T) sockstat {
	t.Helper()
	data, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseSockstat(string(data))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func parseSockstat(text string) (sockstat, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		var s sockstat
		for i := 1; i+1 < len(f); i += 2 {
			v, err := strconv.Atoi(f[i+1])
			if err != nil {
				return s, fmt.Errorf("/proc/net/sockstat: %s %q: %w", f[i], f[i+1], err)
			}
			switch f[i] {
			case "mem":
				s.mem = v
			case "orphan":
				s.orphans = v
			}
		}
		return s, nil
	}
	return sockstat{}, fmt.Errorf("/proc/net/sockstat has no TCP line: %q", text)
}

// netstatCounter reads one TcpExt counter from /proc/net/netstat (what
// `nstat -az TcpExtNAME` prints).
func netstatCounter(t *testing.T, name string) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		t.Fatal(err)
	}
	v := tcpExt(string(data), name)
	if v < 0 {
		t.Fatalf("/proc/net/netstat: no readable TcpExt %s", name)
	}
	return v
}

// tcpExt finds a TcpExt counter in /proc/net/netstat's text (a header
// line of names, then a line of values); -1 when it is not there.
func tcpExt(text, name string) int64 {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var header []string
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "TcpExt:" {
			continue
		}
		if header == nil {
			header = fields
			continue
		}
		for i, h := range header {
			if h == name && i < len(fields) {
				if v, err := strconv.ParseInt(fields[i], 10, 64); err == nil {
					return v
				}
			}
		}
		break
	}
	return -1
}

// lowerSysctl sets a host-wide sysctl and returns the function that puts
// the old value back (idempotent). The old value is also restored by
// t.Cleanup, by a SIGINT/SIGTERM handler, and by a guard process that
// outlives this one: it waits for EOF on a pipe from this process (its
// end closes however this process ends, SIGKILL included) and then writes
// the old value back.
func lowerSysctl(t *testing.T, name, value string) func() {
	t.Helper()
	path := filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
	oldBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Join(strings.Fields(string(oldBytes)), " ")
	write := func(v string) error {
		return os.WriteFile(path, []byte(v+"\n"), 0o644)
	}
	guard := exec.Command("/bin/sh", "-c", `cat >/dev/null; printf '%s\n' "$1" > "$2"`, "guard", old, path)
	guard.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // not killed by a terminal's ^C with us
	pipe, err := guard.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var guardErr strings.Builder
	guard.Stderr = &guardErr
	if err := guard.Start(); err != nil {
		t.Fatalf("starting the guard that restores %s: %v", name, err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	var once sync.Once
	restore := func() {
		once.Do(func() {
			signal.Stop(sigs)
			if err := write(old); err != nil {
				t.Errorf("restoring %s to %q: %v", name, old, err)
			}
			pipe.Close()
			if err := guard.Wait(); err != nil || guardErr.Len() > 0 {
				t.Errorf("the guard of %s: %v %s", name, err, guardErr.String())
			}
			got, _ := os.ReadFile(path)
			if strings.Join(strings.Fields(string(got)), " ") != old {
				t.Errorf("%s reads %q after the restore, want %q", name, got, old)
			}
		})
	}
	go func() {
		if s, ok := <-sigs; ok {
			_ = write(old)
			fmt.Fprintf(os.Stderr, "%v: restored %s to %q\n", s, name, old)
			os.Exit(1)
		}
	}()
	t.Cleanup(restore)
	if err := write(value); err != nil {
		restore()
		t.Fatalf("setting %s to %q: %v", name, value, err)
	}
	return restore
}

// checkHostLimitPanels runs the queries of the dashboards' orphan and
// listen-drop panels (TestEndToEnd makes no orphan and no drop) and
// requires a value above 0, the orphans' peer port and the dropping port.
func checkHostLimitPanels(t *testing.T, prom *process, orphanPort, dropPort string) {
	t.Helper()
	n := checkReplayPanels(t, prom, hostLimitsReason, func(q panelQuery, expr string, ss []series, vals []float64) {
		for label, port := range map[string]string{"remote_port": orphanPort, "local_port": dropPort} {
			if !strings.Contains(expr, "tcpstate_orphan_remote_sockets") && label == "remote_port" ||
				!strings.Contains(expr, "tcpstate_listen_drops_total") && label == "local_port" {
				continue
			}
			found := false
			for i, s := range ss {
				found = found || (s.Metric[label] == port && vals[i] > 0)
			}
			if !found {
				t.Errorf("%s [%s]: no series with %s=%q above 0: %v %v", q.panel, q.refID, label, port, ss, vals)
			}
		}
	})
	if n < 6 {
		t.Errorf("ran %d queries of the orphan and drop panels, want the 6 of both dashboards", n)
	}
	t.Logf("orphans: %d queries of the orphan and listen-drop panels return the replay's peer and port", n)
}
