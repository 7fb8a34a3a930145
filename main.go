// Command tcpstate_exporter exposes the host's TCP sockets by state, port,
// process and declared connection pool as Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	sloggokit "github.com/tjhop/slog-gokit"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector"
)

const (
	programName = "tcpstate_exporter"
	// defaultPort is ours in the exporter range; see the README.
	defaultAddress = ":9951"
)

// serveOnlyFlags are the flags only serving uses, hidden from `top --help`.
var serveOnlyFlags = []string{
	"web.listen-address", "web.config.file", "web.systemd-socket", "web.telemetry-path",
	"web.max-requests", "web.enable-lifecycle", "collector.close-wait.sample-interval",
}

func main() {
	// A scrape reuses one large socket buffer and allocates little else; at
	// Go's default GOGC of 100 the heap may grow to twice that buffer
	// between collections. 25 keeps the peak near the live size for a
	// little CPU (docs/performance.md). GOGC in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	app := kingpin.New(programName, "Prometheus exporter for TCP socket states by port, process and connection pool.")
	var (
		metricsPath = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		maxRequests = app.Flag("web.max-requests", "Maximum number of concurrent scrape requests; more are answered with 503. 0 means no limit.").Default("40").Int()
		lifecycle   = app.Flag("web.enable-lifecycle", "Enable POST /-/reload to reload --config.file.").Default("false").Bool()
		procRoot    = app.Flag("path.procfs", "procfs mountpoint.").Default("/proc").String()
		configFile  = app.Flag("config.file", "YAML file declaring connection pools. Without it there are no pool metrics.").Default("").String()
		maxSeries   = app.Flag("collector.max-series", "Most series each per-port, per-process and per-route family keeps; the rest are folded into one \"other\" series per state.").Default("1000").Int()
		routeStates = app.Flag("collector.process.remote-states", "Comma-separated TCP states reported by tcpstate_process_remote_connections.").Default("close_wait,close,established").String()
		workers     = app.Flag("collector.process.workers", "Processes whose /proc/PID/fd are read in parallel.").Default("4").Int()
		stuckAfter  = app.Flag("collector.close-wait.stuck-after", "A socket in CLOSE_WAIT for longer than this counts as stuck (tcpstate_*_close_wait_stuck_sockets).").Default("5m").Duration()
		maxTracked  = app.Flag("collector.close-wait.max-tracked", "Most CLOSE_WAIT sockets whose first sighting is remembered (about 50 bytes each); beyond it a socket keeps only its kernel age, if the source gives one. Also bounds the routes remembered for sockets the kernel may drop while a process holds them (state close, about 126 bytes each). 0 turns CLOSE_WAIT ages and remembered routes off.").Default("100000").Int()
		tcpSource   = app.Flag("collector.tcp.source", "Where to read the TCP tables of the exporter's own network namespace: auto (netlink sock_diag, falling back to procfs with one log line), netlink, or procfs (/proc/net/tcp and tcp6 under --path.procfs).").Default(collector.SourceAuto).String()
		netns       = app.Flag("collector.netns", "Read the TCP tables of every network namespace that has a process (containers), not only the exporter's own; adds tcpstate_netns_connections. Costs one readlink per process and one table read per other namespace.").Default("true").Bool()
		sampleEvery = app.Flag("collector.close-wait.sample-interval", "Also read the tables this often between scrapes, so CLOSE_WAIT ages are finer than the scrape interval; 0 (the default) reads only on scrapes.").Default("0").Duration()
		logLevelSet bool
		logLevel    = app.Flag("log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]. `top` logs only errors unless this is given.").Default("info").IsSetByUser(&logLevelSet).String()
		logFormat   = app.Flag("log.format", "Output format of log messages. One of: [logfmt, json]").Default("logfmt").String()
		webFlags    = kingpinflag.AddFlags(app, defaultAddress)
		selection   = collector.AddFlags(app)

		serveCmd = app.Command("serve", "Serve the metrics over HTTP (the default).").Default()
		topCmd   = app.Command("top", "Print the processes holding the most CLOSE_WAIT sockets, per remote endpoint, and exit: the numbers of one scrape, as a table.")
		top      topOptions
	)
	topCmd.Flag("limit", "Rows to print; 0 prints all.").Default("20").IntVar(&top.limit)
	topCmd.Flag("watch", "Refresh the table until interrupted.").BoolVar(&top.watch)
	topCmd.Flag("interval", "Time between refreshes with --watch.").Default("2s").DurationVar(&top.interval)
	topCmd.Flag("count", "With --watch, stop after this many refreshes; 0 means never.").Default("0").IntVar(&top.count)
	topCmd.Flag("sockets", "List CLOSE_WAIT sockets one by one, oldest first: pid, process, local and remote address, age and its clock, unread bytes, pool.").BoolVar(&top.sockets)
	topCmd.Flag("output", "With --sockets: table, or json for scripts.").Default("table").StringVar(&top.output)
	var (
		topProcess = topCmd.Flag("process", "With --sockets: only sockets whose process name (comm) matches this regexp.").String()
		topAddress = topCmd.Flag("remote-address", "With --sockets: only sockets toward this IP address or CIDR.").String()
		topPort    = topCmd.Flag("remote-port", "With --sockets: only sockets toward this port.").Int()
		topPool    = topCmd.Flag("pool", "With --sockets: only sockets that belong to this declared pool.").String()
	)
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
	app.UsageWriter(os.Stdout)
	command, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v (see --help)\n", programName, err)
		return 2
	}

	if err := oneOf("--log.level", *logLevel, "debug", "info", "warn", "error"); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName, err)
		return 2
	}
	if err := oneOf("--log.format", *logFormat, "logfmt", "json"); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName, err)
		return 2
	}
	if command == topCmd.FullCommand() && !logLevelSet {
		// The table is what top is for: log lines would land between its
		// rows. It says itself why rows are missing; --log.level shows the
		// log (on standard error) again.
		*logLevel = "error"
	}
	logger, slogger := newLoggers(*logLevel, *logFormat)
	if command == serveCmd.FullCommand() {
		level.Info(logger).Log("msg", "starting "+programName, "version", version.Info())
		level.Info(logger).Log("msg", "build context", "build_context", version.BuildContext())
	}
	// Before any /proc/PID/fd is read; the image's binary has its
	// capabilities permitted but not yet effective.
	collector.RaiseFdCapabilities(logger)

	states, err := collector.ParseStates(splitList(*routeStates))
	if err != nil {
		level.Error(logger).Log("msg", "bad --collector.process.remote-states", "err", err)
		return 2
	}

	cfg := &configHolder{path: *configFile, logger: logger}
	if err := cfg.load(); err != nil {
		level.Error(logger).Log("msg", "bad config file; not starting", "err", err)
		return 1
	}

	if *maxTracked < 0 || *stuckAfter <= 0 || *sampleEvery < 0 {
		fmt.Fprintf(os.Stderr, "%s: --collector.close-wait.max-tracked must be >= 0, --collector.close-wait.stuck-after > 0 and --collector.close-wait.sample-interval >= 0\n", programName)
		return 2
	}
	var tracker *collector.CloseWaitTracker
	if *maxTracked > 0 {
		tracker = collector.NewCloseWaitTracker(*maxTracked)
	}
	tables, err := collector.NewTableSource(*tcpSource, *procRoot, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName, err)
		return 2
	}
	if *netns {
		tables = collector.NewNamespaceTables(*procRoot, tables)
	}
	exporter, err := collector.NewExporter(collector.Options{
		Tables:      tables,
		ProcRoot:    *procRoot,
		MaxSeries:   *maxSeries,
		RouteStates: states,
		Config:      cfg.current,
		Workers:     *workers,
		CloseWait:   tracker,
		StuckAfter:  *stuckAfter,
		Logger:      logger,
	}, selection.Enabled())
	if err != nil {
		level.Error(logger).Log("msg", "cannot set up collectors", "err", err)
		return 2
	}
	if command == topCmd.FullCommand() {
		if err := oneOf("--output", top.output, "table", "json"); err != nil {
			fmt.Fprintf(os.Stderr, "%s top: %v\n", programName, err)
			return 2
		}
		if top.filter, err = parseSocketFilter(*topProcess, *topAddress, *topPort, *topPool); err != nil {
			fmt.Fprintf(os.Stderr, "%s top: %v\n", programName, err)
			return 2
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		top.terminal = isTerminal(os.Stdout)
		if err := runTop(ctx, exporter, cfg.current, *procRoot, top, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "%s top: %v\n", programName, err)
			return 1
		}
		return 0
	}
	level.Info(logger).Log("msg", "enabled collectors", "collectors", strings.Join(selection.Enabled(), ","))
	if *sampleEvery > 0 && tracker != nil {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		go exporter.SampleCloseWait(ctx, *sampleEvery)
	}

	self := prometheus.NewRegistry()
	self.MustRegister(
		versioncollector.NewCollector(programName),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		cfg,
	)

	mux := http.NewServeMux()
	mux.Handle(*metricsPath, metricsHandler(exporter, self, *maxRequests, logger))
	if *lifecycle {
		mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost && r.Method != http.MethodPut {
				http.Error(w, "use POST or PUT to reload", http.StatusMethodNotAllowed)
				return
			}
			if err := cfg.reload("POST /-/reload"); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "config reloaded")
		})
	} else {
		// Say why rather than a bare 404: the endpoint exists but is off.
		mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "/-/reload is off: start the exporter with --web.enable-lifecycle to reload --config.file over HTTP (SIGHUP reloads it in any case)", http.StatusNotFound)
		})
	}
	if *metricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        programName,
			Description: "TCP sockets by state, port, process and connection pool",
			Version:     version.Info(),
			Links:       []web.LandingLinks{{Address: *metricsPath, Text: "Metrics"}},
		})
		if err != nil {
			level.Error(logger).Log("msg", "cannot build the landing page", "err", err)
			return 1
		}
		mux.Handle("/", landing)
	}

	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(signals)
	go func() {
		for sig := range signals {
			if sig == syscall.SIGHUP {
				cfg.reload("SIGHUP")
				continue
			}
			level.Info(logger).Log("msg", "shutting down", "signal", sig.String())
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = server.Shutdown(ctx)
			cancel()
			return
		}
	}()

	if err := web.ListenAndServe(server, webFlags, slogger); err != nil && !errors.Is(err, http.ErrServerClosed) {
		level.Error(logger).Log("msg", "cannot serve", "err", err)
		return 1
	}
	return 0
}

// newLoggers returns the go-kit logger the program logs with (with time
// stamp and caller) and an slog bridge for exporter-toolkit, built on the
// undecorated logger because the bridge adds its own time and caller, which
// toolkitDialect renames and orders as the program's own.
func newLoggers(lvl, format string) (log.Logger, *slog.Logger) {
	w := log.NewSyncWriter(os.Stderr)
	var base log.Logger
	if format == "json" {
		base = log.NewJSONLogger(w)
	} else {
		base = log.NewLogfmtLogger(w)
	}
	allow := map[string]level.Option{"debug": level.AllowDebug(), "info": level.AllowInfo(), "warn": level.AllowWarn(), "error": level.AllowError()}[lvl]
	base = level.NewFilter(base, allow)
	logger := log.With(base, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller)
	slogLevel := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[lvl]
	return logger, slog.New(sloggokit.NewGoKitHandler(toolkitDialect{base}, slogLevel))
}

// metricsHandler serves one scrape: the exporter's families, read within the
// scrape's timeout, beside the program's own metrics. At most maxRequests
// scrapes run at once; the excess gets 503 rather than a queue.
func metricsHandler(e *collector.Exporter, self *prometheus.Registry, maxRequests int, logger log.Logger) http.Handler {
	var slots chan struct{}
	if maxRequests > 0 {
		slots = make(chan struct{}, maxRequests)
	}
	errLog := stdlog.New(log.NewStdlibAdapter(level.Error(logger)), "", 0)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slots != nil {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			default:
				http.Error(w, fmt.Sprintf("too many concurrent scrapes (--web.max-requests=%d)", maxRequests), http.StatusServiceUnavailable)
				return
			}
		}
		ctx := r.Context()
		if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
			if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
				var cancel context.CancelFunc
				// Leave a little of the scrape's time for sending the answer.
				ctx, cancel = context.WithTimeout(ctx, time.Duration(secs*0.9*float64(time.Second)))
				defer cancel()
			}
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(e.Bind(ctx))
		promhttp.HandlerFor(prometheus.Gatherers{self, reg}, promhttp.HandlerOpts{
			ErrorLog:      errLog,
			ErrorHandling: promhttp.ContinueOnError,
		}).ServeHTTP(w, r)
	})
}

func oneOf(flag, value string, allowed ...string) error {
	for _, a := range allowed {
		if value == a {
			return nil
		}
	}
	return fmt.Errorf("%s=%q: must be one of %s", flag, value, strings.Join(allowed, ", "))
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

// configHolder keeps the current pool configuration, swaps in a new one
// only when it is valid, and reports reloads as metrics.
type configHolder struct {
	path   string
	logger log.Logger

	mu          sync.Mutex
	cfg         *collector.Config
	ok          bool
	lastSuccess time.Time
}

var (
	reloadOKDesc = prometheus.NewDesc("tcpstate_config_last_reload_successful",
		"Whether the last load of --config.file succeeded (1) or was rejected, keeping the previous config (0).", nil, nil)
	reloadTimeDesc = prometheus.NewDesc("tcpstate_config_last_reload_success_timestamp_seconds",
		"Time of the last successful load of --config.file, in seconds since the epoch.", nil, nil)
)

func (h *configHolder) load() error {
	cfg := &collector.Config{}
	if h.path != "" {
		var err error
		if cfg, err = collector.LoadConfig(h.path); err != nil {
			h.mu.Lock()
			h.ok = false
			h.mu.Unlock()
			return err
		}
	}
	if h.path != "" && len(cfg.Pools) == 0 {
		// Valid, but probably not what was meant: a file that lost its
		// content, or pools commented out.
		level.Warn(h.logger).Log("msg", "the config file declares no pools; there are no pool metrics until it does", "file", h.path)
	}
	h.mu.Lock()
	h.cfg, h.ok, h.lastSuccess = cfg, true, time.Now()
	h.mu.Unlock()
	return nil
}

// reload loads the config again, keeping the old one if the new one is bad.
func (h *configHolder) reload(trigger string) error {
	if err := h.load(); err != nil {
		level.Error(h.logger).Log("msg", "config rejected; keeping the previous one", "trigger", trigger, "err", err)
		return err
	}
	level.Info(h.logger).Log("msg", "config reloaded", "trigger", trigger, "file", h.path)
	return nil
}

func (h *configHolder) current() *collector.Config {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg
}

func (h *configHolder) Describe(ch chan<- *prometheus.Desc) {
	ch <- reloadOKDesc
	ch <- reloadTimeDesc
}

func (h *configHolder) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ok := 0.0
	if h.ok {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(reloadOKDesc, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(reloadTimeDesc, prometheus.GaugeValue, float64(h.lastSuccess.UnixNano())/1e9)
}
