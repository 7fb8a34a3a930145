package main

import (
	"errors"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
)

// configHolder keeps the current pool configuration, swaps in a new one
// only when it is valid, and reports reloads as metrics.
type configHolder struct {
	path   string
	logger log.Logger

	mu          sync.Mutex
	cfg         *config.Config
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
	cfg := &config.Config{}
	if h.path != "" {
		var err error
		if cfg, err = config.LoadConfig(h.path); err != nil {
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

// errNoConfigFile is a reload's answer when the exporter runs without a
// config file: there is nothing to read again, and saying "reloaded" would
// let a person believe a file they just edited is in use.
var errNoConfigFile = errors.New("no --config.file was given: nothing to reload (the exporter runs without pools; restart it with --config.file to declare some)")

// reload loads the config again, keeping the old one if the new one is bad.
func (h *configHolder) reload(trigger string) error {
	if h.path == "" {
		level.Warn(h.logger).Log("msg", "reload asked for, but there is no config file", "trigger", trigger, "err", errNoConfigFile)
		return errNoConfigFile
	}
	if err := h.load(); err != nil {
		level.Error(h.logger).Log("msg", "config rejected; keeping the previous one", "trigger", trigger, "err", err)
		return err
	}
	level.Info(h.logger).Log("msg", "config reloaded", "trigger", trigger, "file", h.path)
	return nil
}

func (h *configHolder) current() *config.Config {
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
