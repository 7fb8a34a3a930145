// The per-process file descriptor alerts, in their own rule group
// (tcpstate_exporter.fds): the other end of a CLOSE_WAIT leak. In a pool
// with a bound the pool runs dry (the pool alerts); in a client with none
// (a session per request, a server leaking accepted connections) the
// process runs out of file descriptors, and accept(), connect() and open()
// fail with EMFILE "Too many open files". The limit is per process (the
// soft RLIMIT_NOFILE), so host-wide fd alerts never see it.
//
// Their names, labels, expressions and annotations are a public contract:
// rules/tests/fds.test.yml pins them with promtool and vmalert-tool. The
// helpers below follow alerts/alerts.libsonnet's (same matching, same
// description layout).
local u = import '../lib/util.libsonnet';

{
  prometheusAlerts+:: {
    local cfg = $._config,
    local all = u.selector(cfg.tcpstateSelector),
    local open = 'tcpstate_process_open_fds' + all,
    local max = 'tcpstate_process_max_fds' + all,

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

    // The limit comes with the alert as the label max_fds (count_values
    // turns the value into a label), so that the descriptions quote it from
    // the alert's own labels under every engine, as the pool alerts do
    // with max_connections.
    local limitJoin = |||
      * ignoring (max_fds) group_left (max_fds)
      count_values without () ("max_fds", %s)
    ||| % max,

    // $proc: the selector of the alert's process from all its labels but
    // the template-only ones and max_fds, for the optional details (a
    // clause whose look-up finds nothing is left out).
    local procSelector = |||
      {{ $proc := "" }}{{ range $k, $v := $labels }}{{ if not (match "^(__name__|alertname|alertgroup|severity|max_fds)$" $k) }}{{ $proc = printf "%s%s=%q," $proc $k $v }}{{ end }}{{ end -}}
    |||,

    // What the process's sockets are, and the upstream holding most of the
    // dead ones: the cause, when the leak is sockets.
    local sockets = |||
      {{- with printf "tcpstate_process_connections{%sstate=\"close_wait\"}" $proc | query }} {{ . | first | value | printf "%.0f" }} of its TCP sockets are CLOSE_WAIT.{{ end }}
      {{- with printf "tcpstate_process_connections{%sstate=\"close\"}" $proc | query }} {{ . | first | value | printf "%.0f" }} of its TCP sockets are CLOSE (reset by the peer, still held).{{ end }}
      {{- with printf "topk(1, sum without (state) (tcpstate_process_remote_connections{%sstate=~\"close_wait|close\"}))" $proc | query }} The upstream holding most of its CLOSE_WAIT and CLOSE sockets is {{ . | first | label "remote_address" }} port {{ . | first | label "remote_port" }} ({{ . | first | value | printf "%.0f" }}).{{ end }}
    |||,

    groups+: [
      {
        name: 'tcpstate_exporter.fds',
        rules: [
          alert(
            'TCPStateProcessFdsExhausting',
            'warning',
            cfg.processFdsExhaustingFor,
            |||
              (
                %(open)s >= 0.9 * max_over_time(%(open)s[10m])
                and
                (
                  predict_linear(%(open)s[1h], %(horizon)s * 60) >= %(max)s
                  and
                  predict_linear(%(open)s[10m], %(horizon)s * 60) >= %(max)s
                  and
                  %(open)s offset 1h
                  or
                  predict_linear(%(open)s[10m], %(newHorizon)s * 60) >= %(max)s
                  unless
                  %(open)s offset 1h
                )
              )
            ||| % {
              open: open,
              max: max,
              horizon: u.num(cfg.processFdsExhaustingHorizonMinutes),
              newHorizon: u.num(cfg.processFdsExhaustingNewHorizonMinutes),
            } + limitJoin,
            'Process {{ $labels.process }} on {{ $labels.instance }} is heading for its file descriptor limit.',
            procSelector + |||
              Process {{ $labels.process }} (network namespace {{ $labels.netns }}) on {{ $labels.instance }} has {{ printf "%.0f" $value }}
              file descriptors open of its limit of {{ $labels.max_fds }} (the soft RLIMIT_NOFILE of its pid nearest the limit),
              and the count has grown for %(for)s at a pace that reaches the limit within %(horizon)s (%(newHorizon)s for a process
              watched for less than an hour)
              {{- with printf "(tcpstate_process_max_fds{%s} - tcpstate_process_open_fds{%s}) / deriv(tcpstate_process_open_fds{%s}[10m]) > 0" $proc $proc $proc | query }}: the limit in about {{ . | first | value | humanizeDuration }} at the pace of the last ten minutes{{ end }}.
            ||| + sockets + |||
              At the limit, accept(), connect() and open() fail with EMFILE "Too many open files".
            |||,
            vars={
              'for': u.words(cfg.processFdsExhaustingFor),
              horizon: u.words(u.num(cfg.processFdsExhaustingHorizonMinutes) + 'm'),
              newHorizon: u.words(u.num(cfg.processFdsExhaustingNewHorizonMinutes) + 'm'),
            },
            comment=|||
              The early warning: a process's open fds grow toward its limit. The
              exporter reports, per process name and namespace, the pid nearest
              its limit (tcpstate_process_open_fds against tcpstate_process_max_fds).
              Horizon 60m: both the last hour's line and the last ten minutes'
              predict the limit within the hour. A steady leak of r fds a minute
              crosses it when limit - open <= 60 r, and warns `for` later: 55
              minutes before the limit, whatever its rate, once the process has an
              hour of history (2 a minute into 1024: warned at 904, 55 minutes
              ahead; 10 a minute: the hour's line lags the start of the leak and
              it warns about 18 minutes ahead).
              Two windows, both must predict the limit:
              - [1h]: the trend of the last hour. A process whose fds rise and fall
                (connections opened for a batch and closed, a 20-80% sawtooth with
                a period up to 50 minutes) has a drop in every hour, and its line
                stays below the limit.
              - [10m]: still growing now.
              offset 1h: the process has been watched for an hour. A new process
              (or one back after more than an hour away) has the last ten minutes'
              line only, and a shorter horizon: 20 minutes. Ten a minute into
              1024 warns 15 minutes before the limit (or earlier, through the
              hour's line, once it has an hour). A process restart keeps the
              series (same name and namespace): the hour's line then sees the
              drop and the rise back to the usual level, and stays quiet.
              >= 90% of the last ten minutes' highest: a leak's count is at its
              highest; a burst that is over (a spike to 96% for four minutes,
              then back) drops the condition the moment it ends.
              for 5m: longer than such a burst; short enough that a fast leak
              warns well before the limit (make incident: Python requests with a
              session per request under a limit of 256 warns minutes before its
              first EMFILE).
            |||,
          ),

          alert(
            'TCPStateProcessFdsExhausted',
            'critical',
            cfg.processFdsExhaustedFor,
            |||
              (
                %(open)s >= %(max)s
              )
            ||| % { open: open, max: max } + limitJoin,
            'Process {{ $labels.process }} on {{ $labels.instance }} is at its file descriptor limit.',
            procSelector + |||
              Process {{ $labels.process }} (network namespace {{ $labels.netns }}) on {{ $labels.instance }} has had {{ printf "%.0f" $value }}
              file descriptors open for %(for)s, at its limit of {{ $labels.max_fds }} (the soft RLIMIT_NOFILE of that pid): accept(),
              connect() and open() fail with EMFILE "Too many open files".
            ||| + sockets,
            vars={ 'for': u.words(cfg.processFdsExhaustedFor) },
            comment=|||
              The page: a process at its fd limit fails every new connection,
              accepted or opened, and every file it opens. Threshold: the limit
              (>=; fds inherited above it count too).
              for 2m: a process that touches its limit in a burst and recovers
              (closes what it opened) does not page; one still there after 2
              minutes is stuck. The page arrives at most 2m + one scrape interval
              + one evaluation interval + Alertmanager's group_wait after the
              process reached its limit: 3 minutes with 15 s intervals and a 30 s
              group_wait (make incident measures it with a real client).
            |||,
          ),
        ],
      },
    ],
  },
}
