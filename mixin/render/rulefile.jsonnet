// The layout of rules/tcpstate_exporter.rules.yml: the rule groups of a
// mixin, the recording rules first, with what the YAML writer needs to print
// them for people (header, each rule's comment, the lines of each folded
// description). Called by the renderer with the mixin, _config overrides
// applied; the values it lists are the mixin's, unchanged.
function(mixin)
  local hidden(o, f) = if std.objectHasAll(o, f) then o[f] else null;
  {
    header: |||
      Recording and alerting rules for tcpstate_exporter.

      Generated from mixin/ (the tcpstate_exporter monitoring mixin). Do not
      edit: change mixin/ and run `make mixin`, which also regenerates the
      PrometheusRule and the Helm chart's copy; `make mixin-check` fails when
      this file differs from what the mixin renders. The thresholds, `for`
      durations, metric selector and runbook base URL are knobs of the
      mixin's _config (mixin/config.libsonnet); the comments below explain
      the defaults.

      Load this file as it is (see docs/rules.md): the alerts do not depend on
      the recording rules, so a dashboard-only change to the recordings can never
      silence a page. Every alert links to its section of docs/runbooks.md.

      Matching. Every series carries the target labels job and instance, and
      often more: cluster, region, env added in relabelling, or the external
      labels of each Prometheus when a global ruler (Thanos Ruler, Mimir,
      vmalert) evaluates this file over many clusters, where instance values
      repeat (pod addresses are reused from cluster to cluster). No join names
      the labels it matches on: two sides with the same labels compare
      one-to-one as they are, and a join with tcpstate_pool_info ignores the
      labels only that side has (process, remote_address, remote_port), so
      every label you add takes part in the matching and reaches the alert,
      where Alertmanager can route on it. The pool alerts carry the pool's
      maximum as the label max_connections, which their descriptions quote;
      the optional details that look up another series build their selector
      from all the alert's labels, for the same reason, and are left out when
      the look-up finds nothing.

      The file uses only syntax that Prometheus 2.x and 3.x and vmalert
      accept, and is checked by rules/check.sh with `promtool check rules`
      and `promtool test rules rules/tests/*.yml`, and by
      rules/check-vmalert.sh with vmalert-tool on the same tests.
    |||,
    groups: [
      {
        group: { [k]: g[k] for k in std.objectFields(g) if k != 'rules' },
        rules: [
          {
            rule: r,
            comment: hidden(r, 'comment'),
            folded: if hidden(r, 'descriptionLines') != null then { description: r.descriptionLines } else {},
          }
          for r in g.rules
        ],
      }
      for g in mixin.prometheusRules.groups + mixin.prometheusAlerts.groups
    ],
  }
