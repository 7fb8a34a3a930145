// Package collector is the last stage of a scrape: the metric families, each
// a view of one reading (a snapshot.View, switched by --collector.NAME), and
// the Exporter that takes readings and serves them to Prometheus. The data
// flows tables (the sockets) and owners (their processes) → snapshot (one
// reading, each socket counted by every view's tally) → these views → HTTP.
package collector

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "tcpstate"

// defaultReadTimeout bounds a reading of the tables when the scrape did not
// say how long it may take.
const defaultReadTimeout = 30 * time.Second

var truncatedDesc = prometheus.NewDesc(namespace+"_series_truncated",
	"Series folded into the \"other\" series of a family because it would have held more than --collector.max-series series.", []string{"metric"}, nil)

// Options configures the collectors. Nothing in this package reads a global.
type Options struct {
	// ProcRoot is the procfs mount point (--path.procfs).
	ProcRoot string
	// MaxSeries bounds each per-port, per-process and per-route family.
	MaxSeries int
	// RouteStates are the states tcpstate_process_remote_connections reports.
	RouteStates []tables.State
	// Config returns the current pool configuration; nil means no pools.
	Config func() *config.Config
	// Workers bounds the parallel walk of /proc/PID/fd.
	Workers int
	// Tables overrides the table source; nil reads procfs under ProcRoot.
	Tables tables.TableSource
	// CloseWait, when set, tracks how long sockets stay in CLOSE_WAIT and
	// remembers the routes of sockets that may end held; it serves one
	// Exporter, whose readings never overlap. StuckAfter is the age from
	// which one counts as stuck.
	CloseWait  *snapshot.CloseWaitTracker
	StuckAfter time.Duration
	Logger     log.Logger
}

type collectorEntry struct {
	name      string
	defaultOn bool
	help      string
	// needsOwners tells whether the family needs the /proc/PID/fd walk.
	needsOwners func(Options) bool
	factory     func(Options) snapshot.View
}

func always(Options) bool { return true }
func never(Options) bool  { return false }

// registry lists every collector. Its order is the order of the output.
var registry = []collectorEntry{
	{"connections", true, "TCP sockets by family and state (tcpstate_connections).", never, newConnectionsCollector},
	{"queues", true, "Receive and transmit queue bytes by state.", never, newQueuesCollector},
	{"ports", true, "Sockets by remote port (outbound) and local port (inbound, listening).", never, newPortsCollector},
	{"ephemeral", true, "Local ports of the ephemeral range held toward each destination, and the ports usable (reads sys/net/ipv4 under --path.procfs).", never, newEphemeralCollector},
	{"acceptqueue", true, "Connections waiting for accept(), the accept queue limit and the listeners' drops, by listening port.", never, newAcceptQueueCollector},
	{"process", true, "Sockets by process and by process and remote endpoint, and unresolved sockets; walks /proc/PID/fd.", always, newProcessCollector},
	{"hostlimits", true, "The host's TCP memory and orphans against net.ipv4.tcp_mem and tcp_max_orphans (reads net/sockstat and sys/net/ipv4 under --path.procfs), and orphans by remote endpoint.", never, newHostLimitsCollector},
	// Off by default: asking the dump for SK_MEMINFO makes it carry 40 more
	// bytes per socket and take about 40 % longer (docs/performance.md).
	{"memory", false, "TCP socket memory by process and by remote endpoint (asks the netlink dump for each socket's SK_MEMINFO: about 40 % more time reading the tables; off by default).", always, newMemoryCollector},
	{"pools", true, "Sockets of the pools declared in --config.file.", func(o Options) bool {
		cfg := o.Config()
		return cfg != nil && cfg.NeedsOwners()
	}, newPoolsCollector},
}

// Selection holds the --collector.NAME switches.
type Selection struct {
	enabled         map[string]*bool
	setByUser       map[string]*bool
	disableDefaults *bool
}

// AddFlags adds --collector.NAME / --no-collector.NAME switches for every
// collector and --collector.disable-defaults.
func AddFlags(app *kingpin.Application) *Selection {
	s := &Selection{enabled: map[string]*bool{}, setByUser: map[string]*bool{}}
	for _, c := range registry {
		def := "false"
		if c.defaultOn {
			def = "true"
		}
		set := new(bool)
		s.enabled[c.name] = app.Flag("collector."+c.name,
			fmt.Sprintf("Enable the %s collector: %s", c.name, c.help)).Default(def).IsSetByUser(set).Bool()
		s.setByUser[c.name] = set
	}
	s.disableDefaults = app.Flag("collector.disable-defaults",
		"Disable every collector not enabled explicitly with --collector.NAME.").Default("false").Bool()
	return s
}

// Enabled returns the names of the enabled collectors.
func (s *Selection) Enabled() []string {
	var out []string
	for _, c := range registry {
		on := *s.enabled[c.name]
		if *s.disableDefaults && !*s.setByUser[c.name] {
			on = false
		}
		if on {
			out = append(out, c.name)
		}
	}
	return out
}

// Names returns every collector name.
func Names() []string {
	out := make([]string, len(registry))
	for i, c := range registry {
		out[i] = c.name
	}
	return out
}

type enabledCollector struct {
	entry     collectorEntry
	collector snapshot.View
}

// Exporter reads one snapshot per scrape, shared by concurrent scrapes, and
// runs the enabled collectors over it.
type Exporter struct {
	opts       Options
	collectors []*enabledCollector
	views      []snapshot.View // the collectors', in order
	reader     snapshot.Reader
	logger     log.Logger

	mu       sync.Mutex // guards inflight and the logging state below
	inflight *flight
	// Logging state: each condition is logged when it starts and when it
	// ends, not on every scrape.
	tablesFailing, ownersFailing, deniedWarned bool
	cgroupsMalformed, limitsMalformed          bool

	readings atomic.Uint64
	// capabilities reads the effective capability set (a test may fake it).
	capabilities func() (uint64, error)

	duration, success, stage, readingsDesc, trackedDesc *prometheus.Desc
	ageSourceDesc, stuckAfterDesc                       *prometheus.Desc
	capWarned                                           bool
}

type flight struct {
	done chan struct{}
	snap *snapshot.Snapshot
	// joined counts the scrapes waiting on the reading besides its leader
	// (guarded by Exporter.mu).
	joined int
	// What the reading builds beyond the views: a request that needs more
	// (top's pids and sockets) waits for it and takes its own.
	owners, closeWait, routePids bool
}

// covers tells whether the flight's reading has what req asks for.
func (f *flight) covers(req snapshot.Request, needsOwners bool) bool {
	return (f.owners || !(req.WithOwners || needsOwners)) && (f.closeWait || !req.CloseWait) && (f.routePids || req.RoutePids == nil)
}

// NewExporter builds the named collectors.
func NewExporter(o Options, enabled []string) (*Exporter, error) {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Config == nil {
		o.Config = func() *config.Config { return nil }
	}
	if o.MaxSeries < 1 {
		return nil, fmt.Errorf("--collector.max-series must be at least 1, got %d", o.MaxSeries)
	}
	if o.Workers < 1 {
		o.Workers = 1
	}
	if o.Tables == nil {
		o.Tables = tables.NewProcfsTables(o.ProcRoot)
	}
	e := &Exporter{
		opts:         o,
		logger:       o.Logger,
		capabilities: owners.EffectiveCapabilities,
		reader:       snapshot.Reader{ProcRoot: o.ProcRoot, Tables: o.Tables, Owners: &owners.SocketOwners{Root: o.ProcRoot, Workers: o.Workers}, Tracker: o.CloseWait, NeedDumpAges: true, Config: o.Config},
		duration: prometheus.NewDesc(namespace+"_scrape_collector_duration_seconds",
			"Time a collector took to send its families from the reading's counts (the counting happens as the tables stream, in tcpstate_snapshot_duration_seconds{stage=\"tables\"}).", []string{"collector"}, nil),
		success: prometheus.NewDesc(namespace+"_scrape_collector_success",
			"Whether a collector's families are complete (1) or not (0) in this scrape.", []string{"collector"}, nil),
		stage: prometheus.NewDesc(namespace+"_snapshot_duration_seconds",
			"Time spent building this scrape's snapshot, by stage: tables (streaming the TCP tables through the families: reading, classifying, counting), owners (walking /proc/PID/fd for socket owners, before the tables and after).", []string{"stage"}, nil),
		readingsDesc: prometheus.NewDesc(namespace+"_snapshot_readings_total",
			"Snapshots read since start; concurrent scrapes share one.", nil, nil),
		trackedDesc: prometheus.NewDesc(namespace+"_close_wait_tracked_sockets",
			"CLOSE_WAIT sockets whose first sighting the exporter remembers to report their age (in records bounded by --collector.close-wait.max-tracked, 63 to 75 bytes each, shared with remembered routes).", nil, nil),
		ageSourceDesc: prometheus.NewDesc(namespace+"_close_wait_age_sockets",
			"CLOSE_WAIT sockets by the clock their age comes from: kernel (time since the socket last received an ACK, read through netlink: right from the first scrape), first_seen (since this exporter first saw it: procfs source, other network namespaces, or a kernel clock restarted by a keepalive probe), none (no age).", []string{"source"}, nil),
		stuckAfterDesc: prometheus.NewDesc(namespace+"_close_wait_stuck_after_seconds",
			"Age from which a CLOSE_WAIT socket counts as stuck in the tcpstate_*_close_wait_stuck_sockets families (--collector.close-wait.stuck-after), for dashboards' thresholds.", nil, nil),
	}
	want := map[string]bool{}
	for _, n := range enabled {
		want[n] = true
	}
	for _, c := range registry {
		if want[c.name] {
			e.collectors = append(e.collectors, &enabledCollector{entry: c, collector: c.factory(o)})
			e.views = append(e.views, e.collectors[len(e.collectors)-1].collector)
			delete(want, c.name)
		}
	}
	// Only the memory view needs each socket's memory: the dump carries it
	// (40 bytes more per socket) only when it is on. The accept queue
	// view needs the listeners' drops: a dump of the listeners alone.
	tables.SetMemInfo(o.Tables, e.enabled("memory"), e.enabled("memory") || e.enabled("acceptqueue"))
	if len(want) > 0 {
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown collectors %v (known: %v)", unknown, Names())
	}
	return e, nil
}

// enabled tells whether the named collector is built.
func (e *Exporter) enabled(name string) bool {
	for _, c := range e.collectors {
		if c.entry.name == name {
			return true
		}
	}
	return false
}

// Readings returns how many snapshots have been read.
func (e *Exporter) Readings() uint64 { return e.readings.Load() }

// Describe sends nothing: the families depend on the config and the host,
// so the exporter is an unchecked collector.
func (e *Exporter) Describe(chan<- *prometheus.Desc) {}

// Collect runs a scrape without a deadline of its own.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	e.CollectContext(context.Background(), ch)
}

// Bind returns a prometheus.Collector whose scrapes respect ctx.
func (e *Exporter) Bind(ctx context.Context) prometheus.Collector {
	return boundExporter{e, ctx}
}

type boundExporter struct {
	e   *Exporter
	ctx context.Context
}

func (b boundExporter) Describe(chan<- *prometheus.Desc)    {}
func (b boundExporter) Collect(ch chan<- prometheus.Metric) { b.e.CollectContext(b.ctx, ch) }

// CollectContext reads (or joins a reading of) a snapshot and emits every
// enabled collector's families and its duration and success.
func (e *Exporter) CollectContext(ctx context.Context, ch chan<- prometheus.Metric) {
	e.emit(e.snapshot(ctx, false, false), ch)
}

// emit sends a snapshot's families and every collector's duration and
// success.
func (e *Exporter) emit(s *snapshot.Snapshot, ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(e.stage, prometheus.GaugeValue, s.TablesDuration.Seconds(), "tables")
	ch <- prometheus.MustNewConstMetric(e.stage, prometheus.GaugeValue, s.OwnersDuration.Seconds(), "owners")
	ch <- prometheus.MustNewConstMetric(e.readingsDesc, prometheus.CounterValue, float64(e.readings.Load()))
	if t := e.opts.CloseWait; t != nil {
		tracked, _ := t.Tracked()
		ch <- prometheus.MustNewConstMetric(e.trackedDesc, prometheus.GaugeValue, float64(tracked))
		for src, n := range t.Sources() {
			ch <- prometheus.MustNewConstMetric(e.ageSourceDesc, prometheus.GaugeValue, float64(n), snapshot.AgeSource(src).String())
		}
		ch <- prometheus.MustNewConstMetric(e.stuckAfterDesc, prometheus.GaugeValue, e.opts.StuckAfter.Seconds())
	}
	for i, c := range e.collectors {
		start := time.Now()
		err := s.Tallies[i].Emit(s, ch)
		ch <- prometheus.MustNewConstMetric(e.duration, prometheus.GaugeValue, time.Since(start).Seconds(), c.entry.name)
		ok := 1.0
		if err != nil {
			ok = 0
		}
		ch <- prometheus.MustNewConstMetric(e.success, prometheus.GaugeValue, ok, c.entry.name)
	}
}

func (e *Exporter) needsOwners() bool {
	for _, c := range e.collectors {
		if c.entry.needsOwners(e.opts) {
			return true
		}
	}
	return false
}

// snapshot returns a fresh snapshot. A scrape that arrives while another
// is reading waits for that reading and shares it. withOwners walks
// /proc/PID/fd even when no enabled collector needs it, and listCloseWait
// lists the CLOSE_WAIT sockets (a reading already under way is shared
// only when it has them).
func (e *Exporter) snapshot(ctx context.Context, withOwners, listCloseWait bool) *snapshot.Snapshot {
	return e.read(ctx, snapshot.Request{WithOwners: withOwners, CloseWait: listCloseWait})
}

// read takes a snapshot with what req asks beyond the enabled views (which
// it sets), or shares a reading under way that has what req asks.
func (e *Exporter) read(ctx context.Context, req snapshot.Request) *snapshot.Snapshot {
	needsOwners := e.needsOwners()
	e.mu.Lock()
	for e.inflight != nil {
		f := e.inflight
		f.joined++
		e.mu.Unlock()
		<-f.done
		if f.covers(req, needsOwners) {
			return f.snap
		}
		e.mu.Lock()
	}
	f := &flight{done: make(chan struct{}), owners: req.WithOwners || needsOwners, closeWait: req.CloseWait, routePids: req.RoutePids != nil}
	e.inflight = f
	e.mu.Unlock()

	// The reading serves every scrape waiting on it, so one scrape giving up
	// must not cancel it; it keeps the leader's deadline.
	timeout := defaultReadTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	req.Views, req.WithOwners = e.views, req.WithOwners || needsOwners
	f.snap = e.reader.Read(rctx, req)
	cancel()
	e.readings.Add(1)
	e.noteSnapshot(f.snap)

	e.mu.Lock()
	e.inflight = nil
	e.mu.Unlock()
	close(f.done)
	return f.snap
}

// joinedReading tells how many scrapes wait on the reading under way
// besides its leader (0 when none is under way).
func (e *Exporter) joinedReading() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.inflight == nil {
		return 0
	}
	return e.inflight.joined
}

// SampleCloseWait reads the tables between scrapes so that CLOSE_WAIT ages
// are finer than the scrape interval. It shares readings with scrapes like
// any scrape does, and runs until ctx ends.
func (e *Exporter) SampleCloseWait(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			e.snapshot(ctx, false, false)
		}
	}
}

// logTransition logs when a condition starts (err non-nil, with err) or
// ends, once each time it changes; *state holds whether it is on.
func logTransition(state *bool, err error, onLog log.Logger, onMsg string, offLog log.Logger, offMsg string) {
	on := err != nil
	if on == *state {
		return
	}
	*state = on
	if on {
		onLog.Log("msg", onMsg, "err", err)
	} else {
		offLog.Log("msg", offMsg)
	}
}

// noteSnapshot logs the snapshot's problems once per condition.
func (e *Exporter) noteSnapshot(s *snapshot.Snapshot) {
	e.mu.Lock()
	defer e.mu.Unlock()
	logTransition(&e.tablesFailing, s.TableErr, level.Error(e.logger),
		"TCP tables could not be read completely; families from them report success 0 until they can",
		level.Info(e.logger), "TCP tables read completely again")
	logTransition(&e.ownersFailing, s.OwnersErr, level.Error(e.logger),
		"cannot map sockets to processes",
		level.Info(e.logger), "mapping sockets to processes works again")
	logTransition(&e.cgroupsMalformed, s.CgroupErr, level.Warn(e.logger),
		"malformed lines in processes' cgroup files skipped; tcpstate_netns_info may lack a namespace's container or pod",
		level.Info(e.logger), "processes' cgroup files read cleanly again")
	logTransition(&e.limitsMalformed, s.FDsErr, level.Warn(e.logger),
		"malformed /proc/PID/limits: that process has no tcpstate_process_open_fds or tcpstate_process_max_fds series, and the process collector reports success 0",
		level.Info(e.logger), "processes' limits files read cleanly again")
	if t := e.opts.CloseWait; t != nil && !e.capWarned {
		if _, untracked := t.Tracked(); untracked > 0 {
			e.capWarned = true
			level.Warn(e.logger).Log("msg", "more CLOSE_WAIT sockets than --collector.close-wait.max-tracked; the rest have no age and never count as stuck. This is logged once.", "untracked", untracked)
		}
	}
	if s.DeniedProcesses > 0 && !e.deniedWarned {
		e.deniedWarned = true
		eff, err := e.capabilities()
		var missing []string
		if err == nil {
			missing = owners.MissingFdCapabilities(eff)
		}
		level.Warn(e.logger).Log("msg", owners.DeniedMessage(s.DeniedPIDs, s.DeniedErr, missing, err == nil),
			"processes_denied", s.DeniedProcesses, "capabilities_missing", strings.Join(missing, ","))
	}
}
