// The recording rules, for dashboards. The alerts do not read them, so a
// dashboard-only change here can never silence a page. The comment:: of
// each rule is written above it in rules/tcpstate_exporter.rules.yml.
local u = import '../lib/util.libsonnet';

{
  prometheusRules+:: {
    local cfg = $._config,
    local s = {
      all: u.selector(cfg.tcpstateSelector),
      dead: u.selector(cfg.tcpstateSelector, 'state=~"close_wait|close"'),
      inUse: u.selector(cfg.tcpstateSelector, 'state=~"established|close_wait|close"'),
    },

    groups+: [
      {
        name: 'tcpstate_exporter.recording',
        rules: [
          {
            comment:: |||
              Sockets per state on each host, IPv4 and IPv6 added together: the
              overview panel of a dashboard rarely cares about the family.
            |||,
            record: 'tcpstate:connections:sum',
            expr: 'sum without (family) (tcpstate_connections%(all)s)' % s,
          },
          {
            comment:: |||
              Sockets that take a slot of the pool: established ones (busy or idle)
              plus dead ones not closed by the client: CLOSE_WAIT, and CLOSE (reset
              and dropped from the kernel's tables, still held). This is the number
              the pool's maximum limits.
            |||,
            record: 'tcpstate:pool_in_use_connections:sum',
            expr: 'sum without (state) (tcpstate_pool_connections%(inUse)s)' % s,
          },
          {
            comment:: |||
              Share of the pool's maximum taken by sockets in use (0..1, can exceed
              1 if the declared maximum is lower than the client's real one).
            |||,
            record: 'tcpstate:pool_in_use_connections:ratio',
            expr: |||
              sum without (state) (tcpstate_pool_connections%(inUse)s)
                /
              tcpstate_pool_max_connections%(all)s
            ||| % s,
          },
          {
            comment:: |||
              Share of the pool's maximum taken by dead sockets, CLOSE_WAIT and
              CLOSE (0..1): the leak the exporter exists to show. 1 means every slot
              is dead. (The name predates CLOSE.)
            |||,
            record: 'tcpstate:pool_close_wait_connections:ratio',
            expr: |||
              sum without (state) (tcpstate_pool_connections%(dead)s)
                /
              tcpstate_pool_max_connections%(all)s
            ||| % s,
          },
        ],
      },
    ],
  },
}
