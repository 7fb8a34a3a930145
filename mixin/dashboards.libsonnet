// The Grafana dashboards, rendered to dashboards/*.json by `make mixin`
// (`make mixin-check` fails when the files differ; edit here, not there).
// Each dashboard is a file in dashboards/ whose panels state their titles,
// descriptions and queries together; lib/grafana.libsonnet gives what the
// panels of a kind share and applies the site's _config (tcpstateSelector,
// showMultiCluster, clusterLabel, runbookURLBase) to every query, variable,
// legend and link.
//
// Adding a panel: in dashboards/overview.libsonnet (or drilldown), add to
// panels=[...] an entry such as
//
//   g.timeseries {
//     id: 34,  // one no other panel of the dashboard has
//     title: 'SYN_SENT sockets per host',
//     description: g.text(|||
//       What the panel shows and what to do about it, in as many lines as
//       it takes (joined by spaces into one Markdown line).
//     |||, runbook='TCPStateAcceptQueueFull'),  // optional runbook link
//     gridPos: g.grid(0, 60, 12, 8),  // x, y, width, height
//     targets: g.targets([
//       g.target('sum by (job, instance) (tcpstate_connections{job=~"$job", instance=~"$instance", state="syn_sent"})', '{{instance}}'),
//     ]),
//   },
//
// Write each query as it reads on one Prometheus: `sum by (job, instance)`
// or `sum(...)`, never `sum(...) by (...)`; joins as `on (...)`; metric
// names starting with tcpstate_. g.target adds the site's selector and,
// under showMultiCluster, the cluster (lib/promql.libsonnet). Fields the
// panel does not share with its kind go beside (fieldConfig+: {...},
// options+: {...}). Then `make mixin`, which writes dashboards/*.json, and
// `make mixin-check dashboards-check e2e`: the schema, the metrics, the
// per-host and multi-cluster rules, and every query against a real
// Prometheus.
{
  grafanaDashboards+:: {
    local g = (import 'lib/grafana.libsonnet')($._config),
    'tcpstate-overview.json': (import 'dashboards/overview.libsonnet')(g),
    'tcpstate-drilldown.json': (import 'dashboards/drilldown.libsonnet')(g),
  },
}
