// Small helpers shared by the rules and alerts of the mixin.
{
  // A selector: the site's matchers (_config.tcpstateSelector) first, then
  // the rule's own; '' when there are none, so that a metric without
  // matchers stays a bare name, as in the shipped rule file.
  selector(site, own='')::
    local parts = std.filter(function(p) p != '', [site, own]);
    if parts == [] then '' else '{' + std.join(',', parts) + '}',

  // Where an alert is: text with every {{ $labels.instance }} followed, on
  // a global view (_config.showMultiCluster), by its cluster, since
  // instance names repeat from cluster to cluster.
  where(cfg, text)::
    if cfg.showMultiCluster
    then std.strReplace(text, '{{ $labels.instance }}', '{{ $labels.instance }} in cluster {{ $labels.%s }}' % cfg.clusterLabel)
    else text,

  // A number as PromQL and the descriptions write it: 0.8, not the
  // 0.80000000000000004 of std.toString.
  num(x):: '%g' % x,

  // A Prometheus duration in words, as the descriptions quote it:
  // '15m' -> '15 minutes', '1h30m' -> '1 hour 30 minutes'.
  words(duration)::
    local units = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', y: 'year' };
    local step(acc, c) =
      if std.member('0123456789', c) then acc { n+: c }
      else (
        assert acc.n != '' && std.objectHas(units, c) :
               'duration "%s": expected whole units of %s' % [duration, std.join('', std.objectFields(units))];
        acc { n: '', parts+: [acc.n + ' ' + units[c] + (if acc.n == '1' then '' else 's')] }
      );
    local r = std.foldl(step, std.stringChars(duration), { n: '', parts: [] });
    assert r.n == '' && r.parts != [] : 'duration "%s": expected e.g. 15m or 1h30m' % duration;
    std.join(' ', r.parts),

  // Replaces each %(key)s in text with vars[key], and nothing else: the
  // alert templates are full of printf verbs (%.0f, %q) that std.format
  // would try to read.
  fill(text, vars)::
    std.foldl(function(t, k) std.strReplace(t, '%(' + k + ')s', vars[k]), std.objectFields(vars), text),

  // The lines of a text block, without the empty string after its final
  // newline.
  lines(text)::
    local ls = std.split(text, '\n');
    if ls != [] && ls[std.length(ls) - 1] == '' then ls[:std.length(ls) - 1] else ls,
}
