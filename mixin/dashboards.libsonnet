// The Grafana dashboards, imported as the JSON files in dashboards/ are:
// those files are the source, edited in Grafana and checked by
// dashboards/validate; the mixin hands them on unchanged.
{
  grafanaDashboards+:: {
    'tcpstate-overview.json': import '../dashboards/tcpstate-overview.json',
    'tcpstate-drilldown.json': import '../dashboards/tcpstate-drilldown.json',
  },
}
