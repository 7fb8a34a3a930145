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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector"
	"github.com/tcpstate-exporter/tcpstate_exporter/top"
)

// serve serves the metrics until SIGTERM or an interrupt; SIGHUP reloads
// the config file.
func serve(o *options, exporter *collector.Exporter, cfg *configHolder, logger log.Logger, slogger *slog.Logger) int {
	// exporter-toolkit reads the file only once it listens, and its errors
	// name neither the file nor the flag.
	if path := *o.webFlags.WebConfigFile; path != "" {
		if err := web.Validate(path); err != nil {
			level.Error(logger).Log("msg", "bad --web.config.file; not starting", "err", fmt.Errorf("--web.config.file=%q: %w", path, err))
			return 1
		}
	}
	level.Info(logger).Log("msg", "enabled collectors", "collectors", strings.Join(o.selection.Enabled(), ","))
	if o.sampleEvery > 0 && o.maxTracked > 0 {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		go exporter.SampleCloseWait(ctx, o.sampleEvery)
	}

	self := prometheus.NewRegistry()
	self.MustRegister(
		versioncollector.NewCollector(programName),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		cfg,
	)

	if o.metricsPath == top.ReadingPath {
		level.Error(logger).Log("msg", "--web.telemetry-path="+o.metricsPath+" is where the exporter serves top's reading; choose another path")
		return 2
	}
	mux := http.NewServeMux()
	mux.Handle(o.metricsPath, metricsHandler(exporter, self, o.maxRequests, logger))
	mux.Handle("/-/reload", reloadHandler(cfg, o.lifecycle))
	// What `top` renders, behind the same web config (TLS, basic auth) as
	// the metrics: the server's handler checks both.
	mux.Handle(top.ReadingPath, top.Handler(exporter, cfg.current, o.maxRequests))
	if o.pprof {
		servePprof(mux)
	}
	// --web.telemetry-path is never "/" (checkTelemetryPath).
	landing, err := landingPage(o.metricsPath, o.pprof)
	if err != nil {
		level.Error(logger).Log("msg", "cannot build the landing page", "err", err)
		return 1
	}
	mux.Handle("/", landing)

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

	if err := web.ListenAndServe(server, o.webFlags, slogger); err != nil && !errors.Is(err, http.ErrServerClosed) {
		level.Error(logger).Log("msg", "cannot serve", "err", err)
		return 1
	}
	return 0
}

// reloadHandler serves /-/reload: with --web.enable-lifecycle it reloads
// the config file on POST or PUT.
func reloadHandler(cfg *configHolder, enabled bool) http.Handler {
	if !enabled {
		// Say why rather than a bare 404: the endpoint exists but is off.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "/-/reload is off: start the exporter with --web.enable-lifecycle to reload --config.file over HTTP (SIGHUP reloads it in any case)", http.StatusNotFound)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			http.Error(w, "use POST or PUT to reload", http.StatusMethodNotAllowed)
			return
		}
		if err := cfg.reload("POST /-/reload"); err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, errNoConfigFile) {
				status = http.StatusBadRequest // nothing failed; there is nothing to do
			}
			http.Error(w, err.Error(), status)
			return
		}
		fmt.Fprintln(w, "config reloaded")
	})
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
