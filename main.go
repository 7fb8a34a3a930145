// Command tcpstate_exporter exposes the host's TCP sockets by state, port,
// process and declared connection pool as Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/common/version"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
	"github.com/tcpstate-exporter/tcpstate_exporter/top"
)

const (
	programName = "tcpstate_exporter"
	// defaultPort is ours in the exporter range; see the README.
	defaultAddress = ":9951"
)

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
	fillVersion()
	app, o := newApp()
	app.UsageWriter(os.Stdout)
	args, err := expandArgFiles(args, 0)
	if err == nil {
		args = joinNegativeValues(app, args)
		err = checkNoNUL(args)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v (see --help)\n", programName, err)
		return 2
	}
	command, err := app.Parse(args)
	if err != nil {
		if named := switchGivenValue(app, args, err); named != nil {
			err = named
		} else {
			err = nameBadFlag(app, args, err)
		}
		fmt.Fprintf(os.Stderr, "%s: %v (see --help)\n", programName, err)
		return 2
	}

	if err := oneOf("--log.level", o.logLevel, "debug", "info", "warn", "error"); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName, err)
		return 2
	}
	if err := oneOf("--log.format", o.logFormat, "logfmt", "json"); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName, err)
		return 2
	}
	if err := oneOf("--collector.tcp.source", o.tcpSource, tables.SourceKinds...); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName, err)
		return 2
	}
	isTop := command == "top"
	if !isTop {
		if err := checkServeFlags(o); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v (see --help)\n", programName, err)
			return 2
		}
	}
	if isTop && !o.logLevelSet {
		// The table is what top is for: log lines would land between its
		// rows. It says itself why rows are missing; --log.level shows the
		// log (on standard error) again.
		o.logLevel = "error"
	}
	logger, slogger := newLoggers(o.logLevel, o.logFormat)
	if !isTop {
		level.Info(logger).Log("msg", "starting "+programName, "version", version.Info())
		level.Info(logger).Log("msg", "build context", "build_context", version.BuildContext())
	}
	// Before any /proc/PID/fd is read; the image's binary has its
	// capabilities permitted but not yet effective.
	owners.RaiseFdCapabilities(logger)

	exporter, cfg, code := newExporter(o, logger)
	if exporter == nil {
		return code
	}
	if isTop {
		return runTop(o, exporter, cfg)
	}
	return serve(o, exporter, cfg, logger, slogger)
}

// newExporter builds the collectors the flags ask for, with the config
// file loaded; on failure it returns the exit code instead.
func newExporter(o *options, logger log.Logger) (*collector.Exporter, *configHolder, int) {
	states, err := collector.ParseStates(splitList(o.routeStates)) // checked as parsed
	if err != nil {
		level.Error(logger).Log("msg", "bad --collector.process.remote-states", "err", err)
		return nil, nil, 2
	}

	if err := tables.CheckProcRoot(o.tcpSource, o.procRoot); err != nil {
		level.Error(logger).Log("msg", "wrong --path.procfs; not starting", "err", err)
		return nil, nil, 1
	}

	cfg := &configHolder{path: o.configFile, logger: logger}
	if err := cfg.load(); err != nil {
		level.Error(logger).Log("msg", "bad config file; not starting", "err", err)
		return nil, nil, 1
	}

	var tracker *snapshot.CloseWaitTracker
	if o.maxTracked > 0 {
		tracker = snapshot.NewCloseWaitTracker(o.maxTracked)
	}
	src, err := tables.NewTableSource(o.tcpSource, o.procRoot, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName, err)
		return nil, nil, 2
	}
	if o.netns {
		src = tables.NewNamespaceTables(o.procRoot, src)
	}
	exporter, err := collector.NewExporter(collector.Options{
		Tables:      src,
		ProcRoot:    o.procRoot,
		MaxSeries:   o.maxSeries,
		RouteStates: states,
		Config:      cfg.current,
		Workers:     o.workers,
		CloseWait:   tracker,
		StuckAfter:  o.stuckAfter,
		Logger:      logger,
	}, o.selection.Enabled())
	if err != nil {
		level.Error(logger).Log("msg", "cannot set up collectors", "err", err)
		return nil, nil, 2
	}
	return exporter, cfg, 0
}

// runTop runs `tcpstate_exporter top` with its flags.
func runTop(o *options, exporter *collector.Exporter, cfg *configHolder) int {
	if err := oneOf("--output", o.top.Output, "table", "json"); err != nil {
		fmt.Fprintf(os.Stderr, "%s top: %v\n", programName, err)
		return 2
	}
	// Refuse what would be ignored: without --watch top prints once.
	for _, f := range []struct {
		set  bool
		name string
	}{{o.countSet, "--count"}, {o.intervalSet, "--interval"}} {
		if f.set && !o.top.Watch {
			fmt.Fprintf(os.Stderr, "%s top: %s needs --watch (without it top prints once)\n", programName, f.name)
			return 2
		}
	}
	var err error
	if o.top.Filter, err = top.ParseSocketFilter(o.topProcess, o.topAddress, o.topPort, o.topPool); err != nil {
		fmt.Fprintf(os.Stderr, "%s top: %v\n", programName, err)
		return 2
	}
	switch {
	case o.topExporter:
		if o.top.Exporter, err = top.NewExporterClient(o.topExporterURL, o.topHTTPConfig); err != nil {
			fmt.Fprintf(os.Stderr, "%s top: %v\n", programName, err)
			return 2
		}
	case o.topExporterURLSet || o.topHTTPConfig != "":
		fmt.Fprintf(os.Stderr, "%s top: --exporter.url and --exporter.http-config.file need the exporter (--no-exporter reads the kernel and ignores them)\n", programName)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.top.Terminal = top.IsTerminal(os.Stdout)
	if err := top.Run(ctx, exporter, cfg.current, o.top, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "%s top: %v\n", programName, err)
		if errors.Is(err, top.ErrIncomplete) {
			return topIncomplete
		}
		return 1
	}
	return 0
}

// topIncomplete is top's exit status when it printed numbers that miss
// something, apart from 1 (it could not run) and 2 (usage).
const topIncomplete = 3
