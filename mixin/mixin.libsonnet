// The tcpstate_exporter monitoring mixin: prometheusRules (recording),
// prometheusAlerts and grafanaDashboards, tuned through _config
// (config.libsonnet). rules/tcpstate_exporter.rules.yml is rendered from
// it by `make mixin`.
(import 'config.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'alerts/hostlimits.libsonnet') +
(import 'alerts/fds.libsonnet') +
(import 'dashboards.libsonnet')
