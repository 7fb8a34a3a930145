// The overview dashboard, rendered to dashboards/tcpstate-overview.json by `make
// mixin`. Each panel states its title, its description and its queries
// together; what it shares with the panels of its kind, and the site's
// _config applied to every query, come from lib/grafana.libsonnet.
function(g) g.dashboard(
  uid='tcpstate-overview',
  title='TCP sockets / Overview',
  description=g.text(|||
    TCP socket states per host, process, upstream and declared connection
    pool, from tcpstate_exporter. Start here when requests hang: find the
    pool full of CLOSE_WAIT, the process that holds it and the upstream it
    talks to.
  |||),
  otherTitle='TCP sockets / Drill-down',
  variables=[
    g.queryVariable('job', 'Job', 'Prometheus job that scrapes tcpstate_exporter.', 'label_values(tcpstate_exporter_build_info, job)'),
    g.queryVariable('instance', 'Host', 'Exporter instance, one per host.', 'label_values(tcpstate_exporter_build_info{job=~"$job"}, instance)'),
    g.queryVariable('pool', 'Pool', "Connection pool declared in the exporter's configuration.", 'label_values(tcpstate_pool_max_connections{job=~"$job", instance=~"$instance"}, pool)'),
    g.queryVariable('process', 'Process', 'Owning process (comm name) of the sockets.', 'label_values(tcpstate_process_connections{job=~"$job", instance=~"$instance"}, process)'),
  ],
  panels=[
    g.stat {
      id: 1,
      title: 'Pools saturated (all selected hosts)',
      description: g.text(|||
        Declared pools (counted once per host) whose sockets in use, ESTABLISHED
        + CLOSE_WAIT + CLOSE (reset and dropped by the kernel, still held by the
        client), have reached max_connections. A request that needs a new
        connection from such a pool waits or fails. Non-zero: look at "Pool
        usage" below to name the pool, then at the CLOSE_WAIT table to name the
        process.
      |||, runbook='TCPStatePoolSaturated'),
      gridPos: g.grid(0, 0, 4, 4),
      targets: g.targets([
        g.target(|||
          count(
            sum by (job, instance, pool) (tcpstate_pool_connections{job=~"$job", instance=~"$instance", pool=~"$pool", state=~"established|close_wait|close"})
          / on (job, instance, pool)
          (tcpstate_pool_max_connections{job=~"$job", instance=~"$instance", pool=~"$pool"} > 0) >= 1
          ) or vector(0)
        |||, instant=true),
      ]),
      fieldConfig+: {
        defaults+: {
          thresholds: g.thresholds([['green', null], ['red', 1]]),
          decimals: 0,
        },
      },
      links: [
        g.runbookLink('Runbook: pool saturated', 'TCPStatePoolSaturated'),
      ],
    },
    g.stat {
      id: 2,
      title: 'Pools > 80% dead: CLOSE_WAIT + CLOSE (all selected hosts)',
      description: g.text(|||
        Declared pools (counted once per host) where dead sockets fill more than
        80% of max_connections: CLOSE_WAIT (the server closed them) and CLOSE
        (reset and dropped by the kernel). The client process still holds them,
        so they never come back to the pool: the pool is leaking and will be
        exhausted.
      |||, runbook='TCPStatePoolCloseWaitHigh'),
      gridPos: g.grid(4, 0, 4, 4),
      targets: g.targets([
        g.target(|||
          count(
            sum by (job, instance, pool) (tcpstate_pool_connections{job=~"$job", instance=~"$instance", pool=~"$pool", state=~"close_wait|close"})
          / on (job, instance, pool)
          (tcpstate_pool_max_connections{job=~"$job", instance=~"$instance", pool=~"$pool"} > 0) > 0.8
          ) or vector(0)
        |||, instant=true),
      ]),
      fieldConfig+: {
        defaults+: {
          thresholds: g.thresholds([['green', null], ['red', 1]]),
          decimals: 0,
        },
      },
      links: [
        g.runbookLink('Runbook: pool CLOSE_WAIT high', 'TCPStatePoolCloseWaitHigh'),
      ],
    },
    g.stat {
      id: 3,
      title: 'CLOSE_WAIT sockets (all selected hosts)',
      description: g.text(|||
        All sockets in CLOSE_WAIT on the selected hosts: the peer has closed,
        the local process has not called close(). A steady rise means a process
        is leaking connections.
      |||, runbook='TCPStateCloseWaitAccumulating'),
      gridPos: g.grid(8, 0, 4, 4),
      targets: g.targets([
        g.target('sum(tcpstate_connections{job=~"$job", instance=~"$instance", state="close_wait"})'),
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
      links: [
        g.runbookLink('Runbook: CLOSE_WAIT accumulating', 'TCPStateCloseWaitAccumulating'),
      ],
    },
    g.stat {
      id: 4,
      title: 'Unresolved sockets (all selected hosts)',
      description: g.text(|||
        Sockets whose owning process the exporter could not find, usually
        because it runs without CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE.
        Non-zero: the per-process and per-pool numbers on this dashboard
        undercount.
      |||, runbook='TCPStateUnresolvedSockets'),
      gridPos: g.grid(12, 0, 4, 4),
      targets: g.targets([
        g.target('sum(tcpstate_unresolved_sockets{job=~"$job", instance=~"$instance"}) or vector(0)'),
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
    g.stat {
      id: 5,
      title: 'Failing collectors (all selected hosts)',
      description: g.text(|||
        Collectors (connections, queues, ports, process, pools) that failed on
        their last scrape, counted over the selected hosts. The families of a
        failed collector are missing, so panels fed by it show nothing rather
        than zero. Details in the "Exporter health" row.
      |||, runbook='TCPStateExporterCollectorFailed'),
      gridPos: g.grid(16, 0, 4, 4),
      targets: g.targets([
        g.target('count(tcpstate_scrape_collector_success{job=~"$job", instance=~"$instance"} == 0) or vector(0)'),
      ]),
      fieldConfig+: {
        defaults+: {
          thresholds: g.thresholds([['green', null], ['red', 1]]),
          decimals: 0,
        },
      },
      links: [
        g.runbookLink('Runbook: collector failed', 'TCPStateExporterCollectorFailed'),
      ],
    },
    g.stat {
      id: 6,
      title: 'Truncated families (all selected hosts)',
      description: g.text(|||
        Families that hit their series limit on some host, so extra ports,
        processes or endpoints were folded into the value "other". The culprit
        may hide in "other": raise the limit or narrow the family.
      |||, runbook='TCPStateSeriesTruncated'),
      gridPos: g.grid(20, 0, 4, 4),
      targets: g.targets([
        g.target('count(tcpstate_series_truncated{job=~"$job", instance=~"$instance"} > 0) or vector(0)'),
      ]),
      fieldConfig+: {
        defaults+: {
          thresholds: g.thresholds([['green', null], ['orange', 1]]),
          decimals: 0,
        },
      },
      links: [
        g.runbookLink('Runbook: series truncated', 'TCPStateSeriesTruncated'),
      ],
    },
    g.row(7, 'Connection pools', 4),
    g.bargauge {
      id: 8,
      title: 'Pool usage: (ESTABLISHED + CLOSE_WAIT + CLOSE) / max',
      description: g.text(|||
        Share of each declared pool's max_connections held by its sockets in
        use: ESTABLISHED, and the dead ones the client still holds, CLOSE_WAIT
        and CLOSE (reset and dropped by the kernel). Orange from 80%, red at
        100%: at 100% the pool has no free slot and callers block. If the dead
        gauge on the right is close to this one, the pool is full of dead
        sockets, not of busy ones.
      |||, runbook='TCPStatePoolSaturated'),
      gridPos: g.grid(0, 5, 12, 8),
      targets: g.targets([
        g.target(|||
          sum by (job, instance, pool) (tcpstate_pool_connections{job=~"$job", instance=~"$instance", pool=~"$pool", state=~"established|close_wait|close"})
          / on (job, instance, pool)
          (tcpstate_pool_max_connections{job=~"$job", instance=~"$instance", pool=~"$pool"} > 0)
        |||, '{{pool}} · {{instance}}', instant=true),
      ]),
      links: [
        g.runbookLink('Runbook: pool saturated', 'TCPStatePoolSaturated'),
      ],
      fieldConfig+: {
        defaults+: {
          links: [
            g.drilldownLink('Drill down into pool ${__field.labels.pool}', ['job', 'instance', 'pool'], 'field'),
          ],
        },
      },
    },
    g.bargauge {
      id: 9,
      title: 'Pool dead (CLOSE_WAIT + CLOSE) / max',
      description: g.text(|||
        Share of each declared pool's max_connections taken by dead sockets:
        CLOSE_WAIT (the server closed them and the client process has not) and
        CLOSE (the same, reset and dropped by the kernel, still held). Orange
        from 80% (TCPStatePoolCloseWaitHigh), red at 100%
        (TCPStatePoolExhausted): every request on that route will block until
        the process closes or is restarted.
      |||, runbook='TCPStatePoolExhausted'),
      gridPos: g.grid(12, 5, 12, 8),
      targets: g.targets([
        g.target(|||
          sum by (job, instance, pool) (tcpstate_pool_connections{job=~"$job", instance=~"$instance", pool=~"$pool", state=~"close_wait|close"})
          / on (job, instance, pool)
          (tcpstate_pool_max_connections{job=~"$job", instance=~"$instance", pool=~"$pool"} > 0)
        |||, '{{pool}} · {{instance}}', instant=true),
      ]),
      links: [
        g.runbookLink('Runbook: pool exhausted', 'TCPStatePoolExhausted'),
        g.runbookLink('Runbook: pool CLOSE_WAIT high', 'TCPStatePoolCloseWaitHigh'),
      ],
      fieldConfig+: {
        defaults+: {
          links: [
            g.drilldownLink('Drill down into pool ${__field.labels.pool}', ['job', 'instance', 'pool'], 'field'),
          ],
        },
      },
    },
    g.timeseries {
      id: 10,
      title: 'Pool dead (CLOSE_WAIT + CLOSE) vs max',
      description: g.text(|||
        Dead sockets per pool, CLOSE_WAIT + CLOSE (solid), against the pool's
        max_connections (red dashes, TCPStatePoolExhausted) and 80% of it
        (orange dots, TCPStatePoolCloseWaitHigh). A solid line climbing towards
        its dashes is a leak in progress; a flat line at the dashes is an
        outage.
      |||, runbook='TCPStatePoolExhausted'),
      gridPos: g.grid(0, 13, 12, 9),
      targets: g.targets([
        g.target('sum by (job, instance, pool) (tcpstate_pool_connections{job=~"$job", instance=~"$instance", pool=~"$pool", state=~"close_wait|close"})', '{{pool}} dead · {{instance}}'),
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
      links: [
        g.runbookLink('Runbook: pool exhausted', 'TCPStatePoolExhausted'),
      ],
    },
    g.table {
      id: 11,
      title: 'Declared pools',
      description: g.text(|||
        Every pool from the exporter's configuration with its matchers ("any"
        when a matcher is not set), its max_connections and its current
        ESTABLISHED sockets and dead ones (CLOSE_WAIT + CLOSE). A pool with zero
        sockets everywhere may have matchers that match nothing. Click a pool to
        drill down.
      |||),
      gridPos: g.grid(12, 13, 12, 9),
      targets: g.targets([
        g.target('max by (job, instance, pool, process, remote_address, remote_port) (tcpstate_pool_info{job=~"$job", instance=~"$instance", pool=~"$pool"})', instant=true, table=true),
        g.target('max by (job, instance, pool) (tcpstate_pool_max_connections{job=~"$job", instance=~"$instance", pool=~"$pool"})', instant=true, table=true),
        g.target('sum by (job, instance, pool) (tcpstate_pool_connections{job=~"$job", instance=~"$instance", pool=~"$pool", state="established"})', instant=true, table=true),
        g.target('sum by (job, instance, pool) (tcpstate_pool_connections{job=~"$job", instance=~"$instance", pool=~"$pool", state=~"close_wait|close"})', instant=true, table=true),
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
              'Value #C',
              'Value #D',
              'job',
            ]),
            renameByName: {
              'Value #B': 'max',
              'Value #C': 'ESTABLISHED',
              'Value #D': 'DEAD (CLOSE_WAIT + CLOSE)',
            },
          },
        },
      ],
      fieldConfig+: {
        overrides: [
          g.hidden('job'),
          g.columnLinks('pool', [
            g.drilldownLink('Drill down into pool ${__data.fields.pool}', ['job', 'instance', 'pool'], 'data'),
          ]),
        ],
      },
      options+: {
        sortBy: [
          { displayName: 'CLOSE_WAIT', desc: true },
        ],
      },
    },
    g.row(12, 'CLOSE_WAIT by process and upstream', 22),
    g.table {
      id: 13,
      title: 'CLOSE_WAIT sockets by process and remote endpoint',
      description: g.text(|||
        Who holds the CLOSE_WAIT sockets: each row is a process (comm name) on a
        host with its CLOSE_WAIT sockets towards one remote address and port,
        largest first, with its ESTABLISHED sockets to the same endpoint beside
        it. Many CLOSE_WAIT and few ESTABLISHED to one upstream is the signature
        of a client pool that never closes connections the server dropped (idle
        timeout, deploy, load balancer reset). UNREAD counts the CLOSE_WAIT
        sockets still holding response data nobody read: a leaked request (a
        response not consumed or closed). CLOSE_WAIT with UNREAD 0: idle
        connections the server closed and the pool never evicted. Restarting the
        process frees them; the fix is in its HTTP client (close responses,
        evict idle connections). Whether these sockets stay or churn is in
        "Stuck CLOSE_WAIT sockets" below. Click the process to drill down.
      |||, runbook='TCPStateCloseWaitAccumulating') + ' ' + g.words(|||
        netns tells pods (network namespaces) apart: "host" for the host's own;
        "Pods" below names them.
      |||),
      gridPos: g.grid(0, 23, 24, 10),
      targets: g.targets([
        g.target(|||
          sort_desc(
            sum by (job, instance, process, netns, remote_address, remote_port) (
              tcpstate_process_remote_connections{job=~"$job", instance=~"$instance", process=~"$process", state="close_wait"}
            ) > 0
          )
        |||, instant=true, table=true),
        g.target(|||
          sum by (job, instance, process, netns, remote_address, remote_port) (
            tcpstate_process_remote_connections{job=~"$job", instance=~"$instance", process=~"$process", state="established"}
          )
          and on (job, instance, process, netns, remote_address, remote_port)
          (
            sum by (job, instance, process, netns, remote_address, remote_port) (
              tcpstate_process_remote_connections{job=~"$job", instance=~"$instance", process=~"$process", state="close_wait"}
            ) > 0
          )
        |||, instant=true, table=true),
        g.target(|||
          sum by (job, instance, process, netns, remote_address, remote_port) (
            tcpstate_process_remote_close_wait_unread_sockets{job=~"$job", instance=~"$instance", process=~"$process"}
          )
        |||, instant=true, table=true),
      ]),
      links: [
        g.drilldownPanelLink('Drill down into the selected process', ['job', 'instance', 'process']),
        g.runbookLink('Runbook: CLOSE_WAIT accumulating', 'TCPStateCloseWaitAccumulating'),
      ],
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
              'process',
              'netns',
              'instance',
              'remote_address',
              'remote_port',
              'Value #A',
              'Value #B',
              'Value #C',
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
          g.columnLinks('process', [
            g.drilldownLink('Drill down into ${__data.fields.process} on ${__data.fields.instance}', ['job', 'instance', 'process', 'netns'], 'data'),
          ]),
          g.redText('CLOSE_WAIT'),
        ],
      },
      options+: {
        sortBy: [
          { displayName: 'CLOSE_WAIT', desc: true },
        ],
      },
    },
    g.table {
      id: 29,
      title: 'Stuck CLOSE_WAIT sockets',
      description: g.text(|||
        Are the CLOSE_WAIT sockets the same ones all along? Each row is a
        process and remote endpoint with dead sockets (CLOSE_WAIT, or CLOSE once
        the kernel dropped them; "CLOSE_WAIT" counts the first kind): "stuck"
        counts those dead for longer than its --collector.close-wait.stuck-after
        (5m by default; tcpstate_close_wait_stuck_after_seconds says each
        exporter's), "oldest" is the age of the oldest one. Many stuck and an
        oldest age of hours: the process leaks connections or its pool never
        evicts dead ones (TCPStateCloseWaitStuck fires above 10 stuck for 10
        minutes, red). No stuck and an oldest age of seconds, however many
        CLOSE_WAIT: a busy client that closes them, only late. Ages come from
        the kernel's clock (netlink source), which survives a restart of the
        exporter, or else from the exporter's first sighting, which does not
        (tcpstate_close_wait_age_sockets says which). Click the process to drill
        down; tcpstate_exporter top --sockets on the host names each socket.
      |||, runbook='TCPStateCloseWaitStuck') + ' ' + g.words(|||
        netns tells pods (network namespaces) apart: "host" for the host's own;
        "Pods" below names them.
      |||),
      gridPos: g.grid(0, 33, 12, 9),
      targets: g.targets([
        g.target(|||
          sort_desc(
            max by (job, instance, process, netns, remote_address, remote_port) (
              tcpstate_process_remote_close_wait_stuck_sockets{job=~"$job", instance=~"$instance", process=~"$process"}
            )
          )
        |||, instant=true, table=true),
        g.target(|||
          max by (job, instance, process, netns, remote_address, remote_port) (
            tcpstate_process_remote_close_wait_oldest_seconds{job=~"$job", instance=~"$instance", process=~"$process"}
          )
        |||, instant=true, table=true),
        g.target(|||
          sum by (job, instance, process, netns, remote_address, remote_port) (
            tcpstate_process_remote_connections{job=~"$job", instance=~"$instance", process=~"$process", state="close_wait"}
          )
          and on (job, instance, process, netns, remote_address, remote_port)
          tcpstate_process_remote_close_wait_stuck_sockets{job=~"$job", instance=~"$instance", process=~"$process"}
        |||, instant=true, table=true),
      ]),
      links: [
        g.drilldownPanelLink('Drill down into the selected process', ['job', 'instance', 'process']),
        g.runbookLink('Runbook: CLOSE_WAIT stuck', 'TCPStateCloseWaitStuck'),
      ],
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
              'process',
              'netns',
              'instance',
              'remote_address',
              'remote_port',
              'Value #A',
              'Value #C',
              'Value #B',
              'job',
            ]),
            renameByName: { 'Value #A': 'stuck', 'Value #B': 'oldest', 'Value #C': 'CLOSE_WAIT' },
          },
        },
      ],
      fieldConfig+: {
        overrides: [
          g.hidden('job'),
          g.columnLinks('process', [
            g.drilldownLink('Drill down into ${__data.fields.process} on ${__data.fields.instance}', ['job', 'instance', 'process', 'netns'], 'data'),
          ]),
          {
            matcher: { id: 'byName', options: 'stuck' },
            properties: [
              { id: 'decimals', value: 0 },
              {
                id: 'custom.cellOptions',
                value: { type: 'color-text' },
              },
              {
                id: 'thresholds',
                value: {
                  mode: 'absolute',
                  steps: [
                    { color: 'green', value: null },
                    { color: 'orange', value: 1 },
                    { color: 'red', value: 11 },
                  ],
                },
              },
            ],
          },
          {
            matcher: { id: 'byName', options: 'oldest' },
            properties: [
              { id: 'unit', value: 'dtdurations' },
              {
                id: 'custom.cellOptions',
                value: { type: 'color-text' },
              },
              {
                id: 'thresholds',
                value: {
                  mode: 'absolute',
                  steps: [
                    { color: 'green', value: null },
                    { color: 'orange', value: 300 },
                  ],
                },
              },
            ],
          },
          {
            matcher: { id: 'byName', options: 'CLOSE_WAIT' },
            properties: [
              { id: 'decimals', value: 0 },
            ],
          },
        ],
      },
      options+: {
        sortBy: [
          { displayName: 'stuck', desc: true },
        ],
      },
    },
    g.timeseries {
      id: 30,
      title: 'Oldest CLOSE_WAIT socket by process and remote endpoint',
      description: g.text(|||
        Age of the oldest dead socket (CLOSE_WAIT, or CLOSE once the kernel
        dropped it; aged from CLOSE_WAIT) of each process and remote endpoint,
        by the kernel's clock (netlink source) or else since the exporter first
        saw it. A line that climbs steadily (one second per second) is a socket
        that has stayed all along: a leak or a pool without eviction. A sawtooth
        near the bottom is churn: sockets are closed, only late. The orange
        dashes are each exporter's --collector.close-wait.stuck-after
        (tcpstate_close_wait_stuck_after_seconds, 5m by default); above them
        sockets count as stuck. A line that ends or falls to 0 means the sockets
        were closed (process restarted, pool recycled) or, for first-seen ages
        only, the exporter restarted. Click a line to drill down. netns tells
        pods (network namespaces) apart: "host" for the host's own; "Pods" below
        names them.
      |||),
      gridPos: g.grid(12, 33, 12, 9),
      targets: g.targets([
        g.target(|||
          max by (job, instance, process, netns, remote_address, remote_port) (
            tcpstate_process_remote_close_wait_oldest_seconds{job=~"$job", instance=~"$instance", process=~"$process"}
          )
        |||, '{{process}} ({{netns}}) → {{remote_address}}:{{remote_port}} · {{instance}}'),
        g.target('max by (job, instance) (tcpstate_close_wait_stuck_after_seconds{job=~"$job", instance=~"$instance"})', 'stuck after · {{instance}}', refId='Z'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 's',
          custom+: {
            axisLabel: 'oldest CLOSE_WAIT age',
          },
          links: [
            g.drilldownLink('Drill down into ${__field.labels.process} on ${__field.labels.instance}', ['job', 'instance', 'process'], 'field'),
          ],
        },
        overrides: [
          g.dashedLine('Z', 'orange', [10, 10]),
        ],
      },
    },
    g.timeseries {
      id: 14,
      title: 'CLOSE_WAIT and CLOSE (reset, still held) sockets by process',
      description: g.text(|||
        CLOSE_WAIT and CLOSE sockets per owning process, state and host: CLOSE
        ones were reset and dropped by the kernel (gone from ss) while the
        process still holds them. A line that only goes up is a process that
        leaks connections; a drop to zero is usually a restart. Sockets whose
        owner could not be found are not here (see "Unresolved sockets"). Click
        a line to drill down.
      |||),
      gridPos: g.grid(0, 42, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance, process, state) (tcpstate_process_connections{job=~"$job", instance=~"$instance", process=~"$process", state=~"close_wait|close"})', '{{process}} {{state}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
          links: [
            g.drilldownLink('Drill down into ${__field.labels.process} on ${__field.labels.instance}', ['job', 'instance', 'process'], 'field'),
          ],
        },
      },
    },
    g.timeseries {
      id: 15,
      title: 'CLOSE_WAIT sockets by remote port',
      description: g.text(|||
        Outbound CLOSE_WAIT sockets per remote port, over all processes: which
        upstream service's connections are piling up. "other" collects ports
        beyond the exporter's series limit.
      |||),
      gridPos: g.grid(12, 42, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance, remote_port) (tcpstate_remote_port_connections{job=~"$job", instance=~"$instance", state="close_wait"})', 'port {{remote_port}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
      },
    },
    g.row(16, 'Socket states per host', 50),
    g.timeseries {
      id: 17,
      title: 'CLOSE_WAIT sockets per host',
      description: g.text(|||
        CLOSE_WAIT sockets on each host, IPv4 and IPv6 together. Compare hosts
        of one service: a single host climbing points at one stuck process; all
        hosts climbing together points at an upstream that started closing idle
        connections.
      |||, runbook='TCPStateCloseWaitAccumulating'),
      gridPos: g.grid(0, 51, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance) (tcpstate_connections{job=~"$job", instance=~"$instance", state="close_wait"})', '{{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
      },
    },
    g.timeseries {
      id: 18,
      title: 'Inbound sockets by local port',
      description: g.text(|||
        Sockets accepted on each local port by state (listeners left out).
        CLOSE_WAIT here means this host's server process is not closing
        connections its clients dropped; many SYN_RECV means the accept queue or
        a SYN flood.
      |||),
      gridPos: g.grid(12, 51, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance, local_port, state) (tcpstate_local_port_connections{job=~"$job", instance=~"$instance", state!="listen"})', '{{local_port}} {{state}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
      },
    },
    g.timeseries {
      id: 19,
      title: 'Socket states on $instance',
      description: g.text(|||
        Every TCP socket on this host by state, IPv4 and IPv6 together; one
        panel per selected host. ESTABLISHED is normal load, TIME_WAIT follows
        closed connections and drains by itself, CLOSE_WAIT never drains without
        the owning process.
      |||),
      gridPos: g.grid(0, 59, 8, 8),
      targets: g.targets([
        g.target('sum by (job, instance, state) (tcpstate_connections{job=~"$job", instance=~"$instance"})', '{{state}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
        },
      },
      options+: {
        legend+: {
          calcs: ['lastNotNull'],
        },
      },
      repeat: 'instance',
      repeatDirection: 'h',
      maxPerRow: 3,
    },
    g.row(20, 'Socket queues', 67),
    g.timeseries {
      id: 21,
      title: 'Receive queue bytes by state',
      description: g.text(|||
        Data that arrived but the owning process has not read yet, per host and
        state. A CLOSE_WAIT socket whose process never read the end of stream
        holds the peer's FIN, which the kernel counts as one byte in Recv-Q; the
        exporter leaves it out, so these bytes are response data nobody read.
        Bytes in CLOSE_WAIT mean requests whose responses were never read
        (leaked); idle pooled connections the server closed show 0 here. Which
        routes hold them: the UNREAD column of the CLOSE_WAIT table. Large
        ESTABLISHED values mean a process too slow to read.
      |||),
      gridPos: g.grid(0, 68, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance, state) (tcpstate_receive_queue_bytes{job=~"$job", instance=~"$instance"})', '{{state}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'bytes',
        },
      },
    },
    g.timeseries {
      id: 22,
      title: 'Transmit queue bytes by state',
      description: g.text(|||
        Bytes written but not yet acknowledged by the peer, per host and state.
        Growing values mean the peer or the network does not keep up.
      |||),
      gridPos: g.grid(12, 68, 12, 8),
      targets: g.targets([
        g.target('sum by (job, instance, state) (tcpstate_transmit_queue_bytes{job=~"$job", instance=~"$instance"})', '{{state}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'bytes',
        },
      },
    },
    g.row(31, 'Ephemeral ports and accept queues', 76),
    g.timeseries {
      id: 32,
      title: 'Ephemeral ports held per destination (of usable)',
      description: g.text(|||
        Share of the usable ephemeral ports (ip_local_port_range minus
        ip_local_reserved_ports) that this host holds toward each destination,
        in any state, from its busiest local address. At 100% connect() to that
        destination fails with "Cannot assign requested address"; the dashed
        line is TCPStateEphemeralPortsExhausting's 80%. The exporter reports
        only destinations holding at least 1% of the usable ports, so a healthy
        host draws no line: the panel then reads "No destination holds ≥ 1% of
        the usable ephemeral ports". It reads the same when the exporter runs
        without its ephemeral collector or the collector fails ("Failing
        collectors" above).
      |||, runbook='TCPStateEphemeralPortsExhausting'),
      gridPos: g.grid(0, 77, 12, 8),
      targets: g.targets([
        g.target(|||
          max by (job, instance, remote_address, remote_port) (tcpstate_ephemeral_ports_used{job=~"$job", instance=~"$instance"})
            / ignoring (remote_address, remote_port) group_left
          max by (job, instance) (tcpstate_ephemeral_ports_usable{job=~"$job", instance=~"$instance"})
        |||, '{{remote_address}}:{{remote_port}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'percentunit',
          thresholds: g.thresholds([['green', null], ['red', 0.8]]),
          custom+: {
            thresholdsStyle+: {
              mode: 'dashed',
            },
          },
          noValue: 'No destination holds ≥ 1% of the usable ephemeral ports',
        },
      },
      links: [
        g.runbookLink('Runbook: ephemeral ports', 'TCPStateEphemeralPortsExhausting'),
      ],
    },
    g.timeseries {
      id: 33,
      title: 'Accept queue fill by listening port',
      description: g.text(|||
        Connections waiting for accept() on each listening port, over the accept
        queue's limit (min(backlog, somaxconn); netlink source only). At 100%
        the kernel drops new connections to that port and clients time out.
      |||, runbook='TCPStateAcceptQueueFull'),
      gridPos: g.grid(12, 77, 12, 8),
      targets: g.targets([
        g.target(|||
          sum by (job, instance, local_port) (tcpstate_accept_queue_sockets{job=~"$job", instance=~"$instance"})
            /
          sum by (job, instance, local_port) (tcpstate_accept_queue_max_sockets{job=~"$job", instance=~"$instance"})
        |||, '{{local_port}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'percentunit',
          thresholds: g.thresholds([['green', null], ['red', 1]]),
          custom+: {
            thresholdsStyle+: {
              mode: 'dashed',
            },
          },
        },
      },
      links: [
        g.runbookLink('Runbook: accept queue full', 'TCPStateAcceptQueueFull'),
      ],
    },
    g.row(23, 'Exporter health', 85, collapsed=true, panels=[
      g.stat {
        id: 24,
        title: 'Collector success (worst over all selected hosts)',
        description: g.text(|||
          Worst result of each collector over the selected hosts on the last
          scrape. FAILED: that collector's families are missing and the panels fed
          by it are empty, not zero; the exporter log says why.
        |||, runbook='TCPStateExporterCollectorFailed'),
        gridPos: g.grid(0, 86, 8, 6),
        targets: g.targets([
          g.target('min by (collector) (tcpstate_scrape_collector_success{job=~"$job", instance=~"$instance"})', '{{collector}}'),
        ]),
        fieldConfig+: {
          defaults+: {
            thresholds: g.thresholds([['red', null], ['green', 1]]),
            mappings: [
              {
                type: 'value',
                options: {
                  '0': { text: 'FAILED', color: 'red', index: 0 },
                  '1': { text: 'OK', color: 'green', index: 1 },
                },
              },
            ],
            decimals: 0,
          },
        },
        options+: {
          textMode: 'value_and_name',
        },
        links: [
          g.runbookLink('Runbook: collector failed', 'TCPStateExporterCollectorFailed'),
        ],
      },
      g.timeseries {
        id: 25,
        title: 'Collector scrape duration',
        description: g.text(|||
          Time each collector took on the last scrape, per host. Values near the
          scrape timeout make scrapes fail; the process collector grows with the
          number of open file descriptors on the host.
        |||),
        gridPos: g.grid(8, 86, 8, 6),
        targets: g.targets([
          g.target('max by (job, instance, collector) (tcpstate_scrape_collector_duration_seconds{job=~"$job", instance=~"$instance"})', '{{collector}} · {{instance}}'),
        ]),
        fieldConfig+: {
          defaults+: {
            unit: 's',
          },
        },
      },
      g.timeseries {
        id: 26,
        title: 'Unresolved sockets by state',
        description: g.text(|||
          Sockets with no owning process found, per host and state. Usually
          missing capabilities (CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE) or sockets of
          processes that exited during the scrape. While non-zero, process and
          pool panels undercount.
        |||, runbook='TCPStateUnresolvedSockets'),
        gridPos: g.grid(16, 86, 8, 6),
        targets: g.targets([
          g.target('sum by (job, instance, state) (tcpstate_unresolved_sockets{job=~"$job", instance=~"$instance"})', '{{state}} · {{instance}}'),
        ]),
        fieldConfig+: {
          defaults+: {
            decimals: 0,
          },
        },
        links: [
          g.runbookLink('Runbook: unresolved sockets', 'TCPStateUnresolvedSockets'),
        ],
      },
      g.timeseries {
        id: 27,
        title: 'Series truncated',
        description: g.text(|||
          Per family and host, how many series were folded into "other" because
          the family reached its limit. Non-zero: a port, process or endpoint you
          are looking for may be hidden in "other".
        |||, runbook='TCPStateSeriesTruncated'),
        gridPos: g.grid(0, 92, 12, 7),
        targets: g.targets([
          g.target('max by (job, instance, metric) (tcpstate_series_truncated{job=~"$job", instance=~"$instance"})', '{{metric}} · {{instance}}'),
        ]),
        fieldConfig+: {
          defaults+: {
            decimals: 0,
          },
        },
        links: [
          g.runbookLink('Runbook: series truncated', 'TCPStateSeriesTruncated'),
        ],
      },
      g.table {
        id: 28,
        title: 'Exporter builds and configuration',
        description: g.text(|||
          Version of tcpstate_exporter on each host and whether its last
          configuration reload worked. A failed reload keeps the previous pools
          running: pool panels then show the old declarations.
        |||, runbook='TCPStateConfigReloadFailed'),
        gridPos: g.grid(12, 92, 12, 7),
        targets: g.targets([
          g.target('max by (job, instance, version, revision, branch, goversion) (tcpstate_exporter_build_info{job=~"$job", instance=~"$instance"})', instant=true, table=true),
          g.target('max by (job, instance) (tcpstate_config_last_reload_successful{job=~"$job", instance=~"$instance"})', instant=true, table=true),
        ]),
        links: [
          g.runbookLink('Runbook: config reload failed', 'TCPStateConfigReloadFailed'),
        ],
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
                'instance',
                'job',
                'version',
                'revision',
                'branch',
                'goversion',
                'Value #B',
              ]),
              renameByName: { 'Value #B': 'last reload' },
            },
          },
        ],
        fieldConfig+: {
          overrides: [
            {
              matcher: { id: 'byName', options: 'last reload' },
              properties: [
                {
                  id: 'mappings',
                  value: [
                    {
                      type: 'value',
                      options: {
                        '0': { text: 'failed', color: 'red', index: 0 },
                        '1': { text: 'ok', color: 'green', index: 1 },
                      },
                    },
                  ],
                },
                {
                  id: 'custom.cellOptions',
                  value: { type: 'color-text' },
                },
              ],
            },
          ],
        },
        options+: {
          sortBy: [
            { displayName: 'instance', desc: false },
          ],
        },
      },
    ]),
    g.row(190, 'Pods (network namespaces)', 86),
    g.table {
      id: 191,
      title: 'Sockets by pod (network namespace)',
      description: g.text(|||
        CLOSE_WAIT and ESTABLISHED sockets per network namespace, that is per
        pod on Kubernetes, largest first: which pod holds the dead sockets when
        several run the same client. Per process and endpoint within a pod: the
        tables above, by netns. Pod and namespace come from kube-state-metrics'
        kube_pod_info, joined through tcpstate_netns_info{pod_uid}; where
        Prometheus has no kube_pod_info (no Kubernetes, or the host's own
        namespace) the row shows only netns: "host" for the host's namespace,
        else the container id or the name of the namespace's first process.
      |||),
      gridPos: g.grid(0, 87, 24, 10),
      targets: g.targets([
        g.target(|||
          sort_desc(
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
          )
        |||, instant=true, table=true),
        g.target(|||
          sum by (job, instance, netns, namespace, pod) (
            label_join(
              tcpstate_netns_connections{job=~"$job", instance=~"$instance", state="established"}
                * on (job, instance, netns) group_left (pod_uid)
              tcpstate_netns_info{job=~"$job", instance=~"$instance"},
              "uid", "", "pod_uid"
            )
            * on (uid) group_left (namespace, pod)
            max by (uid, namespace, pod) (kube_pod_info)
          )
          or on (job, instance, netns)
          sum by (job, instance, netns) (
            tcpstate_netns_connections{job=~"$job", instance=~"$instance", state="established"}
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
    g.row(40, 'Host TCP limits: memory, orphans, listen drops', 97),
    g.timeseries {
      id: 41,
      title: 'TCP memory vs tcp_mem thresholds',
      description: g.text(|||
        Memory the kernel charges to TCP sockets (host-wide, /proc/net/sockstat
        mem) against net.ipv4.tcp_mem's three thresholds: above pressure the
        kernel shrinks every socket's buffers, at max it drops and resets
        connections.
      |||, runbook='TCPStateMemoryPressure'),
      gridPos: g.grid(0, 98, 8, 8),
      targets: g.targets([
        g.target('sum by (job, instance) (tcpstate_memory_bytes{job=~"$job", instance=~"$instance"})', 'in use · {{instance}}'),
        g.target('sum by (job, instance, threshold) (tcpstate_memory_limit_bytes{job=~"$job", instance=~"$instance"})', '{{threshold}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'bytes',
        },
      },
      links: [
        g.runbookLink('Runbook: TCP memory pressure', 'TCPStateMemoryPressure'),
      ],
    },
    g.timeseries {
      id: 42,
      title: 'TCP memory by process (top 10)',
      description: g.text(|||
        Memory charged for each process's TCP sockets: receive queue + send
        queue + forward allocation (ss -tm r + w + f; only queued bytes with the
        procfs source). A large send queue is a writer whose peer does not read.
        Needs --collector.memory, off by default for its cost (about 40% more
        time reading the tables, docs/performance.md): without it the panel is
        empty.
      |||),
      gridPos: g.grid(8, 98, 8, 8),
      targets: g.targets([
        g.target('topk(10, sum by (job, instance, process) (tcpstate_process_memory_bytes{job=~"$job", instance=~"$instance"}))', '{{process}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'bytes',
          noValue: 'No TCP memory by process: the exporter runs without --collector.memory (off by default), or the collector fails',
        },
      },
    },
    g.timeseries {
      id: 43,
      title: 'TCP memory by peer (top 10)',
      description: g.text(|||
        Memory of the sockets toward each remote address and port, orphans
        included: the peer that stopped reading is at the top. Needs
        --collector.memory, off by default for its cost: without it the panel is
        empty.
      |||),
      gridPos: g.grid(16, 98, 8, 8),
      targets: g.targets([
        g.target('topk(10, sum by (job, instance, remote_address, remote_port) (tcpstate_remote_memory_bytes{job=~"$job", instance=~"$instance"}))', '{{remote_address}}:{{remote_port}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'bytes',
          noValue: 'No TCP memory by peer: the exporter runs without --collector.memory (off by default), or the collector fails',
        },
      },
    },
    g.timeseries {
      id: 44,
      title: 'Orphans vs tcp_max_orphans',
      description: g.text(|||
        Sockets closed by their process whose connection is not finished
        (host-wide) against net.ipv4.tcp_max_orphans; past it the kernel resets
        them, and a socket with a soft error counts double, so half the limit is
        already close.
      |||, runbook='TCPStateOrphansHigh'),
      gridPos: g.grid(0, 106, 8, 8),
      targets: g.targets([
        g.target('sum by (job, instance) (tcpstate_orphan_sockets{job=~"$job", instance=~"$instance"})', 'orphans · {{instance}}'),
        g.target('sum by (job, instance) (tcpstate_orphan_max_sockets{job=~"$job", instance=~"$instance"})', 'tcp_max_orphans · {{instance}}'),
      ]),
      links: [
        g.runbookLink('Runbook: orphans high', 'TCPStateOrphansHigh'),
      ],
    },
    g.timeseries {
      id: 45,
      title: 'Orphans by peer (top 10)',
      description: g.text(|||
        Orphans per remote address and port: one slow or dead peer usually holds
        most.
      |||),
      gridPos: g.grid(8, 106, 8, 8),
      targets: g.targets([
        g.target('topk(10, sum by (job, instance, remote_address, remote_port) (tcpstate_orphan_remote_sockets{job=~"$job", instance=~"$instance"}))', '{{remote_address}}:{{remote_port}} · {{instance}}'),
      ]),
    },
    g.timeseries {
      id: 46,
      title: 'Listen drops per second by port',
      description: g.text(|||
        SYNs and completed connections dropped per second by the listening
        sockets of each port (SK_MEMINFO drops, asked of the listeners alone;
        netlink source only). Empty when no listener dropped anything.
      |||, runbook='TCPStateListenDrops'),
      gridPos: g.grid(16, 106, 8, 8),
      targets: g.targets([
        g.target('sum by (job, instance, local_port) (rate(tcpstate_listen_drops_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))', '{{local_port}} · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          unit: 'ops',
          noValue: 'No listen drops (or the exporter reads procfs, which has no drops, or runs without the acceptqueue collector)',
        },
      },
      links: [
        g.runbookLink('Runbook: listen drops', 'TCPStateListenDrops'),
      ],
    },
    g.row(240, 'File descriptors', 114),
    g.bargauge {
      id: 241,
      title: 'Processes nearest their file descriptor limit (open / limit)',
      description: g.text(|||
        Open file descriptors of each process (its pid nearest the limit)
        against its soft limit (RLIMIT_NOFILE), the ten nearest. At 100%
        accept(), connect() and open() fail with EMFILE "Too many open files":
        the end of a CLOSE_WAIT leak in a client with no pool bound. Orange from
        90%, red at the limit (TCPStateProcessFdsExhausted).
      |||, runbook='TCPStateProcessFdsExhausted'),
      gridPos: g.grid(0, 115, 12, 8),
      targets: g.targets([
        g.target(|||
          topk(10,
            tcpstate_process_open_fds{job=~"$job", instance=~"$instance", process=~"$process"}
            / on (job, instance, process, netns)
            (tcpstate_process_max_fds{job=~"$job", instance=~"$instance", process=~"$process"} > 0)
          )
        |||, '{{process}} ({{netns}}) · {{instance}}', instant=true),
      ]),
      fieldConfig+: {
        defaults+: {
          thresholds: g.thresholds([['green', null], ['orange', 0.9], ['red', 1]]),
          links: [
            g.drilldownLink('Drill down into process ${__field.labels.process}', ['job', 'instance', 'process', 'netns'], 'field'),
          ],
        },
      },
      links: [
        g.runbookLink('Runbook: process at its fd limit', 'TCPStateProcessFdsExhausted'),
        g.runbookLink('Runbook: process heading for its fd limit', 'TCPStateProcessFdsExhausting'),
      ],
    },
    g.timeseries {
      id: 242,
      title: 'Open file descriptors vs limit, processes nearest it',
      description: g.text(|||
        Open file descriptors (solid) and the soft limit (dashed) of the five
        processes nearest their limit. A line that only rises toward its limit
        is a leak (TCPStateProcessFdsExhausting warns while the hour's and the
        last ten minutes' pace reach it within the hour).
      |||, runbook='TCPStateProcessFdsExhausting'),
      gridPos: g.grid(12, 115, 12, 8),
      targets: g.targets([
        g.target(|||
          tcpstate_process_open_fds{job=~"$job", instance=~"$instance", process=~"$process"}
          and on (job, instance, process, netns)
          topk(5, tcpstate_process_open_fds{job=~"$job", instance=~"$instance", process=~"$process"}
            / on (job, instance, process, netns)
            (tcpstate_process_max_fds{job=~"$job", instance=~"$instance", process=~"$process"} > 0))
        |||, 'open · {{process}} ({{netns}}) · {{instance}}'),
        g.target(|||
          tcpstate_process_max_fds{job=~"$job", instance=~"$instance", process=~"$process"}
          and on (job, instance, process, netns)
          topk(5, tcpstate_process_open_fds{job=~"$job", instance=~"$instance", process=~"$process"}
            / on (job, instance, process, netns)
            (tcpstate_process_max_fds{job=~"$job", instance=~"$instance", process=~"$process"} > 0))
        |||, 'limit · {{process}} ({{netns}}) · {{instance}}'),
      ]),
      fieldConfig+: {
        defaults+: {
          decimals: 0,
          custom+: {
            axisLabel: 'file descriptors',
          },
          links: [
            g.drilldownLink('Drill down into ${__field.labels.process} on ${__field.labels.instance}', ['job', 'instance', 'process'], 'field'),
          ],
        },
        overrides: [
          g.dashedSeries('B', [10, 10]),
        ],
      },
    },
  ],
)
