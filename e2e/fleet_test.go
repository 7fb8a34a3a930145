package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// The global view (make fleet-test): the rule pack and the dashboards on
// Thanos over two clusters, as a fleet runs them. Each "cluster" is a
// network namespace with its own exporter, keep-alive server and Go
// net/http client (incident/goclient), its own Prometheus (eu: an HA pair)
// with external_labels {cluster: eu|us, prometheus_replica: ...} and a
// Thanos sidecar beside each.
// The exporters listen on the same address in both namespaces, so the
// instance label collides as pod addresses do. On the host's loopback,
// Thanos Query merges the sidecars (deduplicating eu's pair) and the Ruler,
// and Thanos Ruler evaluates the rule pack rendered from the mixin with the
// multi-cluster _config against Query, sending to a real Alertmanager.
// eu's client leaks its pool; us's is healthy.
//
// The namespaces keep the clusters' sockets apart: each exporter runs in
// its own with --no-collector.netns (both share the host's processes, so
// with it on each would read the other's namespace too). Only Query's
// gRPC to the sidecars, and the test's own checks, cross into them,
// through relays on the host's loopback.
const (
	fleetEnv = "TCPSTATE_FLEET"
	// thanosEnv names the thanos binary (make fleet-test builds it).
	thanosEnv = "TCPSTATE_THANOS"

	// fleetScrape is every Prometheus' scrape interval and timeout. Not
	// shorter: on a machine loaded by other builds the exporter's walk of
	// /proc has missed a 2 s deadline, which drops the pool families from
	// that scrape, so the page resolves and comes back.
	fleetScrape = 5 * time.Second
	// fleetEval is the Ruler's evaluation interval.
	fleetEval = 2 * time.Second
	// fleetFor replaces the `for` of the pool alerts, the ones the leak
	// raises, through the mixin's _config knobs, so the page comes within
	// seconds of the leak. The other alerts keep their defaults (10 minutes
	// and more): a collector that misses a deadline on a loaded machine is
	// not an alert.
	fleetFor = "4s"

	fleetPool     = "search"
	fleetProcess  = "fleet-go" // the Go client's name in both clusters
	fleetServer   = "127.0.0.1:8080"
	fleetExporter = "127.0.0.1:9951" // the same in both: instance collides
	replicaLabel  = "prometheus_replica"
	// rulerReplicaLabel tells the Ruler replicas of an HA pair apart.
	rulerReplicaLabel = "rule_replica"

	// fleetHold: how long after the page the test watches for a second one
	// (a duplicate that dedup missed, a flapping join): several
	// evaluations, resends and Alertmanager group intervals.
	fleetHold = 12 * time.Second
)

// fleetForKnobs are the mixin's _config knobs of the pool alerts' `for`;
// renderFleetRules checks that they reach those alerts and no other.
var fleetForKnobs = map[string]string{
	"poolExhaustedFor":     "TCPStatePoolExhausted",
	"poolFillingUpFor":     "TCPStatePoolFillingUp",
	"poolCloseWaitHighFor": "TCPStatePoolCloseWaitHigh",
	"poolSaturatedFor":     "TCPStatePoolSaturated",
}

// fleetConfig is the multi-cluster _config the test renders the rule pack
// with (withFor: the pool alerts' `for` at fleetFor).
func fleetConfig(withFor bool) string {
	knobs := []string{"showMultiCluster: true", "clusterLabel: 'cluster'"}
	if withFor {
		for _, k := range slices.Sorted(maps.Keys(fleetForKnobs)) {
			knobs = append(knobs, fmt.Sprintf("%s: %q", k, fleetFor))
		}
	}
	return "{ " + strings.Join(knobs, ", ") + " }"
}

// thanosBin and renderBin are set by TestMain when the fleet test runs.
var thanosBin, renderBin string

func requireFleet(t *testing.T) {
	t.Helper()
	if os.Getenv(fleetEnv) != "1" {
		t.Skipf("the global view with Thanos over two clusters: run `make fleet-test` (or %s=1 %s=/path/to/thanos go test -count=1 -v -run TestFleet ./e2e/)", fleetEnv, thanosEnv)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the fleet test creates network namespaces: run it as root")
	}
	if thanosBin == "" {
		t.Fatalf("%s is not set: `make fleet-test` builds Thanos and sets it", thanosEnv)
	}
	for _, bin := range []string{"prometheus", "prometheus-alertmanager", "ip", thanosBin} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: `make fleet-test` installs and builds what the test needs", bin)
		}
	}
}

// cluster is one cluster of the fleet.
type cluster struct {
	name     string // the external label cluster
	ns       string
	in       []string // runs a command in the namespace
	poolMax  int
	replicas []string // the Prometheus replicas' prometheus_replica
	proms    []*process
	sidecars []*process
	stores   []string // the sidecars' gRPC, relayed to the host
	exporter *process
}

// startCluster creates the namespace and starts the server, the exporter,
// the Prometheus replicas and their sidecars in it.
func startCluster(t *testing.T, name string, poolMax, replicas int) *cluster {
	t.Helper()
	c := &cluster{name: name, ns: fmt.Sprintf("tcpst-fleet-%s-%d", name, os.Getpid()), poolMax: poolMax}
	c.in = newNamespace(t, c.ns, nil)

	srv := startClient(t, name+" server", append(slices.Clone(c.in), incidentServerBin, "-idle-timeout", serverIdle.String(),
		"-listen", fleetServer), "")
	srv.waitForLine(t, "ready", startupTimeout)

	host, port, _ := strings.Cut(fleetServer, ":")
	config := writeFile(t, t.TempDir(), "pools.yml", fmt.Sprintf(`pools:
  - name: %s
    process: "^%s$"
    remote_address: %s
    remote_port: %s
    max: %d
`, fleetPool, fleetProcess, host, port, poolMax))
	c.exporter = startProcess(t, "tcpstate_exporter ("+name+")", relayInto(t, c.ns, fleetExporter), "/",
		c.in[0], append(slices.Clone(c.in[1:]), exporterBin, "--web.listen-address="+fleetExporter, "--config.file="+config,
			"--no-collector.netns", "--collector.close-wait.stuck-after=1s")...)

	for i := range replicas {
		replica := fmt.Sprintf("%s-%d", name, i)
		dir := t.TempDir()
		promAddr := fmt.Sprintf("127.0.0.1:%d", 9090+i)
		promConfig := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  external_labels:
    cluster: %[2]s
    %[3]s: %[4]s
scrape_configs:
  - job_name: %[5]q
    static_configs:
      - targets: [%[6]q]
`, fleetScrape, name, replicaLabel, replica, jobName, fleetExporter))
		data := filepath.Join(dir, "data")
		prom := startProcess(t, "prometheus ("+replica+")", relayInto(t, c.ns, promAddr), "/-/ready",
			c.in[0], append(slices.Clone(c.in[1:]), "prometheus", "--web.listen-address="+promAddr,
				"--storage.tsdb.path="+data, "--config.file="+promConfig)...)
		grpc := fmt.Sprintf("127.0.0.1:%d", 10901+10*i)
		http := fmt.Sprintf("127.0.0.1:%d", 10902+10*i)
		sc := startProcess(t, "thanos sidecar ("+replica+")", relayInto(t, c.ns, http), "/-/ready",
			c.in[0], append(slices.Clone(c.in[1:]), thanosBin, "sidecar", "--log.level=warn",
				"--prometheus.url=http://"+promAddr, "--tsdb.path="+data,
				"--grpc-address="+grpc, "--http-address="+http)...)
		c.replicas = append(c.replicas, replica)
		c.proms = append(c.proms, prom)
		c.sidecars = append(c.sidecars, sc)
		c.stores = append(c.stores, relayInto(t, c.ns, grpc))
	}
	return c
}

// startQuery runs Thanos Query over the endpoints, deduplicating by
// prometheus_replica.
func startQuery(t *testing.T, endpoints []string) *process {
	t.Helper()
	http := testutil.FreeAddr(t)
	args := []string{"query", "--log.level=warn", "--http-address=" + http, "--grpc-address=" + testutil.FreeAddr(t),
		"--query.replica-label=" + replicaLabel, "--query.replica-label=" + rulerReplicaLabel}
	for _, e := range endpoints {
		args = append(args, "--endpoint="+e)
	}
	return startProcess(t, "thanos query", http, "/-/ready", thanosBin, args...)
}

// startRuler runs Thanos Ruler on the rule file, querying Query and
// sending to Alertmanager; its own StoreAPI listens on grpc.
func startRuler(t *testing.T, rules, query, am, grpc string) *process {
	t.Helper()
	http := testutil.FreeAddr(t)
	return startProcess(t, "thanos rule", http, "/-/ready", thanosBin, "rule", "--log.level=warn",
		"--http-address="+http, "--grpc-address="+grpc,
		"--data-dir="+filepath.Join(t.TempDir(), "data"),
		"--rule-file="+rules,
		"--query=http://"+query,
		"--alertmanagers.url=http://"+am,
		"--eval-interval="+fleetEval.String(),
		// An alert the Ruler sends stays valid in Alertmanager for 4 ×
		// max(evaluation interval, resend delay): with the defaults (1m)
		// 4 minutes, far longer than Query takes to drop a cluster's dead
		// sidecar (while it does, evaluations fail: see sidecarGone). At
		// 2 s evaluations and a 1 s resend delay it would be 8 s, about
		// that time: 15 s keeps the proportions of the defaults.
		"--resend-delay=15s",
		// The replica label of an HA pair of Rulers, as kube-thanos sets
		// it: Query deduplicates the recorded series by it, and it is
		// dropped from the alerts, so both replicas' alerts are one in
		// Alertmanager.
		"--label="+rulerReplicaLabel+"=\"0\"", "--alert.label-drop="+rulerReplicaLabel)
}

// renderFleetRules renders the rule pack from the mixin with the
// multi-cluster _config and the pool alerts' `for` at fleetFor, and checks
// that the knobs reached them and no other alert.
func renderFleetRules(t *testing.T) ruleCopy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tcpstate_exporter.rules.yml")
	render := exec.Command(renderBin, "-mixin", "../mixin", "-config", fleetConfig(true), "-o", path)
	if out, err := render.CombinedOutput(); err != nil {
		t.Fatalf("rendering the rule pack with %s: %v\n%s", fleetConfig(true), err, out)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseRules(text)
	if err != nil {
		t.Fatalf("the rendered rule pack: %v", err)
	}
	c := ruleCopy{path: path}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if pool := slices.Contains(slices.Collect(maps.Values(fleetForKnobs)), r.Alert); r.Alert != "" && pool != (r.For == fleetFor) {
				t.Errorf("alert %s has for: %q: fleetFor (%s) must reach the pool alerts %v and no other", r.Alert, r.For, fleetFor, slices.Sorted(maps.Values(fleetForKnobs)))
			}
			c.rules = append(c.rules, g.Name+"/"+r.Record+r.Alert)
		}
	}
	return c
}

// TestFleet runs the fleet, leaks eu's pool and checks the global view:
// the page, the recording rules, every dashboard query with the cluster
// variable (fleet_dashboards_test.go), the silence of the healthy cluster,
// and what a cluster that leaves the view does to the Ruler.
func TestFleet(t *testing.T) {
	requireFleet(t)
	begin := time.Now()
	rules := renderFleetRules(t)

	// eu's pool is smaller than us's: a page that quoted us's maximum, or
	// added the two, would show it.
	eu := startCluster(t, "eu", 10, 2)
	us := startCluster(t, "us", 12, 1)
	hook := startWebhook(t)
	am := startAlertmanager(t, hook.url)
	rulerGRPC := testutil.FreeAddr(t)
	query := startQuery(t, append(append(slices.Clone(eu.stores), us.stores...), rulerGRPC))
	ruler := startRuler(t, rules.path, query.addr, am.addr, rulerGRPC)
	t.Logf("two clusters (3 Prometheus, 3 sidecars), Query, Ruler and Alertmanager ready %.1fs after the start", time.Since(begin).Seconds())

	// The global view: one deduplicated exporter per cluster, on the same
	// instance; eu's two replicas without deduplication.
	for _, c := range []*cluster{eu, us} {
		waitForValue(t, query, fmt.Sprintf(`count(tcpstate_exporter_build_info{cluster=%q,instance=%q})`, c.name, fleetExporter), 1)
		waitForValue(t, query, fmt.Sprintf(`tcpstate_pool_max_connections{cluster=%q,pool=%q}`, c.name, fleetPool), float64(c.poolMax))
	}
	waitForNoDedup(t, query, `count(tcpstate_exporter_build_info{cluster="eu"})`, 2)
	t.Run("rules healthy", func(t *testing.T) {
		checkRulesHealthy(t, ruler, rules)
	})

	url := "http://" + fleetServer + "/"
	startClient(t, "us client (healthy)", append(slices.Clone(us.in), fleetGoBin, "-mode", "fixed", "-requests", "0",
		"-pool", strconv.Itoa(us.poolMax), "-pace", "200ms", "-idle-every", "1000000", "-keepalive=-1s", "-hold", "10m", "-url", "URL"), url)
	leakStart := time.Now()
	leak := startClient(t, "eu client (leaking)", append(slices.Clone(eu.in), fleetGoBin, "-mode", "leak",
		"-pool", strconv.Itoa(eu.poolMax), "-pace", "200ms", "-wait", dryWait.String(), "-keepalive=-1s", "-hold", "10m", "-url", "URL"), url)
	dryLine := leak.waitForLine(t, "dry ", time.Minute)
	ms, err := strconv.ParseInt(strings.TrimSuffix(strings.Fields(dryLine)[1], ":"), 10, 64)
	if err != nil {
		t.Fatalf("bad dry line %q", dryLine)
	}
	dry := time.UnixMilli(ms)
	t.Logf("eu's pool dry %.1fs after the client started: %s", dry.Sub(leakStart).Seconds(), dryLine)
	waitForValue(t, query, fmt.Sprintf(`sum(tcpstate_pool_connections{cluster="eu",pool=%q,state=~"close_wait|close"})`, fleetPool), float64(eu.poolMax))
	waitForValue(t, query, fmt.Sprintf(`tcpstate_pool_connections{cluster="us",pool=%q,state="established"}`, fleetPool), 1)

	t.Run("the leak pages once, for eu", func(t *testing.T) {
		page := matchAlert("TCPStatePoolExhausted", "firing")
		n := hook.waitFor(t, time.Minute, "firing TCPStatePoolExhausted", page)
		t.Logf("paged %.1fs after the pool ran dry (for: %s, scrape every %v, evaluation every %v):\n%s", n.received.Sub(dry).Seconds(), fleetFor, fleetScrape, fleetEval, n.raw)
		checkFleetPage(t, n.alert("TCPStatePoolExhausted"), eu)
		time.Sleep(fleetHold)
		var pages int
		for _, n := range hook.all() {
			for _, a := range n.Alerts {
				if a.Labels["alertname"] == "TCPStatePoolExhausted" {
					pages++
					if a.Status != "firing" {
						t.Errorf("TCPStatePoolExhausted %s while eu's pool is dry: %v", a.Status, a.Labels)
					}
				}
			}
		}
		if pages != 1 {
			t.Errorf("%d TCPStatePoolExhausted notifications within %v of the page, want 1: %s", pages, fleetHold, hook.summary())
		}
	})

	t.Run("recording rules through Query", func(t *testing.T) {
		waitForValue(t, query, fmt.Sprintf(`tcpstate:pool_close_wait_connections:ratio{cluster="eu",pool=%q}`, fleetPool), 1)
		waitForValue(t, query, fmt.Sprintf(`tcpstate:pool_close_wait_connections:ratio{cluster="us",pool=%q}`, fleetPool), 0)
		waitForValue(t, query, fmt.Sprintf(`tcpstate:pool_in_use_connections:sum{cluster="us",pool=%q}`, fleetPool), 1)
	})

	t.Run("dashboards with the cluster variable", func(t *testing.T) {
		checkFleetDashboards(t, query, renderFleetDashboards(t))
	})

	t.Run("the healthy cluster raises nothing", func(t *testing.T) {
		// At any evaluation since the start: the Ruler's ALERTS series,
		// through Query. (cluster!="eu" also matches an alert without the
		// label.)
		expr := fmt.Sprintf(`count_over_time(ALERTS{alertstate="firing",cluster!="eu"}[%ds])`, int(time.Since(begin).Seconds())+1)
		if res, _, err := instantQuery(query, expr); err != nil {
			t.Errorf("%s: %v", expr, err)
		} else if ss, _, _ := res.samples(); len(ss) > 0 {
			t.Errorf("the Ruler had alerts firing outside eu: %v", ss)
		}
		for _, n := range hook.all() {
			for _, a := range n.Alerts {
				if a.Labels["cluster"] != "eu" {
					t.Errorf("Alertmanager notified %s %s outside eu: %v", a.Status, a.Labels["alertname"], a.Labels)
				}
			}
		}
	})
	t.Run("a cluster's sidecar goes away", func(t *testing.T) {
		sidecarGone(t, query, ruler, hook, us)
	})
	t.Logf("notifications: %s", hook.summary())
	t.Logf("fleet test wall time %.0fs", time.Since(begin).Seconds())
}

// checkFleetPage checks the page's labels (eu's, its replica label
// deduplicated away) and that its description quotes eu's numbers.
func checkFleetPage(t *testing.T, a alert, c *cluster) {
	t.Helper()
	host, port, _ := strings.Cut(fleetServer, ":")
	want := map[string]string{
		"alertname": "TCPStatePoolExhausted", "severity": "critical",
		"cluster": c.name, "job": jobName, "instance": fleetExporter,
		"pool": fleetPool, "process": "^" + fleetProcess + "$", "remote_address": host, "remote_port": port,
		"max_connections": strconv.Itoa(c.poolMax),
	}
	if !maps.Equal(a.Labels, want) {
		t.Errorf("page labels:\n got %v\nwant %v", a.Labels, want)
	}
	desc := a.Annotations["description"]
	for _, w := range []string{
		fmt.Sprintf("%d sockets of pool %q on %s in cluster %s are dead", c.poolMax, fleetPool, fleetExporter, c.name),
		fmt.Sprintf("the pool's maximum is %d.", c.poolMax),
	} {
		if !strings.Contains(desc, w) {
			t.Errorf("description does not contain %q: %q", w, desc)
		}
	}
	if want := fmt.Sprintf("Pool %s on %s in cluster %s is full of dead (CLOSE_WAIT or CLOSE) sockets.", fleetPool, fleetExporter, c.name); a.Annotations["summary"] != want {
		t.Errorf("summary = %q, want %q", a.Annotations["summary"], want)
	}
}

// waitForNoDedup polls Query without deduplication until expr has one
// value, want: eu's replicas, each with its own series.
func waitForNoDedup(t *testing.T, query *process, expr string, want float64) {
	t.Helper()
	deadline := time.Now().Add(startupTimeout)
	var last string
	for {
		r, err := api(query, "/api/v1/query", url.Values{"query": {expr}, "dedup": {"false"}})
		var q queryResult
		if err == nil {
			err = json.Unmarshal(r.Data, &q)
		}
		if err == nil {
			_, vals, err := q.samples()
			if err == nil && len(vals) == 1 && vals[0] == want {
				return
			}
			last = fmt.Sprintf("values %v (%v)", vals, err)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s without deduplication: want %v within %v; last answer: %s", expr, want, startupTimeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sidecarGone stops c's only sidecar and checks what the docs say about a
// cluster that leaves the global view (docs/rules.md, "Global rulers"):
// while Query still lists the sidecar, its queries warn and the Ruler's
// evaluations fail (partial_response_strategy abort, the default); once
// Query drops it, the rules evaluate again without c, and the Ruler keeps
// the other cluster's page firing throughout.
func sidecarGone(t *testing.T, query, ruler *process, hook *webhook, c *cluster) {
	t.Helper()
	if len(c.sidecars) != 1 {
		t.Fatalf("cluster %s has %d sidecars, want 1", c.name, len(c.sidecars))
	}
	stopped := time.Now()
	c.sidecars[0].stop(t)
	var failedPolls int
	var warned bool
	deadline := time.Now().Add(time.Minute)
	for {
		if errs := rulesWithError(t, ruler); len(errs) > 0 {
			failedPolls++
			if failedPolls == 1 {
				t.Logf("%.1fs after the sidecar stopped, %d rules fail to evaluate (abort), e.g. %s", time.Since(stopped).Seconds(), len(errs), errs[0])
			}
		}
		res, warnings, err := instantQuery(query, `count by (cluster) (tcpstate_exporter_build_info)`)
		warned = warned || len(warnings) > 0
		if ss, _, _ := res.samples(); err == nil && len(warnings) == 0 && len(ss) == 1 && ss[0].Metric["cluster"] != c.name {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Query still lists cluster %s a minute after its sidecar stopped", c.name)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("Query dropped %s's sidecar %.1fs after it stopped (its answers warned until then: %v; the Ruler's rules were failing at %d of the polls, every 0.5 s)",
		c.name, time.Since(stopped).Seconds(), warned, failedPolls)
	waitForValue(t, query, `count(ALERTS{alertname="TCPStatePoolExhausted",alertstate="firing",cluster="eu"})`, 1)
	since := time.Now()
	deadline = time.Now().Add(startupTimeout)
	for len(rulesWithError(t, ruler)) > 0 || !evaluatedSince(t, ruler, since) {
		if time.Now().After(deadline) {
			t.Fatalf("the Ruler's rules still fail %v after Query dropped the sidecar: %v", startupTimeout, rulesWithError(t, ruler))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("the Ruler evaluates every rule again without %s %.1fs after its sidecar stopped", c.name, time.Since(stopped).Seconds())
	if n, ok := hook.first(matchAlert("TCPStatePoolExhausted", "resolved")); ok {
		t.Errorf("Alertmanager resolved eu's page while the Ruler could not evaluate:\n%s", n.raw)
	}
}

// rulesWithError lists the Ruler's rules whose last evaluation failed.
func rulesWithError(t *testing.T, ruler *process) []string {
	t.Helper()
	var out []string
	for _, r := range rulerRules(t, ruler) {
		if r.Health == "err" {
			out = append(out, r.Name+": "+r.LastError)
		}
	}
	return out
}

// evaluatedSince reports whether every rule of the Ruler was evaluated
// after since.
func evaluatedSince(t *testing.T, ruler *process, since time.Time) bool {
	t.Helper()
	for _, r := range rulerRules(t, ruler) {
		if !r.LastEvaluation.After(since) {
			return false
		}
	}
	return true
}

type rulerRule struct {
	Name, Health, LastError string
	LastEvaluation          time.Time
}

func rulerRules(t *testing.T, ruler *process) []rulerRule {
	t.Helper()
	r, err := api(ruler, "/api/v1/rules", nil)
	if err != nil {
		t.Fatalf("the Ruler's /api/v1/rules: %v", err)
	}
	var data apiRules
	if err := json.Unmarshal(r.Data, &data); err != nil {
		t.Fatalf("the Ruler's /api/v1/rules: %v", err)
	}
	var out []rulerRule
	for _, g := range data.Groups {
		for _, rule := range g.Rules {
			out = append(out, rulerRule{rule.Name, rule.Health, rule.LastError, rule.LastEvaluation})
		}
	}
	return out
}
