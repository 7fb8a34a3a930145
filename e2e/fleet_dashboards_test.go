package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The dashboards on the fleet's global view (make fleet-test): rendered
// from the mixin with showMultiCluster, every query runs through Thanos
// Query with the cluster variable on eu and on All.

// renderFleetDashboards renders the dashboards from the mixin with the
// multi-cluster _config into a folder and returns it.
func renderFleetDashboards(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	render := exec.Command(renderBin, "-mixin", "../mixin", "-config", fleetConfig(false), "-dashboards", dir)
	if out, err := render.CombinedOutput(); err != nil {
		t.Fatalf("rendering the dashboards with %s: %v\n%s", fleetConfig(false), err, out)
	}
	return dir
}

// fleetMayBeEmpty lists, by "file: panel title [refId]", the queries
// that may return nothing here, each with the reason; mayBeEmpty's panels
// may be empty too, and so may a query reading tcpstate_netns_*: the
// fleet's exporters run with --no-collector.netns (see fleet_test.go). An
// entry whose query no dashboard has fails the test.
var fleetMayBeEmpty = map[string]string{
	// ESTABLISHED sockets of the process, in eu.
	"tcpstate-drilldown.json: Remote endpoints of $process [B]": euNoEstablished,
	// ESTABLISHED sockets of the routes that have CLOSE_WAIT ones.
	"tcpstate-overview.json: CLOSE_WAIT sockets by process and remote endpoint [B]": euNoEstablished + "; us's healthy client has no CLOSE_WAIT socket",
}

// euNoEstablished: eu's client leaked every connection of its pool.
const euNoEstablished = "eu's client has leaked every connection of its pool: none is ESTABLISHED"

// euValues are the instant values, with the cluster variable on eu, of
// queries where a panel that added up the clusters would show something
// else: eu's pool is full (10 of 10 in use), us's holds 1 of 12. The
// shipped rendering on the same global view does not even evaluate the
// first: its join finds both clusters' maximum for one host and pool.
var euValues = map[string]float64{
	"tcpstate-overview.json: Pool usage: (ESTABLISHED + CLOSE_WAIT + CLOSE) / max [A]":  1,
	"tcpstate-overview.json: Pool dead (CLOSE_WAIT + CLOSE) vs max [B]":                 10,
	"tcpstate-drilldown.json: Pool $pool: ESTABLISHED, CLOSE_WAIT and CLOSE vs max [B]": 10,
}

// checkFleetDashboards runs every query of the dashboards in dir through
// Query, instant and over the last minute, with the cluster variable on
// eu (the other variables on the leaking pool's job, host, process and
// pool) and on All. With eu, every series must be eu's; with All, every
// series must still carry its cluster; and a query must return data
// (mayBeEmpty and the pod panels aside). The variables' own queries must
// offer eu's values, the cluster variable first.
func checkFleetDashboards(t *testing.T, query *process, dir string) {
	v := dashboardValues{job: jobName, instance: fleetExporter, process: fleetProcess, netns: "host", pool: fleetPool, cluster: "eu"}
	queries := 0
	seen := map[string]bool{}
	for file, d := range readDashboardsFrom(t, filepath.Join(dir, "*.json")) {
		t.Run(file, func(t *testing.T) {
			if len(d.Templating.List) < 2 || d.Templating.List[1].Name != "cluster" {
				t.Errorf("the cluster variable is not the first after the data source")
			}
			checkVariables(t, query, d, v)
			for _, q := range panelQueries(t, file, d) {
				seen[q.panel+" ["+q.refID+"]"] = true
				for pass, values := range passes(v) {
					expr, err := substitute(q.expr, values)
					if err != nil {
						t.Errorf("%s [%s]: %v", q.panel, q.refID, err)
						continue
					}
					queries += 2
					what := fmt.Sprintf("%s [%s], cluster %s:\n%s\n", q.panel, q.refID, values["cluster"], expr)
					res, warnings, err := instantQuery(query, expr)
					checkFleetResult(t, "instant query of "+what, q, pass, res, warnings, err)
					if want, ok := euValues[q.panel+" ["+q.refID+"]"]; ok && pass == "selected" {
						if _, vals, _ := res.samples(); len(vals) != 1 || vals[0] != want {
							t.Errorf("instant query of %s: values %v, want eu's %v", what, vals, want)
						}
					}
					res, warnings, err = rangeQuery(query, expr, rangeOver, rangeStep)
					checkFleetResult(t, "range query of "+what, q, pass, res, warnings, err)
				}
			}
		})
	}
	t.Logf("%d dashboard queries run through Thanos Query", queries)
	for key := range fleetMayBeEmpty {
		if !seen[key] {
			t.Errorf("fleetMayBeEmpty lists %q, which no dashboard has: remove it", key)
		}
	}
	for key := range euValues {
		if !seen[key] {
			t.Errorf("euValues lists %q, which no dashboard has: remove it", key)
		}
	}
	logShippedOnGlobalView(t, query)
}

// logShippedOnGlobalView logs what the shipped dashboards' pool usage query
// (no cluster variable) gives on the same global view, for the host and
// pool the two clusters share: why showMultiCluster exists.
func logShippedOnGlobalView(t *testing.T, query *process) {
	t.Helper()
	const key = "tcpstate-overview.json: Pool usage: (ESTABLISHED + CLOSE_WAIT + CLOSE) / max"
	for file, d := range readDashboards(t) {
		for _, q := range panelQueries(t, file, d) {
			if q.panel != key || q.refID != "A" {
				continue
			}
			v := dashboardValues{job: jobName, instance: fleetExporter, process: fleetProcess, netns: "host", pool: fleetPool}
			expr, err := substitute(q.expr, passes(v)["selected"])
			if err != nil {
				t.Fatal(err)
			}
			res, _, err := instantQuery(query, expr)
			ss, vals, _ := res.samples()
			t.Logf("the shipped %q on the global view, host %s and pool %s of both clusters: %v %v, error: %v", q.panel, fleetExporter, fleetPool, ss, vals, err)
		}
	}
}

func checkFleetResult(t *testing.T, what string, q panelQuery, pass string, res queryResult, warnings []string, err error) {
	t.Helper()
	ss, _, ok := readResult(t, what, res, warnings, err)
	if !ok {
		return
	}
	if len(ss) == 0 {
		_, empty := mayBeEmpty[q.panel]
		_, fleetEmpty := fleetMayBeEmpty[q.panel+" ["+q.refID+"]"]
		if !empty && !fleetEmpty && !strings.Contains(q.expr, "tcpstate_netns_") && !readsHostLimits(q.expr) {
			t.Errorf("%s returns no data", what)
		}
		return
	}
	for _, s := range ss {
		c, ok := s.Metric["cluster"]
		switch {
		case !ok:
			t.Errorf("%s returns a series without the cluster label: %v", what, s.Metric)
		case pass == "selected" && c != "eu":
			t.Errorf("%s returns a series of cluster %q: %v", what, c, s.Metric)
		case c != "eu" && c != "us":
			t.Errorf("%s returns a series of an unknown cluster %q: %v", what, c, s.Metric)
		}
	}
}

// hostLimitFamilies are the families a fleet exporter does not have: it
// runs in a network namespace of its own, where net.ipv4.tcp_mem and
// tcp_max_orphans do not exist (the hostlimits collector fails there, as
// README says: it needs the host's namespace), without --collector.memory,
// and beside no listener that drops. The dashboard test and the host-limit
// replay run their panels.
var hostLimitFamilies = []string{"tcpstate_memory_", "tcpstate_orphan_", "tcpstate_process_memory_bytes", "tcpstate_remote_memory_bytes", "tcpstate_listen_drops_total"}

func readsHostLimits(expr string) bool {
	for _, f := range hostLimitFamilies {
		if strings.Contains(expr, f) {
			return true
		}
	}
	return false
}
