package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// The incident replay (make incident): three real client libraries leak
// their pools against a loopback server that closes idle keep-alive
// connections; the exporter, Prometheus with the shipped rule file
// (unchanged, real `for` durations) and Alertmanager must page within
// pageBudget of each pool running dry; then the same program with the
// runbook's fix must keep CLOSE_WAIT from accumulating.
const (
	incidentEnv = "TCPSTATE_INCIDENT"
	// incidentPlotEnv names the PNG to write the Java client's timeline to
	// (docs/incident.png); unset, no plot.
	incidentPlotEnv = "TCPSTATE_INCIDENT_PLOT"

	goClientComm = "incident-go"

	incidentPoolMax = 20
	leakPace        = 2 * time.Second // one leaked connection every 2 s: dry after ~40 s
	dryWait         = time.Second     // a request waiting this long for a connection: dry
	serverIdle      = 2 * time.Second // the server closes connections idle this long
	fixedRequests   = 3 * incidentPoolMax
	fixedIdleEvery  = 10
	fixedIdlePause  = 3 * time.Second // longer than serverIdle: idle connections get closed
	fixedPace       = 200 * time.Millisecond

	// incidentScrape is the replay's scrape interval and timeout: short,
	// for a precise delay, but not 1 s, which a loaded CI machine can miss
	// (a failed scrape restarts every pending alert).
	incidentScrape = 2 * time.Second

	pageBudget = 3 * time.Minute // the bound from dry to page
	// pageHold keeps the leak a little after the page, so the timeline
	// shows the alert firing.
	pageHold = 15 * time.Second
	// deadHold: how long the page must stay up after the last of the Go
	// client's sockets left the kernel's tables (reset by a keepalive
	// probe) while the client still holds them.
	deadHold = 5 * time.Minute
	// finTimeout is net.ipv4.tcp_fin_timeout in the Go client's network
	// namespace: the server's closed connections linger in FIN_WAIT2 only
	// this long, so the client's first keepalive probe (Go's default
	// dialer: after 15 s idle) is answered with a reset.
	finTimeout = 3
	// fixedMaxCloseWait: a client that releases every connection holds at
	// most one idle connection the server closed, in its pool until reused
	// or evicted (urllib3 checks only when it hands it out).
	fixedMaxCloseWait = 1
)

var javaJars = []string{
	"/usr/share/java/httpclient.jar", "/usr/share/java/httpcore.jar",
	"/usr/share/java/commons-logging.jar", "/usr/share/java/commons-codec.jar",
}

const debianPython = "/usr/bin/python3"

// incidentClient is one client library under test.
type incidentClient struct {
	name  string // for logs and subtests
	comm  string // its process name, as the exporter reports it
	pool  string
	port  string
	leak  []string // command line, leaking; the URL is appended
	fixed []string // command line, with the runbook's fix
	// keepalive: the client uses TCP keepalive, in a network namespace
	// where the server's FIN_WAIT2 lingers only finTimeout seconds: its
	// leaked sockets leave CLOSE_WAIT for CLOSE (dropped from the tables,
	// still held) within seconds, and the page must stay up.
	keepalive bool
}

func (c incidentClient) url() string { return "http://127.0.0.1:" + c.port + "/" }

// incidentResult is what the replay measured for one client.
type incidentResult struct {
	client                  incidentClient
	start, dry, seenFull    time.Time
	paged                   time.Time
	fixedStart, fixedEnd    time.Time
	fixedCloseWait, fixedEs float64
}

func requireIncident(t *testing.T) {
	t.Helper()
	if os.Getenv(incidentEnv) != "1" {
		t.Skipf("incident replay with real clients, Prometheus and Alertmanager: run `make incident` (or %s=1 go test -count=1 -v -run TestIncident ./e2e/)", incidentEnv)
	}
	for _, bin := range []string{"prometheus", "prometheus-alertmanager", "java", "javac", debianPython, "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: `make incident` installs what the replay needs", bin)
		}
	}
	for _, jar := range javaJars {
		if _, err := os.Stat(jar); err != nil {
			t.Fatalf("%v: `make incident` installs Debian's libhttpclient-java", err)
		}
	}
	if out, err := exec.Command(debianPython, "-c", "import requests").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import requests (%v: %s): `make incident` installs Debian's python3-requests", debianPython, err, out)
	}
}

// TestIncident replays the incident with Apache HttpClient 4.5 (Java),
// Python requests and Go net/http in parallel, each against its own port
// of one server, watched by one exporter, Prometheus and Alertmanager.
func TestIncident(t *testing.T) {
	requireIncident(t)
	t.Parallel() // beside TestIncidentPortsAndBacklog
	begin := time.Now()

	classes := t.TempDir()
	javac := exec.Command("javac", "-Xlint:all,-path", "-cp", strings.Join(javaJars, ":"), "-d", classes, "../incident/java/PoolClient.java")
	if out, err := javac.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("javac PoolClient.java: %v\n%s", err, out)
	}

	srv := startServer(t)
	ns := keepaliveNetns(t)
	nsSrv := startServerIn(t, ns)
	inNs := []string{"ip", "netns", "exec", ns}
	java := strings.Join(append([]string{classes}, javaJars...), ":")
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
	n := strconv.Itoa(incidentPoolMax)
	clients := []incidentClient{
		{name: "java", comm: "java", pool: "java-search", port: srv[0],
			leak:  []string{"java", "-cp", java, "PoolClient", "leak", "URL", n, ms(leakPace), ms(dryWait), "600"},
			fixed: []string{"java", "-cp", java, "PoolClient", "fixed", "URL", n, ms(fixedPace), ms(dryWait), strconv.Itoa(fixedRequests), strconv.Itoa(fixedIdleEvery), ms(fixedIdlePause)}},
		{name: "python", comm: "python3", pool: "python-search", port: srv[1],
			leak:  []string{debianPython, "../incident/python/pool_client.py", "leak", "URL", n, secs(leakPace), secs(dryWait), "600"},
			fixed: []string{debianPython, "../incident/python/pool_client.py", "fixed", "URL", n, secs(fixedPace), secs(dryWait), strconv.Itoa(fixedRequests), strconv.Itoa(fixedIdleEvery), secs(fixedIdlePause)}},
		// Go's default dialer (TCP keepalive after 15 s idle), in a network
		// namespace where a probe on a leaked socket is reset: see
		// docs/incident.md, "Go and TCP keepalive".
		{name: "go", comm: goClientComm, pool: "go-search", port: nsSrv, keepalive: true,
			leak:  append(slices.Clone(inNs), incidentGoBin, "-mode", "leak", "-pool", n, "-pace", leakPace.String(), "-wait", dryWait.String(), "-keepalive=0s", "-hold", "15m", "-url", "URL"),
			fixed: append(slices.Clone(inNs), incidentGoBin, "-mode", "fixed", "-pool", n, "-pace", fixedPace.String(), "-wait", dryWait.String(), "-keepalive=0s", "-requests", strconv.Itoa(fixedRequests), "-idle-every", strconv.Itoa(fixedIdleEvery), "-idle-pause", fixedIdlePause.String(), "-url", "URL")},
	}

	hook := startWebhook(t)
	am := startAlertmanager(t, hook.url)
	exp := startExporter(t, writeIncidentConfig(t, clients))
	rules := shippedRules(t)
	prom := startPrometheusScraping(t, exp.addr, am.addr, rules.path, incidentScrape)
	t.Run("rules healthy", func(t *testing.T) {
		waitForValue(t, prom, fmt.Sprintf(`count(tcpstate_pool_max_connections{job=%q} == %d)`, jobName, incidentPoolMax), float64(len(clients)))
		checkRulesHealthy(t, prom, rules)
	})
	t.Logf("exporter, Prometheus and Alertmanager ready %.1fs after the start", time.Since(begin).Seconds())

	results := make([]*incidentResult, len(clients))
	t.Run("clients", func(t *testing.T) {
		for i, c := range clients {
			results[i] = &incidentResult{client: c}
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				replayClient(t, prom, hook, exp.addr, results[i])
			})
		}
	})

	for _, r := range results {
		if r.paged.IsZero() {
			continue
		}
		t.Logf("%-6s pool %-13s dry after %5.1fs; Prometheus showed %d of %d %4.1fs after dry; page %6.1fs after dry; fixed: %d requests in %.0fs, CLOSE_WAIT at most %.0f (established up to %.0f)",
			r.client.name, r.client.pool, r.dry.Sub(r.start).Seconds(), incidentPoolMax, incidentPoolMax,
			max(0, r.seenFull.Sub(r.dry).Seconds()), r.paged.Sub(r.dry).Seconds(), fixedRequests,
			r.fixedEnd.Sub(r.fixedStart).Seconds(), r.fixedCloseWait, r.fixedEs)
	}
	t.Logf("replay wall time %.0fs", time.Since(begin).Seconds())
	if path := os.Getenv(incidentPlotEnv); path != "" && !t.Failed() {
		if err := writeIncidentPlot(prom, results[0], path); err != nil {
			t.Errorf("plot: %v", err)
		} else {
			t.Logf("wrote %s", path)
		}
	}
}

// replayClient runs one client's leak to the page, then its fix.
func replayClient(t *testing.T, prom *process, hook *webhook, instance string, r *incidentResult) {
	c := r.client
	r.start = time.Now()
	leak := startClient(t, c.name+" leak", c.leak, c.url())
	dryLine := leak.waitForLine(t, "dry ", 2*incidentPoolMax*(leakPace+dryWait)+time.Minute)
	ms, err := strconv.ParseInt(strings.Fields(dryLine)[1][:len(strings.Fields(dryLine)[1])-1], 10, 64)
	if err != nil {
		t.Fatalf("%s: bad dry line %q", c.name, dryLine)
	}
	r.dry = time.UnixMilli(ms)
	t.Logf("%s: %s", c.name, dryLine)

	// The exporter names the process, the route and the pool, with the
	// exact count: of dead sockets, CLOSE_WAIT and CLOSE (reset, held).
	waitForValue(t, prom, fmt.Sprintf(`sum(tcpstate_process_remote_connections{job=%q,process=%q,remote_address="127.0.0.1",remote_port=%q,state=~"close_wait|close"})`, jobName, c.comm, c.port), incidentPoolMax)
	waitForValue(t, prom, fmt.Sprintf(`sum(tcpstate_pool_connections{job=%q,pool=%q,state=~"close_wait|close"})`, jobName, c.pool), incidentPoolMax)
	r.seenFull = time.Now()
	var gone time.Time
	if c.keepalive {
		// Keepalive probes reset the leaked sockets within seconds of the
		// server's FIN: all of them leave the tables, still held, long
		// before the pool has been dry for the page's 2 minutes.
		waitForValue(t, prom, fmt.Sprintf(`tcpstate_pool_connections{job=%q,pool=%q,state="close"}`, jobName, c.pool), incidentPoolMax)
		gone = time.Now()
		t.Logf("%s: all %d leaked sockets reset and dropped from the tables, still held (state close), %.1fs after dry", c.name, incidentPoolMax, gone.Sub(r.dry).Seconds())
	}

	isPage := func(n notification) bool {
		for _, a := range n.Alerts {
			if a.Labels["alertname"] == "TCPStatePoolExhausted" && a.Status == "firing" && a.Labels["pool"] == c.pool {
				return true
			}
		}
		return false
	}
	n := hook.waitFor(t, time.Until(r.dry.Add(pageBudget+30*time.Second)), "firing TCPStatePoolExhausted for "+c.pool, isPage)
	r.paged = n.received
	delay := r.paged.Sub(r.dry)
	t.Logf("%s: paged %.1fs after the pool ran dry", c.name, delay.Seconds())
	if delay > pageBudget {
		t.Errorf("%s: page %v after the pool ran dry, want at most %v", c.name, delay.Round(time.Second), pageBudget)
	}
	var page alert
	for _, a := range n.Alerts {
		if a.Labels["pool"] == c.pool {
			page = a
		}
	}
	want := map[string]string{"alertname": "TCPStatePoolExhausted", "severity": "critical", "job": jobName, "instance": instance,
		"pool": c.pool, "process": "^" + c.comm + "$", "remote_address": "127.0.0.1", "remote_port": c.port}
	for k, v := range want {
		if page.Labels[k] != v {
			t.Errorf("%s: page label %s = %q, want %q (labels %v)", c.name, k, page.Labels[k], v, page.Labels)
		}
	}
	if d := page.Annotations["description"]; !strings.Contains(d, fmt.Sprintf("%d sockets of pool %q", incidentPoolMax, c.pool)) ||
		!strings.Contains(d, fmt.Sprintf("maximum is %d.", incidentPoolMax)) {
		t.Errorf("%s: description does not quote %d of %d: %q", c.name, incidentPoolMax, incidentPoolMax, d)
	}

	if c.keepalive {
		holdPage(t, prom, hook, c, r.paged, gone)
	}

	// Release: the process exits and its sockets close.
	time.Sleep(pageHold)
	leak.stop(t)
	waitForValue(t, prom, fmt.Sprintf(`sum(tcpstate_pool_connections{job=%q,pool=%q,state=~"close_wait|close"})`, jobName, c.pool), 0)

	// The same program with the runbook's fix.
	r.fixedStart = time.Now()
	fixed := startClient(t, c.name+" fixed", c.fixed, c.url())
	line := fixed.waitForLine(t, "fixed ok ", time.Duration(fixedRequests)*(fixedPace+dryWait)+time.Minute)
	if line != fmt.Sprintf("fixed ok %d", fixedRequests) {
		t.Errorf("%s fixed: %q, want %d requests", c.name, line, fixedRequests)
	}
	fixed.wait(t)
	r.fixedEnd = time.Now()
	// Let Prometheus scrape the end of the phase, then look at all of it.
	time.Sleep(2 * time.Second)
	window := fmt.Sprintf("%ds", int(time.Since(r.fixedStart).Seconds())+1)
	// Dead slots: CLOSE_WAIT, and CLOSE for a keepalive client; the sum
	// of each state's highest count bounds their sum at any time. (A
	// subquery would look back past the window's start, to the leak.)
	r.fixedCloseWait = queryOne(t, prom, fmt.Sprintf(`sum(max_over_time(tcpstate_pool_connections{job=%q,pool=%q,state=~"close_wait|close"}[%s]))`, jobName, c.pool, window))
	r.fixedEs = queryOne(t, prom, fmt.Sprintf(`max_over_time(tcpstate_pool_connections{job=%q,pool=%q,state="established"}[%s])`, jobName, c.pool, window))
	if r.fixedEs < 1 {
		t.Errorf("%s fixed: the exporter never saw an established connection of the pool: it did not watch the fixed client", c.name)
	}
	if r.fixedCloseWait > fixedMaxCloseWait {
		t.Errorf("%s fixed: CLOSE_WAIT reached %.0f during %d requests, want at most %d", c.name, r.fixedCloseWait, fixedRequests, fixedMaxCloseWait)
	}
	t.Logf("%s fixed: %d requests, CLOSE_WAIT at most %.0f, established at most %.0f", c.name, fixedRequests, r.fixedCloseWait, r.fixedEs)
}

// holdPage checks that TCPStatePoolExhausted, paged at paged, stays firing
// until deadHold after gone, when every leaked socket of c had left the
// kernel's tables: firing at every evaluation since the page, and never
// resolved.
func holdPage(t *testing.T, prom *process, hook *webhook, c incidentClient, paged, gone time.Time) {
	t.Helper()
	time.Sleep(time.Until(gone.Add(deadHold)))
	window := time.Since(paged)
	firing := fmt.Sprintf(`ALERTS{alertname="TCPStatePoolExhausted",alertstate="firing",pool=%q}`, c.pool)
	// Rules are evaluated every second: a window with a gap has fewer.
	if n := queryOne(t, prom, fmt.Sprintf(`count_over_time(%s[%ds])`, firing, int(window.Seconds()))); n < 0.9*window.Seconds() {
		t.Errorf("%s: TCPStatePoolExhausted firing at %.0f evaluations of the %v since the page, want about %.0f", c.name, n, window.Round(time.Second), window.Seconds())
	}
	if n, ok := hook.first(func(n notification) bool {
		for _, a := range n.Alerts {
			if a.Labels["alertname"] == "TCPStatePoolExhausted" && a.Labels["pool"] == c.pool && a.Status == "resolved" {
				return true
			}
		}
		return false
	}); ok {
		t.Errorf("%s: TCPStatePoolExhausted resolved at %s while the pool was dry (sockets left the tables at %s)", c.name, n.received.Format(time.TimeOnly), gone.Format(time.TimeOnly))
	}
	if v := queryOne(t, prom, fmt.Sprintf(`tcpstate_pool_connections{job=%q,pool=%q,state="close"}`, jobName, c.pool)); v != incidentPoolMax {
		t.Errorf("%s: %v sockets in state close after the hold, want %d", c.name, v, incidentPoolMax)
	}
	t.Logf("%s: page firing for %v, %v after the last socket left the tables", c.name, window.Round(time.Second), time.Since(gone).Round(time.Second))
}

// keepaliveNetns creates a network namespace with its loopback up and
// net.ipv4.tcp_fin_timeout set to finTimeout, deleted when the test ends.
func keepaliveNetns(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("tcpst-inc-%d", os.Getpid())
	for _, args := range [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", ns, "sysctl", "-q", "-w", fmt.Sprintf("net.ipv4.tcp_fin_timeout=%d", finTimeout)},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if args[2] == "add" {
			t.Cleanup(func() {
				if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
					t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
				}
			})
		}
	}
	return ns
}

// startServerIn runs the keep-alive server with one loopback listener in
// network namespace ns and returns its port.
func startServerIn(t *testing.T, ns string) string {
	t.Helper()
	s := startClient(t, "server in "+ns, []string{"ip", "netns", "exec", ns, incidentServerBin, "-idle-timeout", serverIdle.String(),
		"-listen", "127.0.0.1:0"}, "")
	s.waitForLine(t, "ready", startupTimeout)
	for _, l := range s.lines() {
		if a, ok := strings.CutPrefix(l, "listening "); ok {
			return a[strings.LastIndexByte(a, ':')+1:]
		}
	}
	t.Fatalf("server in %s printed %q, want a listening line", ns, s.lines())
	return ""
}

// queryOne evaluates expr now and returns its single value.
func queryOne(t *testing.T, prom *process, expr string) float64 {
	t.Helper()
	q, _, err := instantQuery(prom, expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	_, vals, err := q.samples()
	if err != nil || len(vals) != 1 {
		t.Fatalf("%s: want one value, got %v (%v)", expr, vals, err)
	}
	return vals[0]
}

// startServer runs the keep-alive server with three loopback listeners and
// returns their ports.
func startServer(t *testing.T) []string {
	t.Helper()
	s := startClient(t, "server", []string{incidentServerBin, "-idle-timeout", serverIdle.String(),
		"-listen", "127.0.0.1:0", "-listen", "127.0.0.1:0", "-listen", "127.0.0.1:0"}, "")
	s.waitForLine(t, "ready", startupTimeout)
	var ports []string
	for _, l := range s.lines() {
		if a, ok := strings.CutPrefix(l, "listening "); ok {
			ports = append(ports, a[strings.LastIndexByte(a, ':')+1:])
		}
	}
	if len(ports) != 3 {
		t.Fatalf("server printed %q, want three listening lines", s.lines())
	}
	return ports
}

// writeIncidentConfig declares one pool per client: its process, the
// server's address and its port, the pool's maximum.
func writeIncidentConfig(t *testing.T, clients []incidentClient) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("pools:\n")
	for _, c := range clients {
		fmt.Fprintf(&b, "  - name: %s\n    process: \"^%s$\"\n    remote_address: 127.0.0.1\n    remote_port: %s\n    max: %d\n",
			c.pool, c.comm, c.port, incidentPoolMax)
	}
	return writeFile(t, t.TempDir(), "pools.yml", b.String())
}

// shippedRules is the rule file as shipped, with the names of its rules
// for checkRulesHealthy.
func shippedRules(t *testing.T) ruleCopy {
	t.Helper()
	path, err := filepath.Abs(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseRules(text)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c := ruleCopy{path: path}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			c.rules = append(c.rules, g.Name+"/"+r.Record+r.Alert)
		}
	}
	return c
}

// clientProcess is a client (or the server) the replay runs: its output
// lines as they come, its stdin held open until stop.
type clientProcess struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *testutil.SyncBuffer
	mu     sync.Mutex
	out    []string
	more   chan struct{} // closed and replaced on every line
	done   chan struct{}
	err    error
}

func startClient(t *testing.T, name string, argv []string, url string) *clientProcess {
	t.Helper()
	args := slices.Clone(argv)
	for i, a := range args {
		if a == "URL" {
			args[i] = url
		}
	}
	p := &clientProcess{name: name, cmd: exec.Command(args[0], args[1:]...), stderr: &testutil.SyncBuffer{},
		more: make(chan struct{}), done: make(chan struct{})}
	p.cmd.SysProcAttr = diesWithTest()
	p.cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s (%s) printed:\n%s\nstderr:\n%s", name, strings.Join(args, " "), strings.Join(p.lines(), "\n"), tail(p.stderr.String(), 40))
		}
	})
	return p
}

func (p *clientProcess) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.out)
}

// waitForLine returns the first output line that starts with prefix; it
// fails the test if the process ends or timeout passes first.
func (p *clientProcess) waitForLine(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		more := p.more
		for _, l := range p.out {
			if strings.HasPrefix(l, prefix) {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-more:
		case <-p.done:
			if l := p.lastWith(prefix); l != "" {
				return l
			}
			t.Fatalf("%s ended (%v) without a %q line; stderr:\n%s", p.name, p.err, prefix, tail(p.stderr.String(), 20))
		case <-deadline:
			t.Fatalf("%s: no %q line within %v; printed %q", p.name, prefix, timeout, p.lines())
		}
	}
}

func (p *clientProcess) lastWith(prefix string) string {
	for _, l := range p.lines() {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// wait waits for the process to exit by itself and fails on an error exit.
func (p *clientProcess) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit", p.name)
	}
	if p.err != nil {
		t.Errorf("%s: %v; stderr:\n%s", p.name, p.err, tail(p.stderr.String(), 20))
	}
}

// stop closes stdin, which ends a holding client, and kills it if it has
// not exited 10 seconds later.
func (p *clientProcess) stop(t *testing.T) {
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s (pid %d) still running 10s after its stdin closed: killed", p.name, p.cmd.Process.Pid)
	}
}
