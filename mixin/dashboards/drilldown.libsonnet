// The drill-down dashboard, rendered to dashboards/tcpstate-drilldown.json by
// `make mixin`. Each panel states its title, its description and its
// queries together; what it shares with the panels of its kind, and the
// site's _config applied to every query, come from lib/grafana.libsonnet.
function(g) g.dashboard(
  uid='tcpstate-drilldown',
  title='TCP sockets / Drill-down',
  description=g.text(|||
    One process or connection pool in detail: its sockets by state, its
    remote endpoints, its pool usage against max_connections and the host's
    queued bytes in CLOSE_WAIT.
  |||),
  otherTitle='TCP sockets / Overview',
  variables=[
    g.queryVariable('job', 'Job', 'Prometheus job that scrapes tcpstate_exporter.', 'label_values(tcpstate_exporter_build_info, job)'),
    g.queryVariable('instance', 'Host', 'Exporter instance, one per host.', 'label_values(tcpstate_exporter_build_info{job=~"$job"}, instance)'),
    g.queryVariable('process', 'Process', 'Owning process (comm name) to inspect. One at a time: the panels below are about it.', 'label_values(tcpstate_process_connections{job=~"$job", instance=~"$instance"}, process)', single=true),
    g.queryVariable('netns', 'Network namespace', 'Network namespace of the process: "host" for the host\'s own, else a container\'s (on Kubernetes, a pod\'s; "Pods running $process" names them). All sums the process\'s namespaces.', 'label_values(tcpstate_process_connections{job=~"$job", instance=~"$instance", process=~"$process"}, netns)'),
    g.queryVariable('pool', 'Pool', 'Connection pool declared in the exporter\'s configuration. A pool\'s process matcher is a regular expression, so pools are not narrowed by the process above: "Pool declaration" shows which process each pool expects. One at a time: the panels below are about it.', 'label_values(tcpstate_pool_max_connections{job=~"$job", instance=~"$instance"}, pool)', single=true),
  ],
  panels=[
    g.stat {
      id: 1,
      title: 'CLOSE_WAIT sockets of $process',
      description: g.text(|||
        Sockets of the selected process (in the selected network namespaces) in
        CLOSE_WAIT, one value per host: the peer closed them, the process did
        not. They free up only when the process closes them or exits.
      |||, runbook='TCPStateCloseWaitAccumulating'),
      gridPos: g.grid(0, 0, 6, 4),
      targets: g.targets([
        g.target('sum by (job, instance) (tcpstate_process_connections{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns", state="close_wait"}) or vector(0)', '{{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
      },
      options+: {
        graphMode: 'area',
        colorMode: 'value',
      },
    },
    g.stat {
      id: 2,
      title: 'ESTABLISHED sockets of $process',
      description: g.text(|||
        Sockets of the selected process that are open at both ends. If
        CLOSE_WAIT is much larger, most of the process's connections are dead.
      |||),
      gridPos: g.grid(6, 0, 6, 4),
      targets: g.targets([
        g.target('sum by (job, instance) (tcpstate_process_connections{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns", state="established"}) or vector(0)', '{{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
      },
      options+: {
        graphMode: 'area',
        colorMode: 'value',
      },
    },
    g.stat {
      id: 3,
      title: 'Worst pool usage (all selected hosts)',
      description: g.text(|||
        Highest (ESTABLISHED + CLOSE_WAIT + CLOSE) / max_connections of the
        selected pool over the selected hosts: its sockets in use, dead ones
        included (CLOSE: reset and dropped by the kernel, still held). Orange
        from 80%, red at 100%: the pool has no free slot and callers block.
      |||, runbook='TCPStatePoolSaturated'),
      gridPos: g.grid(12, 0, 6, 4),
      targets: g.targets([
        g.target(|||
          max(
            sum by (job, instance, pool) (tcpstate_pool_connections{job=~"$job", instance=~"$instance", pool=~"$pool", state=~"established|close_wait|close"})
          / on (job, instance, pool)
          (tcpstate_pool_max_connections{job=~"$job", instance=~"$instance", pool=~"$pool"} > 0)
          )
        |||),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'percentunit',
          thresholds: g.thresholds([['green', null], ['orange', 0.8], ['red', 1.0]]),
        },
      },
      links: [
        g.runbookLink('Runbook: pool saturated', 'TCPStatePoolSaturated'),
      ],
    },
    g.stat {
      id: 4,
      title: 'Unresolved sockets on the host',
      description: g.text(|||
        Sockets on the selected hosts whose owner could not be found. Non-zero:
        the process figures on this dashboard may be too low, because some of
        its sockets are counted nowhere.
      |||, runbook='TCPStateUnresolvedSockets'),
      gridPos: g.grid(18, 0, 6, 4),
      targets: g.targets([
        g.target('sum by (job, instance) (tcpstate_unresolved_sockets{job=~"$job", instance=~"$instance"}) or vector(0)', '{{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          thresholds: g.thresholds([['green', null], ['orange', 1]]),
          decimals: 0,
        },
      },
      links: [
        g.runbookLink('Runbook: unresolved sockets', 'TCPStateUnresolvedSockets'),
      ],
    },
    g.row(5, 'Process $process', 4),
    g.timeseries {
      id: 6,
      title: 'Sockets of $process by state',
      description: g.text(|||
        All sockets owned by the selected process, by state and host. A
        CLOSE_WAIT line that only rises is a connection leak; TIME_WAIT is
        normal after closed connections and drains by itself.
      |||),
      gridPos: g.grid(0, 5, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance, state) (tcpstate_process_connections{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns"})', '{{state}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
      },
    },
    g.timeseries {
      id: 7,
      title: 'CLOSE_WAIT of $process by remote endpoint',
      description: g.text(|||
        CLOSE_WAIT sockets of the selected process per remote address and port:
        the upstream whose closed connections the process keeps. "other"
        collects endpoints beyond the exporter's series limit.
      |||),
      gridPos: g.grid(12, 5, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance, netns, remote_address, remote_port) (tcpstate_process_remote_connections{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns", state="close_wait"})', '{{remote_address}}:{{remote_port}} ({{netns}}) · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
      },
    },
    g.table {
      id: 8,
      title: 'Remote endpoints of $process',
      description: g.text(|||
        Each remote endpoint of the selected process with its CLOSE_WAIT and
        ESTABLISHED sockets, most CLOSE_WAIT first. An endpoint with CLOSE_WAIT
        close to the pool's max and almost nothing ESTABLISHED is the route
        whose pool is exhausted.
      |||),
      gridPos: g.grid(0, 13, 24, 9),
      targets: g.targets([
        g.target('sum by (job, instance, process, netns, remote_address, remote_port) (tcpstate_process_remote_connections{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns", state="close_wait"})', instant=true, table=true),
        g.target('sum by (job, instance, process, netns, remote_address, remote_port) (tcpstate_process_remote_connections{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns", state="established"})', instant=true, table=true),
        g.target(|||
          sum by (job, instance, process, netns, remote_address, remote_port) (
            tcpstate_process_remote_close_wait_unread_sockets{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns"}
          )
        |||, instant=true, table=true),
      ]),
      links: [],
      transformations: [
        {
          id: 'merge',
          options: {},
        },
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true },
            indexByName: g.columns([
              'remote_address',
              'netns',
              'remote_port',
              'Value #A',
              'Value #B',
              'Value #C',
              'process',
              'instance',
              'job',
            ]),
            renameByName: {
              'Value #A': 'CLOSE_WAIT',
              'Value #B': 'ESTABLISHED',
              'Value #C': 'UNREAD',
            },
          },
        },
      ],
      fieldConfig+: {
        overrides: [
          g.hidden('job'),
          g.redText('CLOSE_WAIT'),
        ],
      },
      options+: {
        sortBy: [
          { displayName: 'CLOSE_WAIT', desc: true },
        ],
      },
    },
    g.timeseries {
      id: 16,
      title: 'CLOSE_WAIT age of $process by remote endpoint',
      description: g.text(|||
        Do the CLOSE_WAIT sockets of the selected process stay? Solid lines
        (left axis): age of the oldest dead socket (CLOSE_WAIT, or CLOSE once
        the kernel dropped it; aged from CLOSE_WAIT) per remote endpoint, by the
        kernel's clock (netlink source) or else since the exporter first saw it;
        dotted lines (right axis): how many have been dead for longer than the
        exporter's --collector.close-wait.stuck-after
        (tcpstate_close_wait_stuck_after_seconds, 5m by default: the orange
        dashes). An age that climbs with the clock and a stuck count near the
        CLOSE_WAIT count: the same sockets stay, a leak or a pool that never
        evicts (TCPStateCloseWaitStuck fires above 10 stuck for 10 minutes). An
        age of seconds and no stuck sockets: the process closes them, only late.
        Ages from the kernel's clock survive a restart of the exporter;
        first-seen ages (procfs source, other network namespaces) restart at 0.
        tcpstate_exporter top --sockets names each socket.
      |||, runbook='TCPStateCloseWaitStuck'),
      gridPos: g.grid(0, 22, 24, 8),
      targets: g.targets([
        g.target('max by (job, instance, netns, remote_address, remote_port) (tcpstate_process_remote_close_wait_oldest_seconds{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns"})', '{{remote_address}}:{{remote_port}} ({{netns}}) · {{instance}} oldest'),
        g.target('sum by (job, instance, netns, remote_address, remote_port) (tcpstate_process_remote_close_wait_stuck_sockets{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns"})', '{{remote_address}}:{{remote_port}} ({{netns}}) · {{instance}} stuck'),
        g.target('max by (job, instance) (tcpstate_close_wait_stuck_after_seconds{job=~"$job", instance=~"$instance"})', 'stuck after · {{instance}}', refId='Z'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 's',
          custom+: {
            axisLabel: 'oldest CLOSE_WAIT age',
          },
        },
        overrides: [
          {
            matcher: { id: 'byFrameRefID', options: 'B' },
            properties: [
              { id: 'unit', value: 'short' },
              { id: 'decimals', value: 0 },
              { id: 'min', value: 0 },
              { id: 'custom.axisPlacement', value: 'right' },
              { id: 'custom.axisLabel', value: 'stuck sockets' },
              {
                id: 'custom.thresholdsStyle',
                value: { mode: 'off' },
              },
              {
                id: 'custom.lineStyle',
                value: {
                  fill: 'dot',
                  dash: [0, 10],
                },
              },
              { id: 'custom.lineWidth', value: 2 },
              { id: 'custom.fillOpacity', value: 0 },
            ],
          },
          g.dashedLine('Z', 'orange', [10, 10]),
        ],
      },
    },
    g.row(9, 'Pool $pool', 30),
    g.bargauge {
      id: 10,
      title: 'Pool usage vs max',
      description: g.text(|||
        For the selected pool on each selected host: share of max_connections
        held by ESTABLISHED + CLOSE_WAIT + CLOSE sockets ("in use") and by the
        dead ones alone, CLOSE_WAIT + CLOSE ("dead"; CLOSE: reset and dropped by
        the kernel, still held). Orange from 80%, red at 100%. Both bars high
        and close together: the pool is full of dead sockets.
      |||, runbook='TCPStatePoolExhausted'),
      gridPos: g.grid(0, 31, 8, 9),
      targets: g.targets([
        g.target(|||
          sum by (job, instance, pool) (tcpstate_pool_connections{job=~"$job", instance=~"$instance", pool=~"$pool", state=~"established|close_wait|close"})
          / on (job, instance, pool)
          (tcpstate_pool_max_connections{job=~"$job", instance=~"$instance", pool=~"$pool"} > 0)
        |||, '{{pool}} in use · {{instance}}', instant=true),
        g.target(|||
          sum by (job, instance, pool) (tcpstate_pool_connections{job=~"$job", instance=~"$instance", pool=~"$pool", state=~"close_wait|close"})
          / on (job, instance, pool)
          (tcpstate_pool_max_connections{job=~"$job", instance=~"$instance", pool=~"$pool"} > 0)
        |||, '{{pool}} dead · {{instance}}', instant=true),
      ]),
      links: [
        g.runbookLink('Runbook: pool exhausted', 'TCPStatePoolExhausted'),
        g.runbookLink('Runbook: pool saturated', 'TCPStatePoolSaturated'),
      ],
    },
    g.timeseries {
      id: 11,
      title: 'Pool $pool: ESTABLISHED, CLOSE_WAIT and CLOSE vs max',
      description: g.text(|||
        The sockets that take a slot of the selected pool: ESTABLISHED,
        CLOSE_WAIT and CLOSE (reset by the peer while the client still holds
        them; its other states hold none and stay near 0), against
        max_connections (red dashes) and 80% of it (orange dots). CLOSE_WAIT +
        CLOSE (the dead slots) reaching the red line is TCPStatePoolExhausted;
        all three reaching it is TCPStatePoolSaturated.
      |||, runbook='TCPStatePoolExhausted'),
      gridPos: g.grid(8, 31, 16, 9),
      targets: g.targets([
        g.target('sum by (job, instance, pool, state) (tcpstate_pool_connections{job=~"$job", instance=~"$instance", pool=~"$pool", state=~"established|close_wait|close"})', '{{pool}} {{state}} · {{instance}}'),
        g.target('tcpstate_pool_max_connections{job=~"$job", instance=~"$instance", pool=~"$pool"}', '{{pool}} max · {{instance}}'),
        g.target('0.8 * tcpstate_pool_max_connections{job=~"$job", instance=~"$instance", pool=~"$pool"}', '{{pool}} 80% of max · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
        overrides: [
          g.dashedLine('B', 'red', [10, 10]),
          g.dashedLine('C', 'orange', [2, 6]),
        ],
      },
    },
    g.table {
      id: 12,
      title: 'Pool declaration',
      description: g.text(|||
        What the exporter's configuration declares for the selected pool on each
        selected host: the process (a regular expression on the comm name),
        remote address or CIDR and remote port a socket must match ("any" when
        unset), and max_connections. If a pool shows no sockets while its
        process clearly has some, the matchers are wrong.
      |||),
      gridPos: g.grid(0, 40, 24, 5),
      targets: g.targets([
        g.target('max by (job, instance, pool, process, remote_address, remote_port) (tcpstate_pool_info{job=~"$job", instance=~"$instance", pool=~"$pool"})', instant=true, table=true),
        g.target('max by (job, instance, pool) (tcpstate_pool_max_connections{job=~"$job", instance=~"$instance", pool=~"$pool"})', instant=true, table=true),
      ]),
      links: [],
      transformations: [
        {
          id: 'merge',
          options: {},
        },
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true, 'Value #A': true },
            indexByName: g.columns([
              'pool',
              'instance',
              'process',
              'remote_address',
              'remote_port',
              'Value #B',
              'job',
            ]),
            renameByName: { 'Value #B': 'max_connections' },
          },
        },
      ],
      fieldConfig+: {
        overrides: [
          g.hidden('job'),
        ],
      },
      options+: {
        sortBy: [
          { displayName: 'pool', desc: false },
        ],
      },
    },
    g.timeseries {
      id: 17,
      title: 'Pool $pool: CLOSE_WAIT age and stuck sockets',
      description: g.text(|||
        Do the dead sockets of the selected pool stay? Solid lines (left axis):
        age of the pool's oldest dead socket (CLOSE_WAIT, or CLOSE once the
        kernel dropped it; aged from CLOSE_WAIT), by the kernel's clock (netlink
        source) or else since the exporter first saw it (0 when the pool has
        none); dotted lines (right axis): how many have been dead for longer
        than the exporter's --collector.close-wait.stuck-after
        (tcpstate_close_wait_stuck_after_seconds, 5m by default: the orange
        dashes). A stuck count that follows the pool's dead count (CLOSE_WAIT +
        CLOSE) towards max_connections is a leak that will exhaust the pool; an
        age of seconds is a client that closes its connections, only late. Ages
        from the kernel's clock survive a restart of the exporter; first-seen
        ages (procfs source, other network namespaces) restart at 0.
        tcpstate_exporter top --sockets names each socket.
      |||, runbook='TCPStateCloseWaitStuck'),
      gridPos: g.grid(0, 45, 24, 8),
      targets: g.targets([
        g.target('max by (job, instance, pool) (tcpstate_pool_close_wait_oldest_seconds{job=~"$job", instance=~"$instance", pool=~"$pool"})', '{{pool}} · {{instance}} oldest'),
        g.target('max by (job, instance, pool) (tcpstate_pool_close_wait_stuck_sockets{job=~"$job", instance=~"$instance", pool=~"$pool"})', '{{pool}} · {{instance}} stuck'),
        g.target('max by (job, instance) (tcpstate_close_wait_stuck_after_seconds{job=~"$job", instance=~"$instance"})', 'stuck after · {{instance}}', refId='Z'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 's',
          custom+: {
            axisLabel: 'oldest CLOSE_WAIT age',
          },
        },
        overrides: [
          {
            matcher: { id: 'byFrameRefID', options: 'B' },
            properties: [
              { id: 'unit', value: 'short' },
              { id: 'decimals', value: 0 },
              { id: 'min', value: 0 },
              { id: 'custom.axisPlacement', value: 'right' },
              { id: 'custom.axisLabel', value: 'stuck sockets' },
              {
                id: 'custom.thresholdsStyle',
                value: { mode: 'off' },
              },
              {
                id: 'custom.lineStyle',
                value: {
                  fill: 'dot',
                  dash: [0, 10],
                },
              },
              { id: 'custom.lineWidth', value: 2 },
              { id: 'custom.fillOpacity', value: 0 },
            ],
          },
          g.dashedLine('Z', 'orange', [10, 10]),
        ],
      },
    },
    g.row(13, 'Host queues in CLOSE_WAIT', 53),
    g.timeseries {
      id: 14,
      title: 'Receive queue bytes in CLOSE_WAIT',
      description: g.text(|||
        Unread data on CLOSE_WAIT sockets, per host (the exporter does not split
        bytes by process; the UNREAD column of "Remote endpoints of $process"
        counts the sockets per route). A CLOSE_WAIT socket whose process never
        read the end of stream holds the peer's FIN, which the kernel counts as
        one byte in Recv-Q; the exporter leaves it out, so these bytes are
        response data nobody read. Non-zero: responses that arrived before the
        server closed and that no one read, a leaked request; idle pooled
        connections show 0.
      |||),
      gridPos: g.grid(0, 54, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance) (tcpstate_receive_queue_bytes{job=~"$job", instance=~"$instance", state="close_wait"})', '{{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'bytes',
        },
      },
    },
    g.timeseries {
      id: 15,
      title: 'Transmit queue bytes in CLOSE_WAIT',
      description: g.text(|||
        Unacknowledged bytes on CLOSE_WAIT sockets of the whole host. Usually
        near zero; large values mean the process writes to connections the peer
        has already closed.
      |||),
      gridPos: g.grid(12, 54, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance) (tcpstate_transmit_queue_bytes{job=~"$job", instance=~"$instance", state="close_wait"})', '{{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'bytes',
        },
      },
    },
    g.row(190, 'Pods (network namespaces)', 62),
    g.table {
      id: 191,
      title: 'Pods running $process',
      description: g.text(|||
        The sockets of the selected process per network namespace, that is per
        pod on Kubernetes: when several pods run the same client, the one whose
        sockets sit in CLOSE_WAIT. Pick its netns above to narrow the panels to
        it. Pod and namespace come from kube-state-metrics' kube_pod_info,
        joined through tcpstate_netns_info{pod_uid}; where Prometheus has no
        kube_pod_info (no Kubernetes, or the host's own namespace) the row shows
        only netns: "host" for the host's namespace, else the container id or
        the name of the namespace's first process.
      |||),
      gridPos: g.grid(0, 63, 12, 9),
      targets: g.targets([
        g.target(|||
          sort_desc(
          sum by (job, instance, process, netns, namespace, pod) (
            label_join(
              tcpstate_process_connections{job=~"$job", instance=~"$instance", process=~"$process", state="close_wait"}
                * on (job, instance, netns) group_left (pod_uid)
              tcpstate_netns_info{job=~"$job", instance=~"$instance"},
              "uid", "", "pod_uid"
            )
            * on (uid) group_left (namespace, pod)
            max by (uid, namespace, pod) (kube_pod_info)
          )
          or on (job, instance, process, netns)
          sum by (job, instance, process, netns) (
            tcpstate_process_connections{job=~"$job", instance=~"$instance", process=~"$process", state="close_wait"}
          )
          )
        |||, instant=true, table=true),
        g.target(|||
          sum by (job, instance, process, netns, namespace, pod) (
            label_join(
              tcpstate_process_connections{job=~"$job", instance=~"$instance", process=~"$process", state="established"}
                * on (job, instance, netns) group_left (pod_uid)
              tcpstate_netns_info{job=~"$job", instance=~"$instance"},
              "uid", "", "pod_uid"
            )
            * on (uid) group_left (namespace, pod)
            max by (uid, namespace, pod) (kube_pod_info)
          )
          or on (job, instance, process, netns)
          sum by (job, instance, process, netns) (
            tcpstate_process_connections{job=~"$job", instance=~"$instance", process=~"$process", state="established"}
          )
        |||, instant=true, table=true),
      ]),
      transformations: [
        {
          id: 'merge',
          options: {},
        },
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true },
            indexByName: g.columns([
              'namespace',
              'pod',
              'netns',
              'process',
              'instance',
              'Value #A',
              'Value #B',
              'job',
              'uid',
              'pod_uid',
            ]),
            renameByName: { 'Value #A': 'CLOSE_WAIT', 'Value #B': 'ESTABLISHED' },
          },
        },
      ],
      fieldConfig+: {
        overrides: [
          g.hidden('job'),
          g.redText('CLOSE_WAIT'),
          g.hidden('uid'),
          g.hidden('pod_uid'),
        ],
      },
      options+: {
        sortBy: [
          { displayName: 'CLOSE_WAIT', desc: true },
        ],
      },
    },
    g.timeseries {
      id: 192,
      title: 'CLOSE_WAIT by pod (network namespace) on the host',
      description: g.text(|||
        CLOSE_WAIT sockets of every network namespace of the selected hosts,
        whatever process holds them (tcpstate_netns_connections): the pod whose
        sockets pile up. Pod and namespace come from kube-state-metrics'
        kube_pod_info, joined through tcpstate_netns_info{pod_uid}; where
        Prometheus has no kube_pod_info (no Kubernetes, or the host's own
        namespace) the row shows only netns: "host" for the host's namespace,
        else the container id or the name of the namespace's first process.
      |||),
      gridPos: g.grid(12, 63, 12, 9),
      targets: g.targets([
        g.target(|||
          sum by (job, instance, netns, namespace, pod) (
            label_join(
              tcpstate_netns_connections{job=~"$job", instance=~"$instance", state="close_wait"}
                * on (job, instance, netns) group_left (pod_uid)
              tcpstate_netns_info{job=~"$job", instance=~"$instance"},
              "uid", "", "pod_uid"
            )
            * on (uid) group_left (namespace, pod)
            max by (uid, namespace, pod) (kube_pod_info)
          )
          or on (job, instance, netns)
          sum by (job, instance, netns) (
            tcpstate_netns_connections{job=~"$job", instance=~"$instance", state="close_wait"}
          )
        |||, '{{namespace}}/{{pod}} ({{netns}}) · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
      },
    },
    g.row(18, 'Host ephemeral ports and accept queues', 72),
    g.timeseries {
      id: 19,
      title: 'Ephemeral ports held toward each destination vs usable',
      description: g.text(|||
        Local ports the selected hosts hold toward each destination (the 10 that
        hold most over the selected hosts), in any state, from the busiest local
        address, against the usable ephemeral ports, ip_local_port_range minus
        ip_local_reserved_ports (the "usable" line). Raw counts: a destination's
        line reaching the usable line means connect() to it fails with "Cannot
        assign requested address"; TCPStateEphemeralPortsExhausting warns when
        it stays at 80% of the usable line or above for a minute. The exporter
        reports only destinations holding at least 1% of the usable ports, so a
        healthy host draws the usable line alone; with no line at all, the
        exporter runs without its ephemeral collector or the collector fails.
      |||, runbook='TCPStateEphemeralPortsExhausting'),
      gridPos: g.grid(0, 73, 12, 8),
      targets: g.targets([
        g.target('topk(10, max by (job, instance, remote_address, remote_port) (tcpstate_ephemeral_ports_used{job=~"$job", instance=~"$instance"}))', '{{remote_address}}:{{remote_port}} · {{instance}}'),
        g.target('max by (job, instance) (tcpstate_ephemeral_ports_usable{job=~"$job", instance=~"$instance"})', 'usable · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
          noValue: 'No ephemeral-port figures: the ephemeral collector is off or failing',
        },
      },
      links: [
        g.runbookLink('Runbook: ephemeral ports', 'TCPStateEphemeralPortsExhausting'),
      ],
    },
    g.timeseries {
      id: 20,
      title: 'Accept queue length vs limit by listening port',
      description: g.text(|||
        Connections waiting for accept() on each listening port ("waiting") and
        the accept queue's limit, min(backlog, somaxconn) ("limit"; netlink
        source only: on the procfs source a port has no limit line). Raw counts:
        a waiting line at its port's limit line (a full queue reads one more)
        means the kernel drops new connections to that port and clients time
        out; TCPStateAcceptQueueFull fires when it stays there for a minute.
      |||, runbook='TCPStateAcceptQueueFull'),
      gridPos: g.grid(12, 73, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance, local_port) (tcpstate_accept_queue_sockets{job=~"$job", instance=~"$instance"})', '{{local_port}} waiting · {{instance}}'),
        g.target('sum by (job, instance, local_port) (tcpstate_accept_queue_max_sockets{job=~"$job", instance=~"$instance"})', '{{local_port}} limit · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
      },
      links: [
        g.runbookLink('Runbook: accept queue full', 'TCPStateAcceptQueueFull'),
      ],
    },
    g.row(30, "Host TCP limits and $process's share", 81),
    g.timeseries {
      id: 31,
      title: "TCP memory of $process vs the host's",
      description: g.text(|||
        Memory charged for $process's TCP sockets (r + w + f), beside the host's
        TCP memory and net.ipv4.tcp_mem's pressure and max. The $process line
        needs --collector.memory, off by default for its cost: without it the
        panel shows the host's lines only.
      |||, runbook='TCPStateMemoryPressure'),
      gridPos: g.grid(0, 82, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance, process) (tcpstate_process_memory_bytes{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns"})', '{{process}} · {{instance}}'),
        g.target('sum by (job, instance) (tcpstate_memory_bytes{job=~"$job", instance=~"$instance"})', 'in use · {{instance}}'),
        g.target('sum by (job, instance, threshold) (tcpstate_memory_limit_bytes{job=~"$job", instance=~"$instance"})', '{{threshold}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'bytes',
          decimals: 0,
        },
      },
      links: [
        g.runbookLink('Runbook: TCP memory pressure', 'TCPStateMemoryPressure'),
      ],
    },
    g.timeseries {
      id: 32,
      title: 'Orphans and listen drops on the host',
      description: g.text(|||
        Sockets closed by their process whose connection is not finished
        (host-wide) against net.ipv4.tcp_max_orphans; past it the kernel resets
        them, and a socket with a soft error counts double, so half the limit is
        already close. Right axis: SYNs and completed connections dropped per
        second by the listening sockets of each port (SK_MEMINFO drops; netlink
        source only).
      |||, runbook='TCPStateOrphansHigh'),
      gridPos: g.grid(12, 82, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance) (tcpstate_orphan_sockets{job=~"$job", instance=~"$instance"})', 'orphans · {{instance}}'),
        g.target('sum by (job, instance) (tcpstate_orphan_max_sockets{job=~"$job", instance=~"$instance"})', 'tcp_max_orphans · {{instance}}'),
        g.target('sum by (job, instance, local_port) (rate(tcpstate_listen_drops_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))', 'drops/s port {{local_port}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
        overrides: [
          {
            matcher: { id: 'byFrameRefID', options: 'C' },
            properties: [
              { id: 'unit', value: 'ops' },
              { id: 'decimals', value: 2 },
              { id: 'custom.axisPlacement', value: 'right' },
              { id: 'custom.axisLabel', value: 'listen drops' },
            ],
          },
        ],
      },
      links: [
        g.runbookLink('Runbook: orphans high', 'TCPStateOrphansHigh'),
      ],
    },
    g.row(240, 'File descriptors of $process', 90),
    g.stat {
      id: 241,
      title: 'File descriptors of $process (open / limit)',
      description: g.text(|||
        Open file descriptors of the selected process (its pid nearest the
        limit, per network namespace and host) against its soft limit
        (RLIMIT_NOFILE). At 100% accept(), connect() and open() fail with
        EMFILE "Too many open files". Orange from 90%, red at the limit.
      |||, runbook='TCPStateProcessFdsExhausted'),
      gridPos: g.grid(0, 91, 6, 8),
      targets: g.targets([
        g.target(|||
          tcpstate_process_open_fds{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns"}
          / on (job, instance, process, netns)
          (tcpstate_process_max_fds{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns"} > 0)
        |||, '{{netns}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'percentunit',
          decimals: 0,
          thresholds: g.thresholds([['green', null], ['orange', 0.9], ['red', 1]]),
        },
      },
      options+: {
        graphMode: 'area',
        colorMode: 'value',
      },
    },
    g.timeseries {
      id: 242,
      title: 'File descriptors of $process vs its limit, with its CLOSE_WAIT and CLOSE sockets',
      description: g.text(|||
        Open file descriptors (solid) and the soft limit (dashed) of the
        selected process, beside its sockets in CLOSE_WAIT and CLOSE (reset,
        still held). When the fds rise with the CLOSE_WAIT line, the leak is
        those sockets: the CLOSE_WAIT panel by remote endpoint names the
        upstream. When they rise alone, the leak is files or other descriptors.
      |||, runbook='TCPStateProcessFdsExhausting'),
      gridPos: g.grid(6, 91, 18, 8),
      targets: g.targets([
        g.target('tcpstate_process_open_fds{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns"}', 'open fds · {{netns}} · {{instance}}'),
        g.target('tcpstate_process_max_fds{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns"}', 'limit · {{netns}} · {{instance}}'),
        g.target('sum by (job, instance, netns, state) (tcpstate_process_connections{job=~"$job", instance=~"$instance", process=~"$process", netns=~"$netns", state=~"close_wait|close"})', '{{state}} sockets · {{netns}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
        overrides: [
          g.dashedSeries('B', [10, 10]),
        ],
      },
    },
  ],
)
