package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The file-descriptor replay (make incident, beside the pool replays): a
// client with no pool bound — Python requests creating a Session per
// request and keeping it, never closed — runs under
// `prlimit --nofile=fdLimit` against the loopback server that closes idle
// connections. Each leaked session holds one socket in CLOSE_WAIT and one
// descriptor, until the client logs its first "Too many open files".
// TCPStateProcessFdsExhausting must reach Alertmanager before that first
// EMFILE, TCPStateProcessFdsExhausted within pageBudget of the process
// reaching its limit; the same client with the runbook's fix (one shared
// Session), at the same pace under the same limit, stays quiet.
//
// The rules are rendered from the mixin with one knob of _config changed:
// TCPStateProcessFdsExhausting's `for` at fdWarnFor instead of the shipped
// 5 minutes (the expressions, the page's `for` and every description as
// shipped). The client is new to the exporter, so the warning comes from
// its new-process condition: the last ten minutes' line reaches the limit
// within 20 minutes, held for fdWarnFor. A leak of one descriptor every
// fdLeakPace (80 a minute) fills 256 in about 3 minutes: the warning is
// due about a minute and a half in, more than a minute before the first
// EMFILE, and the page (shipped `for`: 2 minutes) two minutes after the
// limit. With the shipped 5 minutes the same replay needs a leak that
// takes more than about 5½ minutes to fill the limit (a faster one is only
// paged: docs/rules.md); that run took 14 minutes, too long for every CI
// run. About 6 minutes, in parallel with the other replays.
const (
	fdLimit    = 256
	fdLeakPace = 750 * time.Millisecond
	// fdWarnFor is TCPStateProcessFdsExhausting's `for` in the replay.
	fdWarnFor  = "1m"
	fdLeakComm = "fds-leak"
	fdFixComm  = "fds-fixed"
	// fdScrape is the replay's scrape interval and timeout: longer than
	// the pool replay's, so that a scrape of a host that also holds other
	// tests' tens of thousands of sockets, on two loaded cores, still ends
	// in time (a failed scrape restarts the warning's 5 minutes).
	fdScrape = 5 * time.Second
	// fdFixedMax bounds the fixed client's descriptors: the interpreter's
	// own and the one kept-alive connection (a second while the server's
	// idle close and the next request cross).
	fdFixedMax = 8
)

func TestIncidentFds(t *testing.T) {
	requireIncident(t)
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) is needed: %v", err)
	}
	t.Parallel()
	begin := time.Now()

	srv := startClient(t, "server", []string{incidentServerBin, "-idle-timeout", serverIdle.String(), "-listen", "127.0.0.1:0"}, "")
	srv.waitForLine(t, "ready", startupTimeout)
	port := ""
	for _, l := range srv.lines() {
		if a, ok := strings.CutPrefix(l, "listening "); ok {
			port = a[strings.LastIndexByte(a, ':')+1:]
		}
	}
	if port == "" {
		t.Fatalf("server printed %q, want a listening line", srv.lines())
	}
	url := "http://127.0.0.1:" + port + "/"

	hook := startWebhook(t)
	am := startAlertmanager(t, hook.url)
	exp := startExporter(t, writeFile(t, t.TempDir(), "pools.yml", "pools: []\n"))
	rules := renderFdRules(t)
	prom := startPrometheusScraping(t, exp.addr, am.addr, rules.path, fdScrape)
	waitForValue(t, prom, fmt.Sprintf(`tcpstate_scrape_collector_success{job=%q,collector="process"}`, jobName), 1)
	t.Logf("exporter, Prometheus and Alertmanager ready %.1fs after the start", time.Since(begin).Seconds())

	limit := "--nofile=" + strconv.Itoa(fdLimit) + ":" + strconv.Itoa(fdLimit)
	pace := strconv.FormatFloat(fdLeakPace.Seconds(), 'f', -1, 64)
	fixed := startClient(t, "python fixed", []string{"prlimit", limit, debianPython, "../incident/python/fd_client.py", "fixed", fdFixComm, "URL", pace}, url)
	start := time.Now()
	leak := startClient(t, "python leak", []string{"prlimit", limit, debianPython, "../incident/python/fd_client.py", "leak", fdLeakComm, "URL", pace}, url)
	leak.waitForLine(t, "ready", startupTimeout)
	fixed.waitForLine(t, "ready", startupTimeout)

	// The first EMFILE, as the client logs it.
	line := leak.waitForLine(t, "first-", time.Duration(fdLimit)*fdLeakPace+3*time.Minute)
	f := strings.Fields(line)
	if f[0] != "first-emfile" || !strings.Contains(line, "Too many open files") {
		t.Fatalf("the leaking client's first failure is not EMFILE: %q", line)
	}
	ms, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatalf("bad line %q", line)
	}
	emfile := time.UnixMilli(ms)
	// The process reached its limit with its last request that succeeded:
	// that one took the last free descriptor.
	lastOK, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || lastOK == 0 {
		t.Fatalf("bad line %q: no last request that succeeded", line)
	}
	reached := time.UnixMilli(lastOK)
	t.Logf("first EMFILE %.0fs after the leak started, %.1fs after the process took its last descriptor: %s", emfile.Sub(start).Seconds(), emfile.Sub(reached).Seconds(), strings.Join(f[3:], " "))

	// The warning reached Alertmanager (its webhook) before that.
	proc := func(name string) func(notification) bool {
		return func(n notification) bool {
			for _, a := range n.Alerts {
				if a.Labels["alertname"] == name && a.Status == "firing" && a.Labels["process"] == fdLeakComm {
					return true
				}
			}
			return false
		}
	}
	if n, ok := hook.first(proc("TCPStateProcessFdsExhausting")); !ok || !n.received.Before(emfile) {
		// Say why, if scrapes failed: each one restarts the warning's `for`.
		failed := queryOne(t, prom, fmt.Sprintf(`count_over_time(up{job=%q}[%ds]) - sum_over_time(up{job=%q}[%ds])`, jobName, int(time.Since(start).Seconds())+1, jobName, int(time.Since(start).Seconds())+1))
		t.Logf("no warning before the first EMFILE; %.0f scrapes of the exporter failed since the leak started", failed)
	}
	warn := hook.waitFor(t, time.Minute, "firing TCPStateProcessFdsExhausting for "+fdLeakComm, proc("TCPStateProcessFdsExhausting"))
	if !warn.received.Before(emfile) {
		t.Errorf("the warning arrived %.1fs after the first EMFILE, want before", warn.received.Sub(emfile).Seconds())
	} else {
		t.Logf("warning %.0fs after the leak started, %.1fs before the first EMFILE", warn.received.Sub(start).Seconds(), emfile.Sub(warn.received).Seconds())
	}
	checkFdAlert(t, warn, "TCPStateProcessFdsExhausting", "warning", port)

	// The exporter's numbers at the limit are exact: every descriptor of
	// the 256 in use (the interpreter's few, the rest leaked sockets).
	sel := fmt.Sprintf(`{job=%q,process=%q,netns="host"}`, jobName, fdLeakComm)
	waitForValue(t, prom, "tcpstate_process_max_fds"+sel, fdLimit)
	waitForValue(t, prom, "tcpstate_process_open_fds"+sel, fdLimit)
	dead := queryOne(t, prom, fmt.Sprintf(`sum(tcpstate_process_connections{job=%q,process=%q,state=~"close_wait|close"})`, jobName, fdLeakComm))
	t.Logf("the exporter shows %s at %d of %d fds, %.0f of its sockets CLOSE_WAIT or CLOSE", fdLeakComm, fdLimit, fdLimit, dead)
	if dead < fdLimit-16 {
		t.Errorf("%.0f sockets of %s in CLOSE_WAIT or CLOSE at its limit, want nearly all of its %d fds", dead, fdLeakComm, fdLimit)
	}

	// The page, within pageBudget of reaching the limit.
	page := hook.waitFor(t, time.Until(reached.Add(pageBudget+30*time.Second)), "firing TCPStateProcessFdsExhausted for "+fdLeakComm, proc("TCPStateProcessFdsExhausted"))
	delay := page.received.Sub(reached)
	t.Logf("page %.1fs after the process reached its limit (%.1fs after the first EMFILE)", delay.Seconds(), page.received.Sub(emfile).Seconds())
	if delay > pageBudget {
		t.Errorf("page %v after the process reached its limit, want at most %v", delay.Round(time.Second), pageBudget)
	}
	checkFdAlert(t, page, "TCPStateProcessFdsExhausted", "critical", port)
	hook.checkAllAnnotations(t)

	// The fix, at the same pace under the same limit, all along: a
	// handful of descriptors, no CLOSE_WAIT beyond the one idle
	// connection, no alert.
	leak.stop(t)
	fixed.stop(t)
	if l := fixed.lastWith("fixed ok "); !strings.HasSuffix(l, " failed 0") || l == "fixed ok 0 failed 0" {
		t.Errorf("the fixed client: %q, want requests and no failure", l)
	}
	window := fmt.Sprintf("%ds", int(time.Since(start).Seconds())+1)
	fixedSel := fmt.Sprintf(`{job=%q,process=%q}`, jobName, fdFixComm)
	maxFds := queryOne(t, prom, fmt.Sprintf(`max_over_time(tcpstate_process_open_fds%s[%s])`, fixedSel, window))
	if maxFds > fdFixedMax {
		t.Errorf("the fixed client held up to %.0f fds, want at most %d", maxFds, fdFixedMax)
	}
	if q, _, err := instantQuery(prom, fmt.Sprintf(`max_over_time(tcpstate_process_connections{job=%q,process=%q,state="close_wait"}[%s]) > %d`, jobName, fdFixComm, window, fixedMaxCloseWait)); err != nil {
		t.Error(err)
	} else if _, vals, _ := q.samples(); len(vals) > 0 {
		t.Errorf("the fixed client held %v sockets in CLOSE_WAIT, want at most %d", vals, fixedMaxCloseWait)
	}
	if q, _, err := instantQuery(prom, fmt.Sprintf(`count_over_time(ALERTS{process=%q}[%s])`, fdFixComm, window)); err != nil {
		t.Error(err)
	} else if ss, vals, _ := q.samples(); len(vals) > 0 {
		t.Errorf("the fixed client raised alerts %v %v, want none", ss, vals)
	}
	t.Logf("fixed: %s, at most %.0f fds", fixed.lastWith("fixed ok "), maxFds)
	t.Logf("fd replay wall time %.0fs", time.Since(begin).Seconds())
}

// checkFdAlert checks the labels and description of a file-descriptor
// alert on the leaking client: the limit, the CLOSE_WAIT sockets and the
// upstream that holds most of them.
func checkFdAlert(t *testing.T, n notification, name, severity, port string) {
	t.Helper()
	var a alert
	for _, x := range n.Alerts {
		if x.Labels["alertname"] == name && x.Labels["process"] == fdLeakComm {
			a = x
		}
	}
	want := map[string]string{"severity": severity, "job": jobName, "process": fdLeakComm, "netns": "host", "max_fds": strconv.Itoa(fdLimit)}
	for k, v := range want {
		if a.Labels[k] != v {
			t.Errorf("%s: label %s = %q, want %q (%v)", name, k, a.Labels[k], v, a.Labels)
		}
	}
	d := a.Annotations["description"]
	for _, s := range []string{"limit of " + strconv.Itoa(fdLimit), "of its TCP sockets are CLOSE_WAIT", "is 127.0.0.1 port " + port + " ("} {
		if !strings.Contains(d, s) {
			t.Errorf("%s: description lacks %q: %q", name, s, d)
		}
	}
	t.Logf("%s: %s", name, d)
}

// renderFdRules renders the rule pack from the mixin with
// TCPStateProcessFdsExhausting's `for` at fdWarnFor, and checks that the
// knob reached that alert and no other.
func renderFdRules(t *testing.T) ruleCopy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tcpstate_exporter.rules.yml")
	config := fmt.Sprintf("{ processFdsExhaustingFor: %q }", fdWarnFor)
	render := exec.Command(renderBin, "-mixin", "../mixin", "-config", config, "-o", path)
	if out, err := render.CombinedOutput(); err != nil {
		t.Fatalf("rendering the rule pack with %s: %v\n%s", config, err, out)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseRules(text)
	if err != nil {
		t.Fatalf("the rendered rule pack: %v", err)
	}
	shipped, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	sf, err := parseRules(shipped)
	if err != nil {
		t.Fatal(err)
	}
	shippedFor := map[string]string{}
	for _, g := range sf.Groups {
		for _, r := range g.Rules {
			shippedFor[r.Alert] = r.For
		}
	}
	c := ruleCopy{path: path}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			switch {
			case r.Alert == "TCPStateProcessFdsExhausting" && r.For != fdWarnFor:
				t.Errorf("TCPStateProcessFdsExhausting has for: %q, want %s", r.For, fdWarnFor)
			case r.Alert != "" && r.Alert != "TCPStateProcessFdsExhausting" && r.For != shippedFor[r.Alert]:
				t.Errorf("alert %s has for: %q, the shipped %q", r.Alert, r.For, shippedFor[r.Alert])
			}
			c.rules = append(c.rules, g.Name+"/"+r.Record+r.Alert)
		}
	}
	return c
}
