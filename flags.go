package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
	"github.com/tcpstate-exporter/tcpstate_exporter/top"
)

// serveOnlyFlags are the flags only serving uses, hidden from `top --help`.
var serveOnlyFlags = []string{
	"web.listen-address", "web.config.file", "web.systemd-socket", "web.telemetry-path",
	"web.max-requests", "web.enable-lifecycle", "web.enable-pprof", "collector.close-wait.sample-interval",
}

// minWatchInterval keeps `top --watch` from reading the tables in a busy
// loop; watch(1) has the same floor.
const minWatchInterval = 100 * time.Millisecond

// options are the command line: the exporter's flags, the collectors'
// switches and, for `top`, its own flags.
type options struct {
	metricsPath string
	maxRequests int
	lifecycle   bool
	pprof       bool
	procRoot    string
	configFile  string
	maxSeries   int
	routeStates string
	workers     int
	stuckAfter  time.Duration
	maxTracked  int
	tcpSource   string
	netns       bool
	sampleEvery time.Duration
	logLevelSet bool
	logLevel    string
	logFormat   string
	webFlags    *web.FlagConfig
	selection   *collector.Selection

	top                    top.Options
	countSet, intervalSet  bool
	topProcess, topAddress string
	topPort                int
	topPool                string
	// top's source: the running exporter, unless --no-exporter.
	topExporter                   bool
	topExporterURL, topHTTPConfig string
	topExporterURLSet             bool
}

// newApp declares the command line; parsing it fills the options.
func newApp() (*kingpin.Application, *options) {
	o := &options{}
	app := kingpin.New(programName, "Prometheus exporter for TCP socket states by port, process and connection pool.")
	textFlag(app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics"), &o.metricsPath, checkTelemetryPath)
	intFlag(app.Flag("web.max-requests", "Maximum number of concurrent scrape requests; more are answered with 503. 0 means no limit.").Default("40"), &o.maxRequests, 0, maxInt, "0 (no limit) or more")
	app.Flag("web.enable-lifecycle", "Enable POST /-/reload to reload --config.file.").Default("false").BoolVar(&o.lifecycle)
	app.Flag("web.enable-pprof", "Serve Go's profiles (/debug/pprof/: heap, CPU, goroutines) beside the metrics and link them on the landing page. Anyone who reaches the port may then read the exporter's memory layout and load its CPU; off by default.").Default("false").BoolVar(&o.pprof)
	textFlag(app.Flag("path.procfs", "procfs mountpoint.").Default("/proc"), &o.procRoot, notEmpty("a directory such as /proc"))
	app.Flag("config.file", "YAML file declaring connection pools. Without it there are no pool metrics.").Default("").StringVar(&o.configFile)
	intFlag(app.Flag("collector.max-series", "Most series each per-port, per-process and per-route family keeps; the rest are folded into one \"other\" series per state.").Default("1000"), &o.maxSeries, 1, maxInt, "1 or more")
	textFlag(app.Flag("collector.process.remote-states", "Comma-separated TCP states reported by tcpstate_process_remote_connections.").Default("close_wait,close,established"), &o.routeStates, checkStateList)
	intFlag(app.Flag("collector.process.workers", "Processes whose /proc/PID/fd are read in parallel.").Default("4"), &o.workers, 1, 1024, "1 to 1024")
	durationFlag(app.Flag("collector.close-wait.stuck-after", "A socket in CLOSE_WAIT for longer than this counts as stuck (tcpstate_*_close_wait_stuck_sockets).").Default("5m"), &o.stuckAfter, time.Second, false, "1s or more")
	intFlag(app.Flag("collector.close-wait.max-tracked", "Most sockets the exporter remembers between readings, in one record each (63 to 75 bytes): CLOSE_WAIT sockets, for their age, and outbound CLOSE_WAIT or pool sockets, for their route should the kernel drop them while a process holds them (state close). Once full, a new CLOSE_WAIT socket keeps only its kernel age, if the source gives one, and a new pool socket's route is not remembered. 0 turns CLOSE_WAIT ages and remembered routes off.").Default("100000"), &o.maxTracked, 0, maxInt, "0 (no ages) or more")
	app.Flag("collector.tcp.source", "Where to read the TCP tables of the exporter's own network namespace: auto (netlink sock_diag, falling back to procfs with one log line), netlink, or procfs (/proc/net/tcp and tcp6 under --path.procfs).").Default(tables.SourceAuto).StringVar(&o.tcpSource)
	app.Flag("collector.netns", "Read the TCP tables of every network namespace that has a process (containers), not only the exporter's own; adds tcpstate_netns_connections. Costs one readlink per process and one table read per other namespace.").Default("true").BoolVar(&o.netns)
	durationFlag(app.Flag("collector.close-wait.sample-interval", "Also read the tables this often between scrapes (at least 1s), so CLOSE_WAIT ages are finer than the scrape interval; 0 (the default) reads only on scrapes.").Default("0"), &o.sampleEvery, time.Second, true, "0 (off) or 1s or more")
	app.Flag("log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]. `top` logs only errors unless this is given.").Default("info").IsSetByUser(&o.logLevelSet).StringVar(&o.logLevel)
	app.Flag("log.format", "Output format of log messages. One of: [logfmt, json]").Default("logfmt").StringVar(&o.logFormat)
	o.webFlags = kingpinflag.AddFlags(app, defaultAddress)
	o.selection = collector.AddFlags(app)

	app.Command("serve", "Serve the metrics over HTTP (the default).").Default()
	topCmd := app.Command("top", "Print the processes holding the most CLOSE_WAIT sockets, per remote endpoint, and exit: the numbers of one scrape, as a table. Exit status: 0; 1 when it cannot run; 2 for a bad command line; 3 when the numbers it printed are incomplete (a collector failed; standard error says which).")
	intFlag(topCmd.Flag("limit", "Rows to print; 0 prints all.").Default("20"), &o.top.Limit, 0, maxInt, "0 (all) or more")
	topCmd.Flag("watch", "Refresh the table until interrupted.").BoolVar(&o.top.Watch)
	durationFlag(topCmd.Flag("interval", "Time between refreshes with --watch; at least 100ms.").Default("2s").IsSetByUser(&o.intervalSet), &o.top.Interval, minWatchInterval, false, "100ms or more")
	intFlag(topCmd.Flag("count", "With --watch, stop after this many refreshes; 0 means never.").Default("0").IsSetByUser(&o.countSet), &o.top.Count, 0, maxInt, "0 (never stop) or more")
	topCmd.Flag("sockets", "List CLOSE_WAIT sockets one by one, oldest first: pid, process, local and remote address, age and its clock, unread bytes, pool.").BoolVar(&o.top.Sockets)
	topCmd.Flag("output", "table, or json for scripts (one object per refresh).").Default("table").StringVar(&o.top.Output)
	textFlag(topCmd.Flag("process", "Only routes (with --sockets: sockets) whose process name (comm) matches this regexp."), &o.topProcess, notEmpty("a regexp such as ^java$"))
	textFlag(topCmd.Flag("remote-address", "Only routes (with --sockets: sockets) toward this IP address or CIDR."), &o.topAddress, notEmpty("an IP address or CIDR"))
	intFlag(topCmd.Flag("remote-port", "Only routes (with --sockets: sockets) toward this port."), &o.topPort, 1, 65535, "a port from 1 to 65535")
	textFlag(topCmd.Flag("pool", "Only routes (with --sockets: sockets) that belong to this declared pool."), &o.topPool, notEmpty("the name of a pool of --config.file"))
	topCmd.Flag("exporter", "Take the numbers from the running exporter at --exporter.url (what /metrics serves, with what it remembers), reading the kernel only when none answers; --no-exporter reads the kernel at once.").Default("true").BoolVar(&o.topExporter)
	textFlag(topCmd.Flag("exporter.url", "Base URL of the running exporter.").Default("http://localhost:9951").IsSetByUser(&o.topExporterURLSet), &o.topExporterURL, notEmpty("a URL such as http://localhost:9951"))
	textFlag(topCmd.Flag("exporter.http-config.file", "Prometheus HTTP client settings (tls_config, basic_auth, authorization…) for --exporter.url, as in a scrape config."), &o.topHTTPConfig, notEmpty("a file name"))
	// `top --help` lists what top uses: it serves nothing and samples
	// nothing between its own refreshes. Its pre-action runs before kingpin
	// writes the help.
	topCmd.PreAction(func(*kingpin.ParseContext) error {
		for _, name := range serveOnlyFlags {
			if f := app.GetFlag(name); f != nil {
				f.Hidden()
			}
		}
		return nil
	})
	app.Version(version.Print(programName))
	app.HelpFlag.Short('h')
	return app, o
}

func oneOf(flag, value string, allowed ...string) error {
	for _, a := range allowed {
		if value == a {
			return nil
		}
	}
	return fmt.Errorf("%s=%q: must be one of %s", flag, value, strings.Join(allowed, ", "))
}

// checkStateList refuses an empty list, which would quietly empty
// tcpstate_process_remote_connections, and unknown states.
func checkStateList(s string) error {
	states := splitList(s)
	if len(states) == 0 {
		return errors.New("empty; it takes comma-separated TCP states such as close_wait,established")
	}
	_, err := collector.ParseStates(states)
	return err
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
