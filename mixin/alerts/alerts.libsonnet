// The alerts. Their names, labels, expressions and annotations are a public
// contract: rules/tests/ pins them with promtool. The comment:: of each
// alert is written above it in rules/tcpstate_exporter.rules.yml; it
// explains the default threshold and `for` of config.libsonnet.
//
// Matching. No join names the labels it matches on: two sides with the same
// labels compare one-to-one, and a join with tcpstate_pool_info ignores the
// labels only that side has (process, remote_address, remote_port), so every
// label a site adds (cluster, region, a global ruler's external labels)
// takes part in the matching and reaches the alert. Pool alerts carry the
// pool's maximum as the label max_connections; annotations that look up
// another series build their selector from all the alert's labels.
local u = import '../lib/util.libsonnet';

{
  prometheusAlerts+:: {
    local cfg = $._config,
    local s = {
      all: u.selector(cfg.tcpstateSelector),
      closeWait: u.selector(cfg.tcpstateSelector, 'state="close_wait"'),
      // A pool's dead slots: CLOSE_WAIT, and CLOSE (reset, dropped from the
      // kernel's tables, still held by the client).
      dead: u.selector(cfg.tcpstateSelector, 'state=~"close_wait|close"'),
      inUse: u.selector(cfg.tcpstateSelector, 'state=~"established|close_wait|close"'),
      notTimeWait: u.selector(cfg.tcpstateSelector, 'state!="time_wait"'),
    },

    // One alert. The description is a text block whose lines are joined
    // with spaces, as YAML's folded style (>-) reads them; its lines are
    // kept in descriptionLines:: so the rule file can print them as written.
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

    // Pool alerts compare a pool's sockets with its maximum, then take the
    // pool's process and endpoint from tcpstate_pool_info and its maximum,
    // as the label max_connections, from tcpstate_pool_max_connections
    // (count_values turns the value into a label): the descriptions quote
    // the maximum from the alert's own labels, the same under every engine.
    local poolJoin = |||
      * ignoring (process, remote_address, remote_port) group_left (process, remote_address, remote_port)
      tcpstate_pool_info%(all)s
      * ignoring (process, remote_address, remote_port, max_connections) group_left (max_connections)
      count_values without () ("max_connections", tcpstate_pool_max_connections%(all)s)
    ||| % s,

    // The labels a template's $labels may hold that are not the series'
    // own: Prometheus gives the expression's labels only, vmalert adds
    // __name__, alertname, alertgroup and the rule's labels (severity).
    local notSeriesLabels = '__name__|alertname|alertgroup|severity',

    // Builds $pool, the selector of the alert's pool from all its labels but
    // those of tcpstate_pool_info and the maximum, for the look-ups of the
    // optional details (a clause whose look-up finds nothing is left out:
    // vmalert also adds its -external.label and group labels to $labels).
    local poolSelector = |||
      {{ $pool := "" }}{{ range $k, $v := $labels }}{{ if not (match "^(%s|process|remote_address|remote_port|max_connections)$" $k) }}{{ $pool = printf "%%s%%s=%%q," $pool $k $v }}{{ end }}{{ end -}}
    ||| % notSeriesLabels,

    groups+: [
      {
        name: 'tcpstate_exporter.alerts',
        rules: [
          alert(
            'TCPStatePoolExhausted',
            'critical',
            cfg.poolExhaustedFor,
            |||
              (
                sum without (state) (tcpstate_pool_connections%(dead)s)
                  >=
                tcpstate_pool_max_connections%(all)s
              )
            ||| % s + poolJoin,
            'Pool {{ $labels.pool }} on {{ $labels.instance }} is full of dead (CLOSE_WAIT or CLOSE) sockets.',
            |||
              {{ printf "%.0f" $value }} sockets of pool "{{ $labels.pool }}" on {{ $labels.instance }} are dead (CLOSE_WAIT, or CLOSE: reset and still held),
              and the pool's maximum is {{ $labels.max_connections }}.
              The pool is declared for process {{ $labels.process }}, remote address {{ $labels.remote_address }},
              remote port {{ $labels.remote_port }} ("any" where the pool does not restrict it). The server closed these connections and the client never
              closed its side, so requests through this pool block waiting for a free connection.
            |||,
            comment=|||
              The page. When dead sockets fill the pool, every request waits for a
              connection that will never come back. Dead: CLOSE_WAIT, and CLOSE,
              the same sockets once a keepalive probe or the peer reset them and
              the kernel dropped them from its tables while the client still holds
              them (Go's default dialer: after about 75 s); counting both keeps the
              page up for as long as the pool is dry.
              Threshold: the pool's own maximum (>=, the pool cannot hold more).
              for 2m: the one harmless way to a pool full of CLOSE_WAIT is a restart
              of the server, which closes every pooled connection at once. The
              clients in docs/runbooks.md clear those as follows: Go's transport
              closes them the moment the FIN arrives; Apache HttpClient 4 and 5
              check a connection idle for more than validateAfterInactivity (2 s)
              when they lease it and close every dead one they meet in that lease;
              urllib3 and OkHttp check each connection they hand out; a background
              evictor (evictIdleConnections, OkHttp's keep-alive, HikariCP's
              keepaliveTime) closes them at its next run, within a minute when set
              as the runbook advises. So a restart clears within seconds under
              traffic and within about a minute on a quiet service; a pool seen
              full for less than 2 minutes never pages. Still full after 2 minutes
              means nothing is clearing the sockets. The page then arrives at most
              2m + one scrape interval + one evaluation interval + Alertmanager's
              group_wait after the pool ran dry: 3 minutes with 15 s intervals and
              a 30 s group_wait (make incident measures it with real clients).
            |||,
          ),

          alert(
            'TCPStatePoolFillingUp',
            'warning',
            cfg.poolFillingUpFor,
            |||
              (
                sum without (state) (tcpstate_pool_connections%(dead)s)
                and
                sum without (state) (predict_linear(tcpstate_pool_connections%(dead)s[1h], %(horizon)s * 3600))
                  >= tcpstate_pool_max_connections%(all)s
                and
                sum without (state) (predict_linear(tcpstate_pool_connections%(dead)s[10m], %(horizon)s * 3600))
                  >= tcpstate_pool_max_connections%(all)s
                and
                sum without (state) (tcpstate_pool_connections%(dead)s offset 1h)
                or
                sum without (state) (tcpstate_pool_connections%(dead)s)
                and
                sum without (state) (predict_linear(tcpstate_pool_connections%(dead)s[10m], %(newHorizon)s * 60))
                  >= tcpstate_pool_max_connections%(all)s
                unless
                sum without (state) (tcpstate_pool_connections%(dead)s offset 1h)
              )
            ||| % (s {
                     horizon: u.num(cfg.poolFillingUpHorizonHours),
                     newHorizon: u.num(cfg.poolFillingUpNewPoolHorizonMinutes),
                   }) + poolJoin,
            'Pool {{ $labels.pool }} on {{ $labels.instance }} is filling up with dead (CLOSE_WAIT or CLOSE) sockets.',
            poolSelector + |||
              {{ printf "%.0f" $value }} sockets of pool "{{ $labels.pool }}" on {{ $labels.instance }} are dead (CLOSE_WAIT, or CLOSE: reset and still held),
              of a maximum of {{ $labels.max_connections }},
              and the count has grown for %(for)s at a pace that fills the pool within %(horizon)s
              (%(newHorizon)s for a pool watched for less than an hour)
              {{- with printf "(tcpstate_pool_max_connections{%s} - ignoring (state) sum without (state) (tcpstate_pool_connections{%sstate=~\"close_wait|close\"})) / ignoring (state) deriv(sum without (state) (tcpstate_pool_connections{%sstate=~\"close_wait|close\"})[10m:]) > 0" $pool $pool $pool | query }}: full in about {{ . | first | value | humanizeDuration }} at the pace of the last ten minutes{{ end }}.
              The pool is declared for process {{ $labels.process }}, remote address {{ $labels.remote_address }},
              remote port {{ $labels.remote_port }} ("any" where the pool does not restrict it). The server closed these connections and the client
              has not closed them; when they reach the maximum, requests through the pool block.
            |||,
            vars={
              'for': u.words(cfg.poolFillingUpFor),
              horizon: u.words(u.num(cfg.poolFillingUpHorizonHours) + 'h'),
              newHorizon: u.words(u.num(cfg.poolFillingUpNewPoolHorizonMinutes) + 'm'),
            },
            comment=|||
              The early warning: a pool's dead sockets (CLOSE_WAIT and CLOSE) grow
              toward its maximum. A leak is a trend long before it is an outage, and
              predict_linear sees the trend: it fits a line through the window's
              samples and extends it.
              Horizon 4h: "at this pace the pool is full within 4 hours". A steady
              leak of r sockets a minute crosses it when max - count <= 240 r, and
              warns `for` later: 3h45m before the pool is dry, whatever its rate,
              if it started long enough before (one a minute into 400: at 175 of
              400, 225 minutes ahead). A fast leak warns `for` after the hour's
              line has turned (ten a minute into 400: turned 14 minutes after the
              leak started, warned at 29, 11 minutes before the pool is dry).
              Two windows, both must predict the pool full:
              - [1h]: the trend of the last hour. An idle-connection evictor lets
                CLOSE_WAIT rise between its runs and drops it at each; an hour
                holds at least one drop of any evictor that runs more often than
                every 50 minutes, and its line stays flat enough: a half-hourly
                sawtooth up to a fifth of the maximum extends to less than half of
                it in 4 hours.
              - [10m]: still growing now. A step (a traffic drop after which the
                server closes a few hundred idle connections at once, then a
                plateau) tilts both lines while it is inside their windows: the
                hour's for an hour, the last ten minutes' for ten minutes at most.
                After that the short line is flat and the condition false.
              offset 1h: the pool has been watched for an hour. Through less
                history the hour's line is a short one: after an exporter restart
                or a new pool, the first rise of an evictor would warn.
              A pool watched for less than an hour (new, on a new host, or its
              exporter back after more than an hour away: a restart leaves gaps
              of seconds, and the hour-old sample is still there) has its own,
              shorter horizon: the last ten minutes'
              line predicts it full within 30 minutes. A steady leak of r a
              minute into a maximum m crosses it at m - 30 r sockets (ten a
              minute into 400: at 100, 10 minutes after it started) and warns
              `for` later (at 25 minutes, 15 before the pool is dry; any leak
              slower than m / 30 a minute warns 15 minutes before dry, or through
              the hour's rule once there is an hour). The first cycles of an
              evictor stay quiet: to hold the condition for 15 minutes its rise
              must last 15 minutes, and a rise to p% of the maximum that slow
              predicts p + 2p = 3p% in 30 minutes: below 100% up to a third of
              the maximum (an evictor's first rise to 22% predicts at most 66%).
              A restart burst tilts the line for less than 10 minutes.
              for 15m: longer than the 10-minute window, so a single step, or a
                server restart that fills the pool for a minute or two, cannot hold
                the condition long enough; short enough to warn of the fast leak
                above before it is dry.
            |||,
          ),

          alert(
            'TCPStatePoolCloseWaitHigh',
            'warning',
            cfg.poolCloseWaitHighFor,
            |||
              (
                sum without (state) (tcpstate_pool_connections%(dead)s)
                  >
                %(ratio)s * tcpstate_pool_max_connections%(all)s
              )
            ||| % (s { ratio: u.num(cfg.poolCloseWaitHighPercent / 100) }) + poolJoin,
            'Pool {{ $labels.pool }} on {{ $labels.instance }} is more than %(percent)s% dead (CLOSE_WAIT or CLOSE) sockets.',
            |||
              {{ printf "%.0f" $value }} sockets of pool "{{ $labels.pool }}" on {{ $labels.instance }} are dead (CLOSE_WAIT, or CLOSE: reset and still held),
              and the count has stayed above %(percent)s% of the pool's maximum of {{ $labels.max_connections }}
              for %(for)s.
              The pool is declared for process {{ $labels.process }}, remote address {{ $labels.remote_address }},
              remote port {{ $labels.remote_port }} ("any" where the pool does not restrict it). The server closed these connections and the client has not
              closed them; when they reach the maximum, requests through the pool block.
            |||,
            vars={
              'for': u.words(cfg.poolCloseWaitHighFor),
              percent: u.num(cfg.poolCloseWaitHighPercent),
            },
            comment=|||
              The early warning for the page above.
              Threshold 80% of the maximum: high enough that a pool whose idle
              connections were closed by the server a moment ago does not trigger
              it, low enough to leave time before the pool is exhausted.
              for 15m: stale idle connections come and go with load; a quarter of
              an hour above 80% means they are not being released.
            |||,
          ),

          alert(
            'TCPStatePoolSaturated',
            'warning',
            cfg.poolSaturatedFor,
            |||
              (
                sum without (state) (tcpstate_pool_connections%(inUse)s)
                  >=
                tcpstate_pool_max_connections%(all)s
              )
            ||| % s + poolJoin,
            'Pool {{ $labels.pool }} on {{ $labels.instance }} has used all its connections for %(for)s.',
            poolSelector + |||
              {{ printf "%.0f" $value }} sockets of pool "{{ $labels.pool }}" on {{ $labels.instance }} are in use
              (established, CLOSE_WAIT or CLOSE), and the pool's maximum is {{ $labels.max_connections }}
              {{- with printf "sum without (state) (tcpstate_pool_connections{%sstate=~\"close_wait|close\"})" $pool | query }}; {{ . | first | value | printf "%.0f" }} of them are dead (CLOSE_WAIT, or CLOSE: reset and still held){{ end }}.
              The pool is declared for process {{ $labels.process }}, remote address {{ $labels.remote_address }},
              remote port {{ $labels.remote_port }} ("any" where the pool does not restrict it). New requests through this pool wait for a connection
              to be released.
            |||,
            vars={ 'for': u.words(cfg.poolSaturatedFor) },
            comment=|||
              The pool has no free slot, healthy or not. With established sockets
              that is load (requests queue in the client); with dead ones
              (CLOSE_WAIT, CLOSE) it is the leak. The description gives both numbers.
              Threshold: the pool's maximum (>=).
              for 10m: a pool sized for the peak may touch its maximum during a
              burst; ten minutes at the ceiling means requests are queueing.
            |||,
          ),

          alert(
            'TCPStateCloseWaitAccumulating',
            'warning',
            cfg.closeWaitAccumulatingFor,
            |||
              (
                tcpstate_process_remote_connections%(closeWait)s > %(threshold)s
                and
                delta(tcpstate_process_remote_connections%(closeWait)s[%(window)s]) >= 0
                and
                count_over_time(tcpstate_process_remote_connections%(closeWait)s[%(window)s]) > 1
              )
              unless ignoring (process, netns, remote_address, remote_port, state, pool)
              tcpstate_pool_max_connections%(all)s
            ||| % (s {
                     threshold: u.num(cfg.closeWaitAccumulatingThreshold),
                     window: cfg.closeWaitAccumulatingWindow,
                   }),
            'Process {{ $labels.process }} on {{ $labels.instance }} keeps accumulating CLOSE_WAIT sockets to {{ $labels.remote_address }} port {{ $labels.remote_port }}.',
            |||
              Process {{ $labels.process }} on {{ $labels.instance }} holds {{ printf "%.0f" $value }} sockets in CLOSE_WAIT
              to {{ $labels.remote_address }} port {{ $labels.remote_port }}; the count has stayed above %(threshold)s
              for %(for)s and is not falling. The remote side closed these connections and the process
              never closed its end. No pool is declared on this host, so there is no maximum to compare with:
              if this is a connection pool, requests block once CLOSE_WAIT sockets fill it.
            |||,
            vars={
              'for': u.words(cfg.closeWaitAccumulatingFor),
              threshold: u.num(cfg.closeWaitAccumulatingThreshold),
            },
            comment=|||
              The default catch for services nobody declared a pool for.
              Threshold: more than 100 CLOSE_WAIT sockets from one process to one
              remote endpoint. A client that closes promptly holds a handful at
              most, and one that checks idle connections only on reuse holds at
              most its idle pool (10 per host for Python's urllib3); 100 is well
              above both and still below common pool sizes (200-400), so it warns
              before a typical pool is full.
              "Do not go down": delta over 15 minutes >= 0 means the count is not
              lower than a quarter of an hour ago, so a pool that is draining (an
              idle-connection evictor, a restart) stops the alert. It takes two
              samples in the window (count_over_time > 1): Prometheus' delta needs
              two, while vmalert's (MetricsQL) reads a lone first sample as "no
              change", which would start `for` one interval earlier.
              for 15m: the count must stay above 100 and not fall for 15 minutes.
              One alert per process, network namespace (a pod) and endpoint: two
              pods running the same client are two alerts.
              Hosts where any pool is declared are left to the pool alerts (the
              pool's own maximum is a better threshold than a fixed 100); if the
              pools collector fails there, this alert covers the host again.
            |||,
          ),

          alert(
            'TCPStateCloseWaitStuck',
            'warning',
            cfg.closeWaitStuckFor,
            'tcpstate_process_remote_close_wait_stuck_sockets%(all)s > %(threshold)s'
            % (s { threshold: u.num(cfg.closeWaitStuckThreshold) }),
            'Process {{ $labels.process }} on {{ $labels.instance }} has CLOSE_WAIT sockets to {{ $labels.remote_address }} port {{ $labels.remote_port }} that it never closes.',
            |||
              Process {{ $labels.process }} on {{ $labels.instance }} holds {{ printf "%.0f" $value }} sockets to
              {{ $labels.remote_address }} port {{ $labels.remote_port }} that have been dead (in CLOSE_WAIT, then in CLOSE if the kernel
              dropped them) for longer than the exporter's --collector.close-wait.stuck-after (%(stuckAfter)s unless set otherwise),
              and more than %(threshold)s have been that old for %(for)s. The oldest has been dead for
              {{ $route := "" }}{{ range $k, $v := $labels }}{{ if not (match "^(%(notSeries)s)$" $k) }}{{ $route = printf "%s%s=%q," $route $k $v }}{{ end }}{{ end }}{{ with printf "tcpstate_process_remote_close_wait_oldest_seconds{%s}" $route | query }}{{ . | first | value | humanizeDuration }}{{ else }}an unknown time{{ end }}
              (from the kernel's clock where the exporter reads it through netlink, else since the exporter first saw
              the socket, so no longer than it has run; tcpstate_close_wait_age_sockets says which).
              The remote side closed these connections and the process keeps the same sockets open instead of
              closing them: connections leaked on some code path, or a pool that never evicts dead ones.
            |||,
            vars={
              'for': u.words(cfg.closeWaitStuckFor),
              threshold: u.num(cfg.closeWaitStuckThreshold),
              stuckAfter: u.words(cfg.exporterStuckAfter),
              notSeries: notSeriesLabels,
            },
            comment=|||
              The same CLOSE_WAIT sockets stay, instead of new ones coming and
              going: a leak, or a pool that never drops connections the server
              closed. Counts cannot tell the two apart; ages can. The exporter
              counts a socket as stuck once it has been dead (in CLOSE_WAIT, then
              in CLOSE if the kernel drops it while the process holds it) for longer
              than --collector.close-wait.stuck-after (5m by default), per process
              and remote endpoint, on every host, pools declared or not; the age
              comes from the kernel's clock (netlink source) or, where the kernel
              gives none, from the exporter's first sighting.
              Threshold: more than 10 stuck sockets. Not 1: a client that checks
              idle connections only when it reuses them keeps those the server
              closed in CLOSE_WAIT until then, for hours on a quiet service, and
              that is harmless (urllib3 keeps up to 10 idle per host, OkHttp 5, Go
              and Apache HttpClient 2 per route by default). More than 10 is above
              any default idle pool, and a real leak only grows: at one leaked
              connection a minute there are 11 stuck sockets after 15 minutes.
              for 10m: each counted socket is already older than stuck-after, so
              the alert fires at the earliest 15 minutes after the 11th socket
              went to CLOSE_WAIT. A pool whose evictor closes idle connections a
              few minutes after stuck-after has a stuck count that rises between
              the evictor's runs and drops at each; ten minutes above 10 means
              they are not being closed in time. A restart of the exporter keeps
              the kernel's ages: the alert stays firing. Ages from a first
              sighting (the procfs source, sockets in other network namespaces)
              start from 0 again, and the alert resolves and comes back after
              stuck-after plus 10 minutes.
            |||,
          ),

          alert(
            'TCPStateExporterCollectorFailed',
            'warning',
            cfg.collectorFailedFor,
            'tcpstate_scrape_collector_success%(all)s == 0' % s,
            'Collector {{ $labels.collector }} of tcpstate_exporter on {{ $labels.instance }} has been failing for %(for)s.',
            |||
              The {{ $labels.collector }} collector of tcpstate_exporter on {{ $labels.instance }} has failed on every scrape
              for %(for)s. The metrics it produces are missing, and the alerts built on them cannot fire.
              The exporter's log names the error.
            |||,
            vars={ 'for': u.words(cfg.collectorFailedFor) },
            comment=|||
              A collector that fails leaves its families empty or stale, and the
              alerts above that read them go quiet: pools -> pool alerts, process
              -> TCPStateCloseWaitAccumulating.
              for 10m: one failed scrape (a read that hit the scrape timeout) is
              not worth a notification; ten minutes of failures means the exporter
              is blind.
            |||,
          ),

          alert(
            'TCPStateUnresolvedSockets',
            'warning',
            cfg.unresolvedSocketsFor,
            |||
              sum without (state) (tcpstate_unresolved_sockets%(all)s)
                > %(ratio)s *
              sum without (family, state) (tcpstate_connections%(notTimeWait)s)
            ||| % (s { ratio: u.num(cfg.unresolvedSocketsPercent / 100) }),
            'tcpstate_exporter on {{ $labels.instance }} cannot tell which process owns {{ printf "%.0f" $value }} sockets.',
            |||
              {{ printf "%.0f" $value }} sockets on {{ $labels.instance }}, more than %(percent)s% of them, have had no owning process
              for %(for)s. They are missing from the per-process metrics, pools cannot match them,
              and CLOSE_WAIT leaks in them raise no process or pool alert. The exporter most likely lacks
              CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, or cannot see the host's PID namespace.
            |||,
            vars={
              'for': u.words(cfg.unresolvedSocketsFor),
              percent: u.num(cfg.unresolvedSocketsPercent),
            },
            comment=|||
              Sockets the exporter could not attribute to a process are missing
              from every per-process family and from pool matching.
              Threshold: more than 10% of the host's sockets (TIME_WAIT excluded,
              those have no owner). A few kernel-owned sockets (NFS, iSCSI) and
              processes that exit during a scrape are normal; an exporter without
              CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE loses nearly all of them.
              for 30m: a misconfiguration does not fix itself; there is no hurry.
            |||,
          ),

          alert(
            'TCPStateConfigReloadFailed',
            'warning',
            cfg.configReloadFailedFor,
            'tcpstate_config_last_reload_successful%(all)s == 0' % s,
            'tcpstate_exporter on {{ $labels.instance }} failed to load its configuration file.',
            |||
              The last reload of the configuration file of tcpstate_exporter on {{ $labels.instance }} failed,
              and it has stayed failed for %(for)s. The exporter still runs with the last good pools:
              pools added or changed since then are not watched. The exporter's log says which key is wrong.
            |||,
            vars={ 'for': u.words(cfg.configReloadFailedFor) },
            comment=|||
              A configuration file that fails to load leaves the exporter on the
              previous pools: a pool added or changed since then is not watched.
              for 15m: an edit that is fixed right away is not worth a
              notification; one left broken for a quarter of an hour is forgotten.
            |||,
          ),

          alert(
            'TCPStateSeriesTruncated',
            'warning',
            cfg.seriesTruncatedFor,
            'tcpstate_series_truncated%(all)s > 0' % s,
            'tcpstate_exporter on {{ $labels.instance }} folds {{ printf "%.0f" $value }} series of {{ $labels.metric }} into "other".',
            |||
              For %(for)s, {{ $labels.metric }} on {{ $labels.instance }} has had more series than
              --collector.max-series allows; {{ printf "%.0f" $value }} series were folded into the series whose process,
              remote_address, remote_port or local_port label reads "other". Processes and endpoints in that
              series are not named, and alerts on them name "other".
            |||,
            vars={ 'for': u.words(cfg.seriesTruncatedFor) },
            comment=|||
              A bounded family went over --collector.max-series and folded the
              rest into "other": the leaking process or endpoint may be hidden
              there.
              Threshold: any series folded.
              for 30m: counts near the limit may cross it for a scrape or two;
              half an hour means the limit is too low for this host.
            |||,
          ),

          alert(
            'TCPStateEphemeralPortsExhausting',
            'warning',
            cfg.ephemeralPortsExhaustingFor,
            |||
              tcpstate_ephemeral_ports_used%(all)s
                >= ignoring (remote_address, remote_port) group_left
              %(ratio)s * tcpstate_ephemeral_ports_usable%(all)s
            ||| % (s { ratio: u.num(cfg.ephemeralPortsExhaustingPercent / 100) }),
            'Connections from {{ $labels.instance }} to {{ $labels.remote_address }}:{{ $labels.remote_port }} hold {{ printf "%.0f" $value }} local ports, near the ephemeral range.',
            |||
              {{ printf "%.0f" $value }} local ports of the ephemeral range are held toward {{ $labels.remote_address }}:{{ $labels.remote_port }}
              on {{ $labels.instance }} (mostly in TIME_WAIT, which keeps a port for 60 seconds after the connection closed), at least %(percent)s%
              of the ports connect() can pick, for %(for)s. When none is left, new connections to that destination fail with
              "Cannot assign requested address" (EADDRNOTAVAIL); other destinations are not affected. The usual cause is a client
              that opens a new connection per request instead of reusing kept-alive connections.
            |||,
            vars={ percent: u.num(cfg.ephemeralPortsExhaustingPercent), 'for': u.words(cfg.ephemeralPortsExhaustingFor) },
            comment=|||
              connect() needs a local port whose 4-tuple toward the destination is
              free. A client that opens a connection per request and closes first
              leaves each port in TIME_WAIT for 60 seconds: at r new connections a
              second it holds about 60 r ports toward that destination, and fails
              once that passes the usable ports (28232 by default, far fewer when a
              site narrows ip_local_port_range or reserves ports).
              Threshold: 80% of the usable ports toward one destination, from one
              local address (what connect() is limited by).
              for 1m: TIME_WAIT holds a port for a minute, so a burst of
              connections shows for a minute at most; a minute above 80% is
              sustained load that a little more traffic turns into failures, which
              then come within seconds.
            |||,
          ),

          alert(
            'TCPStateAcceptQueueFull',
            'critical',
            cfg.acceptQueueFullFor,
            |||
              tcpstate_accept_queue_sockets%(all)s
                >= tcpstate_accept_queue_max_sockets%(all)s > 0
            ||| % s,
            'The accept queue of port {{ $labels.local_port }} on {{ $labels.instance }} is full.',
            |||
              {{ printf "%.0f" $value }} connections wait for accept() on port {{ $labels.local_port }} of {{ $labels.instance }},
              as many as its listeners' accept queues hold, for %(for)s. The kernel drops new connection attempts on
              that port: clients time out connecting or waiting for their first response. The process listening there
              has stopped accepting, or accepts slower than connections arrive.
            |||,
            vars={ 'for': u.words(cfg.acceptQueueFullFor) },
            comment=|||
              A listener's accept queue holds the connections the kernel completed
              and the process has not accept()ed yet, up to min(backlog, somaxconn)
              (a full queue reads one more). Full, the kernel drops SYNs: clients
              retry (1 s, 3 s, 7 s...) and time out. Only the netlink source reports
              the limit; on the procfs source this alert cannot fire.
              Threshold: the limit (>=). > 0 leaves out listeners with a backlog of 0.
              for 1m: a burst of connections that the server catches up with stays
              quiet; a minute full means the server is not accepting.
            |||,
          ),
        ],
      },
    ],
  },
}
