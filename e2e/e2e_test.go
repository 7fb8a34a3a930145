// Package e2e runs the exporter, the rule pack and the dashboards together
// against real Prometheus and Alertmanager processes on loopback: the
// exporter counts sockets that a helper really holds in CLOSE_WAIT, Prometheus
// scrapes it and evaluates the rules, Alertmanager delivers the page to a
// webhook in the test, and every dashboard query runs against that
// Prometheus.
//
// It needs Debian's prometheus and prometheus-alertmanager packages and takes
// a few tens of seconds, so it runs only with TCPSTATE_E2E=1; `make e2e`
// installs the packages when they are missing and runs it.
//
// incident_test.go replays the incident with real client libraries and the
// rule file as shipped, its `for` durations real (about 4 minutes): it runs
// only with TCPSTATE_INCIDENT=1, from `make incident`.
//
// fleet_test.go runs the rule pack and the dashboards on a Thanos global
// view over two clusters (network namespaces): it runs only with
// TCPSTATE_FLEET=1 and TCPSTATE_THANOS naming a thanos binary, from `make
// fleet-test`.
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

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

const (
	// enableEnv turns the end-to-end test on.
	enableEnv = "TCPSTATE_E2E"

	// The held sockets and the pool that watches them. The pool's maximum
	// equals the CLOSE_WAIT count, so TCPStatePoolExhausted (>= max) fires.
	closeWait   = 5
	established = 3
	// unread of the CLOSE_WAIT sockets hold a response nobody read (the
	// rest read the end of stream), so queue bytes and the UNREAD columns
	// have something to show.
	unread     = 2
	poolMax    = closeWait
	poolName   = "search-engine"
	clientComm = "tcpst-e2e"
	serverComm = "tcpst-e2e-srv"
	jobName    = "tcpstate"

	// testFor replaces every `for:` of the rule pack in the test's copy.
	testFor = "2s"

	// Bounds of the waits. TOOLING.md measured ~7 s from a cold start to
	// the first webhook and ~2 s to fire or resolve; these leave room for
	// a loaded CI machine without letting a broken pipeline hang.
	startupTimeout = 30 * time.Second
	firingTimeout  = 45 * time.Second
	resolveTimeout = 30 * time.Second
)

// Paths of the files under test, relative to this package.
const (
	ruleFile      = "../rules/tcpstate_exporter.rules.yml"
	dashboardGlob = "../dashboards/*.json"
	runbookFile   = "../docs/runbooks.md"
)

// exporterBin and sockholdBin are built once by TestMain when the test is
// enabled; incidentServerBin and incidentGoBin when the incident replay or
// the fleet test is, and fleetGoBin and renderBin (the mixin's renderer)
// for the fleet test.
var exporterBin, sockholdBin, incidentServerBin, incidentGoBin, fleetGoBin string

func TestMain(m *testing.M) {
	e2e, incident, fleet := os.Getenv(enableEnv) == "1", os.Getenv(incidentEnv) == "1", os.Getenv(fleetEnv) == "1"
	if !e2e && !incident && !fleet && os.Getenv(hostLimitsEnv) != "1" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "tcpstate-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exporterBin = filepath.Join(dir, "tcpstate_exporter")
	builds := map[string]string{exporterBin: ".."}
	if e2e {
		sockholdBin = filepath.Join(dir, "sockhold")
		builds[sockholdBin] = "../internal/sockhold"
	}
	if incident || fleet {
		// The file name becomes the process name the exporter reports.
		incidentServerBin = filepath.Join(dir, "incident-srv")
		incidentGoBin = filepath.Join(dir, goClientComm)
		builds[incidentServerBin] = "../incident/server"
		builds[incidentGoBin] = "../incident/goclient"
	}
	if fleet {
		fleetGoBin = filepath.Join(dir, fleetProcess)
		builds[fleetGoBin] = "../incident/goclient"
		thanosBin = os.Getenv(thanosEnv)
	}
	err = testutil.Build(builds)
	if err == nil && (fleet || incident) {
		// The renderer is a module of its own (mixin/render): the fleet
		// and the fd replay render the rule pack with knobs of their own.
		renderBin = filepath.Join(dir, "render")
		err = testutil.BuildIn("../mixin/render", renderBin, ".")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireE2E skips the test unless the end-to-end run was asked for.
func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv(enableEnv) != "1" {
		t.Skipf("end-to-end test with Prometheus and Alertmanager: run `make e2e` (or %s=1 go test -count=1 -v ./e2e/)", enableEnv)
	}
	for _, bin := range []string{"prometheus", "prometheus-alertmanager"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: `make e2e` installs Debian's prometheus and prometheus-alertmanager packages", bin)
		}
	}
}

// TestEndToEnd holds CLOSE_WAIT sockets that fill a declared pool, and
// follows them through the whole chain: exporter, Prometheus with the rule
// pack, Alertmanager, a webhook; then runs every dashboard query; then
// releases the sockets and expects the alert to resolve.
//
// The steps share one set of processes, so they are subtests run in order.
func TestEndToEnd(t *testing.T) {
	requireE2E(t)
	coldStart := time.Now()

	hook := startWebhook(t)
	am := startAlertmanager(t, hook.url)

	srv := startSockhold(t, "serve", "-comm", serverComm, "-listen", "127.0.0.2:0")
	if len(srv.lines) != 1 || !strings.HasPrefix(srv.lines[0], "listening ") {
		t.Fatalf("sockhold serve printed %q, want one listening line", srv.lines)
	}
	port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatalf("sockhold serve printed %q: no port", srv.lines[0])
	}
	client := startSockhold(t, "connect", "-comm", clientComm,
		"-close-wait", fmt.Sprintf("127.0.0.2:%s=%d", port, closeWait-unread),
		"-close-wait-unread", fmt.Sprintf("127.0.0.2:%s=%d", port, unread),
		"-established", fmt.Sprintf("127.0.0.2:%s=%d", port, established))

	exp := startExporter(t, writePoolConfig(t, port))
	rules := testRuleCopy(t)
	prom := startPrometheus(t, exp.addr, am.addr, rules.path)

	// The pipeline's input: Prometheus has scraped exactly the held sockets.
	waitForValue(t, prom, fmt.Sprintf(`tcpstate_pool_connections{job=%q,pool=%q,state="close_wait"}`, jobName, poolName), closeWait)
	waitForValue(t, prom, fmt.Sprintf(`tcpstate_pool_connections{job=%q,pool=%q,state="established"}`, jobName, poolName), established)
	waitForValue(t, prom, fmt.Sprintf(`tcpstate_process_remote_close_wait_unread_sockets{job=%q,process=%q}`, jobName, clientComm), unread)
	t.Logf("Prometheus has the held sockets %.1fs after the cold start", time.Since(coldStart).Seconds())

	want := expectedAlert{
		instance: exp.addr,
		port:     port,
	}

	t.Run("rules healthy", func(t *testing.T) {
		checkRulesHealthy(t, prom, rules)
	})

	fired := t.Run("pool exhausted alert fires", func(t *testing.T) {
		defer logScrapeHealth(t, prom)
		n := hook.waitFor(t, firingTimeout, "firing TCPStatePoolExhausted", matchAlert("TCPStatePoolExhausted", "firing"))
		t.Logf("cold start to first firing webhook: %.1fs", n.received.Sub(coldStart).Seconds())
		t.Logf("notification received:\n%s", n.raw)
		want.check(t, n.alert("TCPStatePoolExhausted"))
		// The two pool warnings hold too (5 of 5 CLOSE_WAIT is above 80%;
		// 5+3 in use is above the maximum), and arrive as well.
		for _, name := range []string{"TCPStatePoolCloseWaitHigh", "TCPStatePoolSaturated"} {
			w := hook.waitFor(t, firingTimeout, "firing "+name, matchAlert(name, "firing"))
			want.checkWarning(t, w.alert(name))
		}
		hook.checkAllAnnotations(t)
	})

	t.Run("dashboard queries", func(t *testing.T) {
		checkDashboards(t, prom, dashboardValues{
			job: jobName, instance: exp.addr, process: clientComm, netns: "host", pool: poolName,
		})
	})

	t.Run("pool exhausted alert resolves", func(t *testing.T) {
		if !fired {
			t.Skip("the alert never fired, so it cannot resolve")
		}
		firing, _ := hook.first(matchAlert("TCPStatePoolExhausted", "firing"))
		if early, ok := hook.first(matchAlert("TCPStatePoolExhausted", "resolved")); ok {
			t.Fatalf("the alert resolved while the sockets were still held:\n%s", early.raw)
		}
		released := time.Now()
		client.release()
		resolved := matchAlert("TCPStatePoolExhausted", "resolved")
		n := hook.waitFor(t, resolveTimeout, "resolved TCPStatePoolExhausted", func(n notification) bool {
			return resolved(n) && n.received.After(released)
		})
		t.Logf("sockets released to resolved webhook: %.1fs (firing webhook to resolved webhook: %.1fs)",
			n.received.Sub(released).Seconds(), n.received.Sub(firing.received).Seconds())
		t.Logf("notification received:\n%s", n.raw)
		a := n.alert("TCPStatePoolExhausted")
		want.checkLabels(t, a)
		if a.EndsAt.IsZero() || a.EndsAt.Before(a.StartsAt) {
			t.Errorf("resolved alert has startsAt %v, endsAt %v", a.StartsAt, a.EndsAt)
		}
		waitForValue(t, prom, fmt.Sprintf(`tcpstate_pool_connections{job=%q,pool=%q,state="close_wait"}`, jobName, poolName), 0)
	})
}

// writePoolConfig writes the exporter's configuration: one pool watching
// the helper's client toward the helper's server port.
func writePoolConfig(t *testing.T, port string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pools.yml")
	config := fmt.Sprintf(`pools:
  - name: %s
    process: "^%s$"
    remote_port: %s
    max: %d
`, poolName, clientComm, port, poolMax)
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
