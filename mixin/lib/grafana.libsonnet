// Small helpers for the mixin's Grafana dashboards (no vendored library):
// the fields every panel of a kind shares, so that a panel states only its
// own (title, description, queries, layout and what differs), and the
// site's _config applied to every query, variable, legend and link:
// tcpstateSelector in every selector; with showMultiCluster a cluster
// variable, the cluster in every aggregation, legend and drill-down link
// (see promql.libsonnet). Call it with the mixin's _config:
//   local g = (import 'lib/grafana.libsonnet')($._config);
local promql = import 'promql.libsonnet';

function(cfg) {
  local g = self,
  local multi = cfg.showMultiCluster,
  local cluster = cfg.clusterLabel,

  datasource:: { type: 'prometheus', uid: '${datasource}' },

  // Text written over several lines, joined by spaces as one line, as
  // Grafana shows a description (Markdown): write long texts in ||| blocks.
  words(text):: std.join(' ', std.filter(function(l) l != '', std.split(text, '\n'))),

  // A panel's description: words(t), and with runbook (an alert's name) a
  // Markdown link to its runbook section at the end.
  text(t, runbook=null)::
    g.words(t) + (if runbook == null then '' else ' [Runbook: %s](%s)' % [runbook, g.runbook(runbook)]),

  // The runbook's section of an alert, as the alerts link it.
  runbook(alert):: cfg.runbookURLBase + '#' + std.asciiLower(alert),
  runbookLink(title, alert):: {
    title: title,
    type: 'link',
    url: g.runbook(alert),
    icon: 'external link',
    tooltip: '',
    tags: [],
    asDropdown: false,
    targetBlank: true,
    includeVars: false,
    keepTime: false,
  },

  // A dashboard query, written for one Prometheus as Grafana shows it; the
  // site's _config is applied here. A trailing newline (of a ||| block) is
  // dropped.
  expr(e):: promql.site(std.rstripChars(e, '\n'), cfg),

  // A legend; with showMultiCluster it names the cluster beside the
  // instance (or at its end). __auto already shows every label.
  legend(l)::
    if !multi || l == '__auto' || l == '' then l
    else if std.length(std.findSubstr('{{instance}}', l)) > 0 then std.strReplace(l, '{{instance}}', '{{%s}}/{{instance}}' % cluster)
    else l + ' · {{%s}}' % cluster,

  // One query of a panel: a range query drawn over time, or with
  // instant=true the latest value (stat, bar gauge, table); table=true
  // asks for table format. targets() gives the refId unless set here (an
  // override may select a query by it).
  target(expr, legend='__auto', instant=false, table=false, refId=null):: {
    [if refId != null then 'refId']: refId,
    datasource: g.datasource,
    editorMode: 'code',
    expr: g.expr(expr),
    legendFormat: g.legend(legend),
    range: !instant,
    instant: instant,
    [if table then 'format']: 'table',
  },

  // A panel's targets, with refIds A, B, C... in order where not set.
  targets(ts):: [
    if std.objectHas(ts[i], 'refId') then ts[i] else ts[i] { refId: std.char(std.codepoint('A') + i) }
    for i in std.range(0, std.length(ts) - 1)
  ],

  // A link to the drill-down dashboard carrying the variables named in
  // vars, taken from: 'variables' (this dashboard's own), 'field' (the
  // clicked series' labels) or 'data' (the clicked table row's columns).
  // With showMultiCluster the cluster goes first.
  drilldownURL(vars, from)::
    local all = (if multi then [cluster] else []) + vars;
    local param(v) =
      local name = if v == cluster then 'cluster' else v;
      if from == 'variables' then '${%s:queryparam}' % name
      else if from == 'field' then 'var-%s=${__field.labels.%s}' % [name, v]
      else if from == 'data' then 'var-%s=${__data.fields.%s}' % [name, v]
      else error 'drilldownURL: from must be variables, field or data, not ' + from;
    '/d/tcpstate-drilldown?${datasource:queryparam}&' + std.join('&', [param(v) for v in all]) + '&${__url_time_range}',

  // A data link to the drill-down dashboard (see drilldownURL).
  drilldownLink(title, vars, from):: { title: title, url: g.drilldownURL(vars, from), targetBlank: false },

  // A panel link (in the panel's header) to the drill-down dashboard with
  // this dashboard's variables.
  drilldownPanelLink(title, vars):: {
    title: title,
    type: 'link',
    url: g.drilldownURL(vars, 'variables'),
    icon: 'external link',
    tooltip: '',
    tags: [],
    asDropdown: false,
    targetBlank: false,
    includeVars: false,
    keepTime: false,
  },

  // A table's column order (organize's indexByName): the names in order,
  // with the cluster before the instance under showMultiCluster.
  columns(names)::
    local withCluster = if multi then std.flattenArrays([if n == 'instance' then [cluster, n] else [n] for n in names]) else names;
    { [withCluster[i]]: i for i in std.range(0, std.length(withCluster) - 1) },

  grid(x, y, w, h):: { h: h, w: w, x: x, y: y },

  thresholds(steps):: {
    mode: 'absolute',
    steps: [{ color: s[0], value: s[1] } for s in steps],
  },

  // --- Panels: a kind's shared fields. Compose with the panel's own:
  //   g.stat { id: 1, title: ..., description: ..., gridPos: ..., targets: ... }

  row(id, title, y, collapsed=false, panels=null):: {
    type: 'row',
    id: id,
    title: title,
    collapsed: collapsed,
    gridPos: g.grid(0, y, 24, 1),
    panels: if panels == null then [] else panels,
  },

  local panel = { datasource: g.datasource },

  stat:: panel {
    type: 'stat',
    fieldConfig: {
      defaults: {
        unit: 'short',
        color: { mode: 'thresholds' },
        thresholds: g.thresholds([['blue', null]]),
        mappings: [],
      },
      overrides: [],
    },
    options: {
      graphMode: 'none',
      colorMode: 'background',
      justifyMode: 'auto',
      textMode: 'value',
      wideLayout: true,
      showPercentChange: false,
      percentChangeColorMode: 'standard',
      orientation: 'auto',
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
    },
  },

  bargauge:: panel {
    type: 'bargauge',
    fieldConfig: {
      defaults: {
        unit: 'percentunit',
        min: 0,
        max: 1,
        decimals: 0,
        color: { mode: 'thresholds' },
        thresholds: g.thresholds([['green', null], ['orange', 0.8], ['red', 1]]),
      },
      overrides: [],
    },
    options: {
      displayMode: 'gradient',
      valueMode: 'color',
      namePlacement: 'auto',
      showUnfilled: true,
      sizing: 'auto',
      minVizWidth: 8,
      minVizHeight: 16,
      maxVizHeight: 300,
      orientation: 'horizontal',
      legend: { displayMode: 'list', placement: 'bottom', showLegend: false, calcs: [] },
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
    },
  },

  timeseries:: panel {
    type: 'timeseries',
    fieldConfig: {
      defaults: {
        unit: 'short',
        min: 0,
        color: { mode: 'palette-classic' },
        custom: {
          drawStyle: 'line',
          lineInterpolation: 'linear',
          lineWidth: 1,
          fillOpacity: 10,
          gradientMode: 'none',
          showPoints: 'never',
          pointSize: 4,
          spanNulls: false,
          stacking: { mode: 'none', group: 'A' },
          axisPlacement: 'auto',
          axisLabel: '',
          axisSoftMin: 0,
          axisBorderShow: false,
          axisCenteredZero: false,
          axisColorMode: 'text',
          barAlignment: 0,
          lineStyle: { fill: 'solid' },
          scaleDistribution: { type: 'linear' },
          hideFrom: { legend: false, tooltip: false, viz: false },
          thresholdsStyle: { mode: 'off' },
        },
        thresholds: g.thresholds([['green', null]]),
        links: [],
      },
      overrides: [],
    },
    options: {
      legend: {
        displayMode: 'table',
        placement: 'right',
        showLegend: true,
        calcs: ['lastNotNull', 'max'],
        sortBy: 'Last *',
        sortDesc: true,
      },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
  },

  table:: panel {
    type: 'table',
    fieldConfig: {
      defaults: {
        color: { mode: 'thresholds' },
        thresholds: g.thresholds([['green', null]]),
        custom: {
          align: 'auto',
          inspect: false,
          filterable: true,
          cellOptions: { type: 'auto' },
        },
      },
      overrides: [],
    },
    options: {
      showHeader: true,
      cellHeight: 'sm',
      frameIndex: 0,
      footer: { show: false, reducer: ['sum'], fields: '', countRows: false },
    },
  },

  // A table override that hides a column.
  hidden(column):: {
    matcher: { id: 'byName', options: column },
    properties: [{ id: 'custom.hidden', value: true }],
  },

  // A table override that makes a column's values links.
  columnLinks(column, links):: {
    matcher: { id: 'byName', options: column },
    properties: [{ id: 'links', value: links }],
  },

  // A table override that writes a column's values in red.
  redText(column):: {
    matcher: { id: 'byName', options: column },
    properties: [
      { id: 'custom.cellOptions', value: { type: 'color-text' } },
      { id: 'color', value: { mode: 'fixed', fixedColor: 'red' } },
    ],
  },

  // A time series override that draws the query refId as a dashed line
  // of color, a limit to compare with (dash: lengths of dash and gap).
  dashedLine(refId, color, dash):: {
    matcher: { id: 'byFrameRefID', options: refId },
    properties: [
      { id: 'color', value: { mode: 'fixed', fixedColor: color } },
      { id: 'custom.lineStyle', value: { fill: 'dash', dash: dash } },
      { id: 'custom.fillOpacity', value: 0 },
      { id: 'custom.lineWidth', value: 2 },
    ],
  },

  // A time series override that draws the query refId dashed and unfilled
  // in each series' own palette colour: one limit per process, which a
  // single fixed colour (dashedLine) would make impossible to tell apart.
  dashedSeries(refId, dash):: {
    matcher: { id: 'byFrameRefID', options: refId },
    properties: [
      { id: 'custom.lineStyle', value: { fill: 'dash', dash: dash } },
      { id: 'custom.fillOpacity', value: 0 },
    ],
  },

  // --- Variables and the dashboard.

  local allCurrent = { selected: true, text: ['All'], value: ['$__all'] },

  datasourceVariable:: {
    type: 'datasource',
    name: 'datasource',
    label: 'Data source',
    description: 'Prometheus that scrapes tcpstate_exporter.',
    query: 'prometheus',
    regex: '',
    refresh: 1,
    hide: 0,
    multi: false,
    includeAll: false,
    options: [],
  },

  // A multi-select variable whose values are label_values(...) of query,
  // All by default (.* for Grafana's All); with single=true one value at a
  // time, none chosen at first.
  queryVariable(name, label, description, query, single=false):: {
    type: 'query',
    name: name,
    label: label,
    description: description,
    datasource: g.datasource,
    query: query,
    definition: query,
    regex: '',
    refresh: 2,
    sort: 1,
    hide: 0,
    multi: !single,
    includeAll: !single,
    options: [],
    current: if single then { selected: false, text: '', value: '' } else allCurrent,
    [if !single then 'allValue']: '.*',
  },

  // The cluster variable of showMultiCluster: every cluster that has an
  // exporter (the site's selector applies, the cluster filter of course
  // not).
  clusterVariable:: g.queryVariable(
    'cluster',
    'Cluster',
    "Cluster (the label %s, an external label of each cluster's Prometheus on a global view)." % cluster,
    promql.withMatchers('label_values(tcpstate_exporter_build_info, %s)' % cluster, cfg.tcpstateSelector),
  ),

  // The variables of a dashboard: the data source first, then the cluster
  // under showMultiCluster, then vars, whose queries get the site's
  // _config.
  variables(vars)::
    [g.datasourceVariable]
    + (if multi then [g.clusterVariable] else [])
    + [v { query: g.expr(super.query), definition: g.expr(super.definition) } for v in vars],

  dashboard(uid, title, description, otherTitle, variables, panels):: {
    id: null,
    uid: uid,
    title: title,
    description: description,
    tags: ['tcpstate'],
    editable: true,
    graphTooltip: 1,
    timezone: 'browser',
    fiscalYearStartMonth: 0,
    liveNow: false,
    refresh: '30s',
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    annotations: {
      list: [{
        builtIn: 1,
        datasource: { type: 'grafana', uid: '-- Grafana --' },
        enable: true,
        hide: true,
        iconColor: 'rgba(0, 211, 255, 1)',
        name: 'Annotations & Alerts',
        type: 'dashboard',
      }],
    },
    links: [
      {
        title: 'tcpstate dashboards',
        type: 'dashboards',
        tags: ['tcpstate'],
        asDropdown: true,
        icon: 'external link',
        tooltip: otherTitle,
        targetBlank: false,
        includeVars: true,
        keepTime: true,
      },
      {
        title: 'Runbooks',
        type: 'link',
        url: cfg.runbookURLBase,
        tags: [],
        asDropdown: false,
        icon: 'doc',
        tooltip: 'What each tcpstate alert means and what to do',
        targetBlank: true,
        includeVars: false,
        keepTime: false,
      },
    ],
    templating: { list: g.variables(variables) },
    panels: panels,
  },
}
