// The site's _config applied to a dashboard query written for one
// Prometheus, as Grafana shows it:
// - every tcpstate_ selector gets _config.tcpstateSelector's matchers first;
// - with _config.showMultiCluster, every selector also gets
//   <clusterLabel>=~"$cluster", every `by (...)` and `on (...)` list and
//   every aggregation without one keeps the cluster label, and the zero an
//   empty result falls back to (`or vector(0)`) becomes one zero per
//   cluster, so that a panel never adds up clusters whose instance names
//   collide.
// The queries are written in the form these rewrites read: aggregations as
// `sum by (a, b) (...)` or `sum(...)` (never `sum(...) by (a)`), joins as
// `on (a, b)`, metric names starting with tcpstate_. dashboards/validate
// checks every rendering with a PromQL lexer, so a query they miss fails
// there.
// A character of a metric or label name (std.setMember on a set of them
// costs a hundred times more).
local isIdent(c) =
  local cp = std.codepoint(c);
  (cp >= 97 && cp <= 122) || (cp >= 65 && cp <= 90) || (cp >= 48 && cp <= 57) || c == '_' || c == ':';

// The aggregation operators that merge or pick series.
local aggregations = ['sum', 'count', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values'];

{
  // s with every word that stands on its own (not the end of a longer name,
  // not inside a quoted label value) replaced by f(the text after it).
  // Built on std.strReplace and std.split, which go-jsonnet runs natively:
  // scanning a string character by character in jsonnet takes most of a
  // second per query. (jsonnet 0.18's std.split takes one character: the
  // word becomes a separator that no query contains first.)
  local replaceWord(s, word, f) =
    local sep = '\u001f';
    assert std.length(std.split(s, sep)) == 1 : 'a query contains U+001F: %s' % s;
    local pieces = std.split(std.strReplace(s, word, sep), sep);
    local alone(piece) = piece == '' || !(isIdent(piece[std.length(piece) - 1]) || piece[std.length(piece) - 1] == '"');
    std.foldl(
      function(acc, i) acc + (if alone(pieces[i - 1]) then f(pieces[i]) else word + pieces[i]),
      std.range(1, std.length(pieces) - 1),
      pieces[0],
    ),

  // The index after the name that starts s.
  local nameEnd(s, i=0) = if i < std.length(s) && isIdent(s[i]) then nameEnd(s, i + 1) else i,

  // matchers (a string such as 'job="x", cluster=~"$cluster"') first in
  // every tcpstate_ selector of s.
  withMatchers(s, matchers)::
    if matchers == '' then s else replaceWord(s, 'tcpstate_', function(rest)
      local j = nameEnd(rest);
      local name = 'tcpstate_' + rest[:j];
      if j < std.length(rest) && rest[j] == '{' then
        name + '{' + matchers + (if j + 1 < std.length(rest) && rest[j + 1] == '}' then '' else ', ') + rest[j + 1:]
      else
        name + '{' + matchers + '}' + rest[j:]),

  // label in every by and on list of s, and a `by (label)` on every
  // aggregation that has no list; `or vector(0)` becomes a zero for each
  // cluster that has none of the query's series.
  withLabel(s, label)::
    local lists = std.foldl(
      function(acc, kw) replaceWord(acc, kw, function(rest)
        kw + label + (if std.length(rest) > 0 && rest[0] == ')' then '' else ', ') + rest),
      ['by (', 'on ('],
      s,
    );
    local bare = std.foldl(
      function(acc, op) replaceWord(acc, op.word, function(rest) op.name + ' by (' + label + ') (' + rest),
      [{ name: a, word: a + open } for a in aggregations for open in ['(', ' (']],
      lists,
    );
    std.strReplace(
      bare,
      'or vector(0)',
      'or on (%(l)s) (0 * count by (%(l)s) (tcpstate_exporter_build_info))' % { l: label },
    ),

  // A dashboard query (or a variable's label_values(...)) with the site's
  // _config applied.
  site(s, cfg)::
    local cluster = if cfg.showMultiCluster then ['%s=~"$cluster"' % cfg.clusterLabel] else [];
    local matchers = std.join(', ', std.filter(function(m) m != '', [cfg.tcpstateSelector] + cluster));
    self.withMatchers(if cfg.showMultiCluster then self.withLabel(s, cfg.clusterLabel) else s, matchers),
}
