// The host's shared TCP limits (issue 25): socket memory against
// net.ipv4.tcp_mem, orphans against net.ipv4.tcp_max_orphans, and listeners
// that drop connections. A group of their own: these limits belong to the
// host, not to a pool or a process, and the descriptions name whoever
// holds most (process and peer for memory, peer for orphans, the port for
// drops) by looking up the holder families of the alert's own instance.
local u = import '../lib/util.libsonnet';

{
  prometheusAlerts+:: {
    local cfg = $._config,
    local s = {
      all: u.selector(cfg.tcpstateSelector),
      pressure: u.selector(cfg.tcpstateSelector, 'threshold="pressure"'),
      max: u.selector(cfg.tcpstateSelector, 'threshold="max"'),
    },

    local alert(name, severity, forDuration, expr, summary, description, vars={}, comment='') = {
      local descriptionLines = u.lines(u.where(cfg, u.fill(description, vars))),
      comment:: comment,
      descriptionLines:: descriptionLines,
      alert: name,
      expr: expr,
      'for': forDuration,
      labels: { severity: severity },
      annotations: {
        summary: u.where(cfg, u.fill(summary, vars)),
        description: std.join(' ', descriptionLines),
        runbook_url: cfg.runbookURLBase + '#' + std.asciiLower(name),
      },
    },

    // $host: the selector of the alert's instance from all its labels but
    // those that are not the series' own (vmalert adds alertname,
    // alertgroup and the rule's labels) and threshold.
    local hostSelector = |||
      {{ $host := "" }}{{ range $k, $v := $labels }}{{ if not (match "^(__name__|alertname|alertgroup|severity|threshold)$" $k) }}{{ $host = printf "%s%s=%q," $host $k $v }}{{ end }}{{ end -}}
    |||,
    // The top process and peer of the instance's TCP memory.
    local memoryHolders = |||
      Most is held by process {{ with printf "topk(1, tcpstate_process_memory_bytes{%s})" $host | query }}{{ with first . }}{{ .Labels.process }} ({{ .Value | humanize1024 }}B){{ end }}{{ else }}unknown (is the memory collector on?){{ end }}
      and toward peer {{ with printf "topk(1, tcpstate_remote_memory_bytes{%s})" $host | query }}{{ with first . }}{{ .Labels.remote_address }} port {{ .Labels.remote_port }} ({{ .Value | humanize1024 }}B){{ end }}{{ else }}unknown{{ end }}.
    |||,

    groups+: [
      {
        name: 'tcpstate_exporter.hostlimits',
        rules: [
          alert(
            'TCPStateMemoryPressure',
            'warning',
            cfg.memoryPressureFor,
            |||
              tcpstate_memory_bytes%(all)s
                >= ignoring (threshold) tcpstate_memory_limit_bytes%(pressure)s
            ||| % s,
            "TCP sockets on {{ $labels.instance }} hold memory above the kernel's pressure threshold.",
            hostSelector + |||
              TCP sockets on {{ $labels.instance }} hold {{ $value | humanize1024 }}B, at or above the pressure threshold of
              net.ipv4.tcp_mem{{ with printf "tcpstate_memory_limit_bytes{%sthreshold=\"pressure\"}" $host | query }} ({{ . | first | value | humanize1024 }}B){{ end }}, for %(for)s.
              The kernel now shrinks socket buffers on the whole host: every process's transfers slow down.
            ||| + memoryHolders + |||
              Usually a peer that stopped reading, or a process that queues faster than it sends.
            |||,
            vars={ 'for': u.words(cfg.memoryPressureFor) },
            comment=|||
              Above tcp_mem's pressure threshold the kernel limits every socket's
              buffers until memory falls below min again: a host-wide slowdown,
              not yet loss. for 10m: a burst of large transfers that drains on its
              own stays quiet; ten minutes above it is a holder that does not let go.
            |||,
          ),

          alert(
            'TCPStateMemoryExhausted',
            'critical',
            cfg.memoryExhaustedFor,
            |||
              tcpstate_memory_bytes%(all)s
                >= ignoring (threshold) %(fraction)s * tcpstate_memory_limit_bytes%(max)s
            ||| % (s { fraction: u.num(cfg.memoryExhaustedPercent / 100) }),
            'TCP memory on {{ $labels.instance }} is exhausted: the kernel drops and resets connections.',
            hostSelector + |||
              TCP sockets on {{ $labels.instance }} hold {{ $value | humanize1024 }}B, at the max threshold of net.ipv4.tcp_mem
              (%(percent)s% of it or more:
              {{- with printf "tcpstate_memory_limit_bytes{%sthreshold=\"max\"}" $host | query }} max {{ . | first | value | humanize1024 }}B{{ end }}), for %(for)s.
              The kernel refuses TCP memory on the whole host: it drops incoming segments and resets connections
              ("TCP: out of memory -- consider tuning tcp_mem"), whichever process they belong to.
            ||| + memoryHolders,
            vars={ 'for': u.words(cfg.memoryExhaustedFor), percent: u.num(cfg.memoryExhaustedPercent) },
            comment=|||
              The page. At tcp_mem's max every process on the host loses
              connections. 98%: the kernel refuses memory once its counter
              passes max, so a host out of memory sits around max, not above it,
              and the counter sockstat reads moves in per-CPU batches
              (net.core.mem_pcpu_rsv, 1 MiB per CPU): 98% of max is "at max"
              within that noise on any host whose tcp_mem was sized from its RAM.
              for 2m: a two-minute spike (a burst the kernel's
              pressure mode pushes back below max) never pages; still at max
              after 2 minutes, the page arrives at most 2m + one scrape + one
              evaluation + Alertmanager's group_wait after memory reached max:
              3 minutes with 15 s intervals and a 30 s group_wait.
            |||,
          ),

          alert(
            'TCPStateOrphansHigh',
            'warning',
            cfg.orphansHighFor,
            |||
              tcpstate_orphan_sockets%(all)s
                >= %(fraction)s * tcpstate_orphan_max_sockets%(all)s
            ||| % (s { fraction: u.num(cfg.orphansHighPercent / 100) }),
            'Orphaned TCP sockets on {{ $labels.instance }} are at %(percent)s% of net.ipv4.tcp_max_orphans.',
            hostSelector + |||
              {{ printf "%.0f" $value }} TCP sockets on {{ $labels.instance }} are orphans (closed by their process, not finished),
              at least %(percent)s% of net.ipv4.tcp_max_orphans{{ with printf "tcpstate_orphan_max_sockets{%s}" $host | query }} ({{ . | first | value | printf "%.0f" }}){{ end }}, for %(for)s.
              Past the limit the kernel resets orphans ("too many orphaned sockets"), for every process on the host.
              Most orphans wait on peer {{ with printf "topk(1, tcpstate_orphan_remote_sockets{%s})" $host | query }}{{ with first . }}{{ .Labels.remote_address }} port {{ .Labels.remote_port }} ({{ .Value | printf "%.0f" }}){{ end }}{{ else }}unknown{{ end }}:
              a slow or dead peer that does not take the data or the FIN.
            |||,
            vars={ 'for': u.words(cfg.orphansHighFor), percent: u.num(cfg.orphansHighPercent) },
            comment=|||
              Half the limit, because the kernel itself counts a socket with a
              soft error (a timed-out retransmission) twice when it checks
              orphans (tcp_out_of_resources: orphans << 1 > tcp_max_orphans):
              at half the limit such sockets are already reset. for 10m: orphans
              of a burst of closes finish within a minute toward a live peer.
            |||,
          ),

          alert(
            'TCPStateListenDrops',
            'warning',
            cfg.listenDropsFor,
            'increase(tcpstate_listen_drops_total%(all)s[%(window)s]) > 0' % (s { window: cfg.listenDropsWindow }),
            'The listeners of port {{ $labels.local_port }} on {{ $labels.instance }} keep dropping connections.',
            |||
              The listening sockets of port {{ $labels.local_port }} on {{ $labels.instance }} dropped
              {{ printf "%.0f" $value }} SYNs or completed connections in the last %(window)s, and have kept dropping for %(for)s
              (ListenOverflows/ListenDrops of that port). Clients see connect() time out or retry after 1, 3, 7 s.
              The process listening there accepts slower than connections arrive (see tcpstate_accept_queue_sockets),
              or its backlog is too small for its bursts.
            |||,
            vars={ 'for': u.words(cfg.listenDropsFor), window: u.words(cfg.listenDropsWindow) },
            comment=|||
              A listener drops a SYN or a completed connection when its accept
              queue is full (or memory is short). One burst is a short spike of
              the counter; drops in every window for 5 minutes is a server that
              does not keep up. Netlink source only (procfs has no drops); the
              counter restarts with the listener, which increase() takes as a reset.
            |||,
          ),
        ],
      },
    ],
  },
}
