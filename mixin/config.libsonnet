// The knobs of the tcpstate_exporter mixin. Override them with
//   (import 'mixin.libsonnet') + { _config+:: { tcpstateSelector: 'job="tcpstate-exporter"' } }
// Every default reproduces rules/tcpstate_exporter.rules.yml as shipped.
{
  _config+:: {
    // Label matchers put in front of every metric selector of the recording
    // and alerting rules, e.g. 'job="tcpstate-exporter"' to match the job of
    // a ServiceMonitor. Empty by default: the exporter is scraped under
    // whatever job a site names, and the shipped rule file matches it all.
    tcpstateSelector: '',

    // A global view over several clusters (Thanos Query, Mimir,
    // VictoriaMetrics), where each cluster's series carry the cluster's
    // name in clusterLabel (an external label of its Prometheus). With
    // showMultiCluster, the dashboards get a cluster variable (first after
    // the data source, multi-select) that filters every query, and keep
    // the label in every aggregation, join, legend and drill-down link, so
    // that no panel adds up two clusters whose instance names collide; the
    // alerts' summaries and descriptions name the cluster beside the
    // instance. The rules need nothing else: their joins match on all
    // labels, the cluster label included. With the defaults nothing
    // mentions a cluster. tcpstateSelector (above) reaches every
    // dashboard selector too, variables' included.
    showMultiCluster: false,
    clusterLabel: 'cluster',

    // Where runbook_url points: base + '#' + the alert's name in lower case,
    // the anchor of its section in docs/runbooks.md. Point it at a site's
    // own copy, e.g. a wiki page or the file the packages install under
    // /usr/share/doc/tcpstate-exporter/runbooks.md served internally.
    runbookURLBase: 'https://github.com/tcpstate-exporter/tcpstate_exporter/blob/main/docs/runbooks.md',

    // Thresholds and `for` durations. The alert descriptions quote them, so
    // a change here reaches both. Durations are Prometheus durations made of
    // whole units (2m, 1h30m); percentages are of the pool's maximum or of
    // the host's sockets. The comments in alerts/alerts.libsonnet explain
    // the defaults.
    poolExhaustedFor: '2m',

    poolFillingUpHorizonHours: 4,
    // The horizon for a pool with less than an hour of history (a new pool,
    // a new host, an exporter back after more than an hour away), predicted
    // from the last ten minutes.
    poolFillingUpNewPoolHorizonMinutes: 30,
    poolFillingUpFor: '15m',

    poolCloseWaitHighPercent: 80,
    poolCloseWaitHighFor: '15m',

    poolSaturatedFor: '10m',

    closeWaitAccumulatingThreshold: 100,
    closeWaitAccumulatingWindow: '15m',
    closeWaitAccumulatingFor: '15m',

    closeWaitStuckThreshold: 10,
    closeWaitStuckFor: '10m',
    // The exporters' --collector.close-wait.stuck-after, which decides what
    // counts as stuck: only quoted in TCPStateCloseWaitStuck's description.
    // Set it when the fleet runs the exporter with another value.
    exporterStuckAfter: '5m',

    collectorFailedFor: '10m',

    unresolvedSocketsPercent: 10,
    unresolvedSocketsFor: '30m',

    configReloadFailedFor: '15m',

    seriesTruncatedFor: '30m',

    // Percent of tcpstate_ephemeral_ports_usable that one destination holds.
    ephemeralPortsExhaustingPercent: 80,
    ephemeralPortsExhaustingFor: '1m',

    acceptQueueFullFor: '1m',

    // The host's shared TCP limits (alerts/hostlimits.libsonnet).
    memoryPressureFor: '10m',
    // Percent of tcp_mem's max that counts as at max.
    memoryExhaustedPercent: 98,
    memoryExhaustedFor: '2m',
    // Percent of net.ipv4.tcp_max_orphans.
    orphansHighPercent: 50,
    orphansHighFor: '10m',
    listenDropsWindow: '2m',
    listenDropsFor: '5m',
    // Per-process file descriptors (alerts/fds.libsonnet). The horizons are
    // in minutes: "at this pace the process reaches its limit within".
    processFdsExhaustingHorizonMinutes: 60,
    // For a process watched for less than an hour, from the last ten
    // minutes.
    processFdsExhaustingNewHorizonMinutes: 20,
    processFdsExhaustingFor: '5m',
    processFdsExhaustedFor: '2m',
  },
}
