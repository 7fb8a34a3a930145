package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The replay of the two other ways TCP runs out (make incident, beside the
// pool replay): inside a network namespace the test creates, with an
// ephemeral range narrowed to 200 usable ports and tcp_tw_reuse off,
//
//   - a Python requests client without a Session (a connection per
//     request, each leaving its port in TIME_WAIT) speeds up at its peak
//     until connect() fails: TCPStateEphemeralPortsExhausting must reach
//     the webhook before that first failure, while the same client with one
//     Session toward another port of the server never comes near the range;
//   - an HTTP server with a backlog of 4 stops accepting while a requests
//     client keeps calling it: the client times out, TCPStateAcceptQueueFull
//     pages, and once the server accepts again the alert resolves.
//
// The exporter runs in the namespace (its sysctls and its sockets are the
// namespace's); Prometheus and Alertmanager run on the host's loopback and
// scrape it through a relay in the test. The rules are the shipped file,
// unchanged. About 3 minutes, run in parallel with TestIncident.
const (
	portRangeLow, portRangeHigh = 50000, 50239
	reservedPorts               = "50000-50039" // 200 usable
	usablePorts                 = 200

	leakPort, fixedPort, backlogPort = "8081", "8082", "8083"
	backlogSize                      = 4

	// The client's pace: 3 requests a second hold about 180 ports (90%) in
	// TIME_WAIT; from surgeAfter on, 8 a second exhaust the range within
	// seconds. The warning (80% for its 1m) is due about 2 minutes in.
	leakRate1, leakRate2 = "3", "8"
	surgeAfter           = 150 * time.Second
)

func TestIncidentPortsAndBacklog(t *testing.T) {
	requireIncident(t)
	if os.Geteuid() != 0 {
		t.Fatal("the replay creates a network namespace: run it as root")
	}
	t.Parallel()
	begin := time.Now()
	ns := fmt.Sprintf("tcpst-ports-%d", os.Getpid())
	in := newNamespace(t, ns, map[string]string{
		"net.ipv4.ip_local_port_range":     fmt.Sprintf("%d %d", portRangeLow, portRangeHigh),
		"net.ipv4.ip_local_reserved_ports": reservedPorts,
		"net.ipv4.tcp_tw_reuse":            "0",
	})

	srv := startClient(t, "server", append(in, incidentServerBin, "-idle-timeout", "10m",
		"-listen", "127.0.0.1:"+leakPort, "-listen", "127.0.0.1:"+fixedPort), "")
	srv.waitForLine(t, "ready", startupTimeout)

	hook := startWebhook(t)
	am := startAlertmanager(t, hook.url)
	inner := "127.0.0.1:9951"
	relay := relayInto(t, ns, inner)
	startProcess(t, "tcpstate_exporter (in "+ns+")", relay, "/", "ip", "netns", "exec", ns, exporterBin, "--web.listen-address="+inner)
	rules := shippedRules(t)
	prom := startPrometheusScraping(t, relay, am.addr, rules.path, incidentScrape)
	waitForValue(t, prom, fmt.Sprintf(`tcpstate_ephemeral_ports_usable{job=%q}`, jobName), usablePorts)
	t.Logf("namespace %s, exporter, Prometheus and Alertmanager ready %.1fs after the start", ns, time.Since(begin).Seconds())

	t.Run("ephemeral ports", func(t *testing.T) {
		t.Parallel()
		url := func(port string) string { return "http://127.0.0.1:" + port + "/" }
		surge := strconv.FormatFloat(surgeAfter.Seconds(), 'f', -1, 64)
		fixed := startClient(t, "python session", append(in, debianPython, "../incident/python/port_client.py", "session", "URL", leakRate1, surge, leakRate2), url(fixedPort))
		start := time.Now()
		leak := startClient(t, "python without session", append(in, debianPython, "../incident/python/port_client.py", "new", "URL", leakRate1, surge, leakRate2, "300"), url(leakPort))
		line := leak.waitForLine(t, "first-failure ", surgeAfter+2*time.Minute)
		f := strings.Fields(line)
		ms, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("bad line %q", line)
		}
		failed := time.UnixMilli(ms)
		if !strings.Contains(line, "Cannot assign requested address") {
			t.Errorf("the first failure is not EADDRNOTAVAIL: %q", line)
		}
		t.Logf("first connect() failure %.0fs after the start: %s", failed.Sub(start).Seconds(), strings.Join(f[2:], " "))

		warned := func(n notification) bool {
			a := n.alert("TCPStateEphemeralPortsExhausting")
			return a.Status == "firing" && a.Labels["remote_port"] == leakPort
		}
		n := hook.waitFor(t, 30*time.Second, "firing TCPStateEphemeralPortsExhausting for port "+leakPort, warned)
		if !n.received.Before(failed) {
			t.Errorf("the warning arrived %.1fs after the first failure, want before", n.received.Sub(failed).Seconds())
		} else {
			t.Logf("warning %.0fs after the start, %.1fs before the first failure", n.received.Sub(start).Seconds(), failed.Sub(n.received).Seconds())
		}
		a := n.alert("TCPStateEphemeralPortsExhausting")
		for k, v := range map[string]string{"severity": "warning", "remote_address": "127.0.0.1", "remote_port": leakPort, "job": jobName} {
			if a.Labels[k] != v {
				t.Errorf("warning label %s = %q, want %q (%v)", k, a.Labels[k], v, a.Labels)
			}
		}

		// The fix: one Session, the same pace, through the surge: it never
		// needs a second port, and nothing warns about it.
		time.Sleep(2 * incidentScrape)
		out, err := exec.Command("ip", "netns", "exec", ns, "ss", "-Htan", "dport = :"+fixedPort).CombinedOutput()
		if err != nil {
			t.Fatalf("ss in %s: %v\n%s", ns, err, out)
		}
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "ESTAB") {
			t.Errorf("the client with a Session holds %q toward port %s, want one established connection", lines, fixedPort)
		}
		fixed.stop(t)
		if l := fixed.lastWith("fixed ok "); !strings.HasSuffix(l, " failed 0") {
			t.Errorf("the client with a Session: %q, want no failure", l)
		}
		window := fmt.Sprintf("%ds", int(time.Since(start).Seconds())+1)
		// One port is under the floor of 1% of 200: the destination was
		// never reported.
		used := fmt.Sprintf(`max_over_time(tcpstate_ephemeral_ports_used{job=%q,remote_port=%q}[%s])`, jobName, fixedPort, window)
		if q, _, err := instantQuery(prom, used); err != nil {
			t.Error(err)
		} else if _, vals, _ := q.samples(); len(vals) > 0 {
			t.Errorf("the client with a Session held up to %v ports, want 1 (not reported)", vals)
		}
		q, _, err := instantQuery(prom, fmt.Sprintf(`ALERTS{alertname="TCPStateEphemeralPortsExhausting",remote_port=%q}`, fixedPort))
		if _, vals, _ := q.samples(); err != nil || len(vals) > 0 {
			t.Errorf("the client with a Session: alerts %v (%v), want none", vals, err)
		}
	})

	t.Run("accept queue", func(t *testing.T) {
		t.Parallel()
		server := startClient(t, "backlog server", append(in, debianPython, "../incident/python/backlog.py", "server", "127.0.0.1", backlogPort, strconv.Itoa(backlogSize)), "")
		server.waitForLine(t, "ready", startupTimeout)
		client := startClient(t, "backlog client", append(in, debianPython, "../incident/python/backlog.py", "client", "URL", "0.5", "1"), "http://127.0.0.1:"+backlogPort+"/")
		client.waitForLine(t, "ok ", startupTimeout)
		limit := fmt.Sprintf(`tcpstate_accept_queue_max_sockets{job=%q,local_port=%q}`, jobName, backlogPort)
		waitForValue(t, prom, limit, backlogSize)

		fmt.Fprintln(server.stdin, "stop")
		server.waitForLine(t, "stopped", startupTimeout)
		stopped := time.Now()
		client.waitForLine(t, "timeout ", time.Minute)
		waitForValue(t, prom, fmt.Sprintf(`tcpstate_accept_queue_sockets{job=%q,local_port=%q}`, jobName, backlogPort), backlogSize+1)
		page := hook.waitFor(t, 3*time.Minute, "firing TCPStateAcceptQueueFull", func(n notification) bool {
			a := n.alert("TCPStateAcceptQueueFull")
			return a.Status == "firing" && a.Labels["local_port"] == backlogPort
		})
		t.Logf("page %.0fs after the server stopped accepting: %s", page.received.Sub(stopped).Seconds(), page.alert("TCPStateAcceptQueueFull").Annotations["summary"])
		// Both limits are near now: the dashboards' panels on them show it.
		checkPortPanels(t, prom, backlogPort)

		fmt.Fprintln(server.stdin, "accept")
		server.waitForLine(t, "accepting", startupTimeout)
		resumed := time.Now()
		hook.waitFor(t, time.Minute, "resolved TCPStateAcceptQueueFull", func(n notification) bool {
			a := n.alert("TCPStateAcceptQueueFull")
			return a.Status == "resolved" && a.Labels["local_port"] == backlogPort && n.received.After(resumed)
		})
		t.Logf("resolved %.0fs after the server accepted again", time.Since(resumed).Seconds())
		before := len(client.lines())
		deadline := time.Now().Add(30 * time.Second)
		for ok := false; !ok; {
			for _, l := range client.lines()[before:] {
				ok = ok || strings.HasPrefix(l, "ok ")
			}
			if !ok && time.Now().After(deadline) {
				t.Fatalf("the client got no answer after the server accepted again: %q", client.lines()[before:])
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Cleanup(func() { t.Logf("ports and backlog replay: %.0fs", time.Since(begin).Seconds()) })
}

// newNamespace creates a network namespace with its loopback up and the
// given sysctls, deletes it when the test ends, and returns the command
// prefix that runs a program in it.
func newNamespace(t *testing.T, name string, sysctls map[string]string) []string {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	in := []string{"ip", "netns", "exec", name}
	run(append(in, "ip", "link", "set", "lo", "up")...)
	for k, v := range sysctls {
		run(append(in, "sysctl", "-q", "-w", k+"="+v)...)
	}
	return in
}

// relayInto listens on the host's loopback and relays every connection to
// addr inside the network namespace ns, so that Prometheus on the host can
// scrape an exporter that must run in the namespace. It returns the
// address it listens on.
func relayInto(t *testing.T, ns, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := dialInNamespace(ns, addr)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); close(done) }()
				_, _ = io.Copy(c, up)
				c.(*net.TCPConn).CloseWrite()
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}

// dialInNamespace connects to addr from inside the network namespace ns: a
// socket belongs to the namespace of the thread that creates it.
func dialInNamespace(ns, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked, and so ends with the goroutine, if it
		// cannot return to its own namespace.
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer own.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// checkPortPanels runs the queries of the dashboards' ephemeral-port and
// accept-queue panels (TestEndToEnd cannot fill them) and requires data
// and the accept queue at 100% on port.
func checkPortPanels(t *testing.T, prom *process, port string) {
	t.Helper()
	n := checkReplayPanels(t, prom, portsReplayReason, func(q panelQuery, _ string, ss []series, vals []float64) {
		if !strings.Contains(q.panel, "Accept queue fill") {
			return
		}
		full := false
		for i, s := range ss {
			full = full || (s.Metric["local_port"] == port && vals[i] >= 1)
		}
		if !full {
			t.Errorf("%s: port %s not at 100%%: %v %v", q.panel, port, ss, vals)
		}
	})
	if n < 6 {
		t.Errorf("ran %d queries of the port panels, want the 6 of both dashboards", n)
	}
}
