package collector

import (
	"strconv"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
)

// poolsCollector reports, for each pool declared in the config file, the
// outbound sockets that match it by state and its configured maximum.
type poolsCollector struct {
	connections, max, info, oldest, stuck *prometheus.Desc
	config                                func() *config.Config
	stuckAfter                            time.Duration
	trackAges                             bool
}

func newPoolsCollector(o Options) snapshot.View {
	return &poolsCollector{
		connections: prometheus.NewDesc(namespace+"_pool_connections",
			"Outbound TCP sockets matching a pool declared in the config file, by state; state close counts sockets the kernel dropped (reset) that a process still holds, whose route the exporter saw before.", []string{"pool", "state"}, nil),
		max: prometheus.NewDesc(namespace+"_pool_max_connections",
			"The maximum number of connections configured for a pool.", []string{"pool"}, nil),
		info: prometheus.NewDesc(namespace+"_pool_info",
			"A pool's matchers as declared in the config file (\"any\" where not set); always 1.", []string{"pool", "process", "remote_address", "remote_port"}, nil),
		oldest: prometheus.NewDesc(namespace+"_pool_close_wait_oldest_seconds",
			"Age of a pool's oldest dead-but-held socket (CLOSE_WAIT, or CLOSE after the kernel dropped it, aged from CLOSE_WAIT): the larger of the kernel's time since the socket last received an ACK (netlink source) and the time since this exporter first saw it in CLOSE_WAIT (procfs source, other network namespaces).", []string{"pool"}, nil),
		stuck: prometheus.NewDesc(namespace+"_pool_close_wait_stuck_sockets",
			"A pool's dead-but-held sockets (CLOSE_WAIT and CLOSE) that have been dead for longer than --collector.close-wait.stuck-after, by the age of tcpstate_pool_close_wait_oldest_seconds.", []string{"pool"}, nil),
		config:     o.Config,
		stuckAfter: o.StuckAfter,
		trackAges:  o.CloseWait != nil,
	}
}

func (c *poolsCollector) NewTally(s *snapshot.Snapshot) snapshot.Tally {
	t := &poolsTally{c: c, cfg: c.config(), snap: s}
	if t.cfg != nil {
		t.counts = make([][tables.NumStates]float64, len(t.cfg.Pools))
		t.ages = make([]closeWaitAge, len(t.cfg.Pools))
		t.processMatch = make([][]int8, len(t.cfg.Pools))
	}
	return t
}

// poolsTally counts with the configuration of when the reading began: a
// reload during a reading applies from the next one.
type poolsTally struct {
	c      *poolsCollector
	cfg    *config.Config
	counts [][tables.NumStates]float64
	ages   []closeWaitAge
	// snap names the owners; processMatch remembers, per pool and owner,
	// whether the pool's process regexp matches the owner's name (0: not
	// asked yet, 1: yes, -1: no), so that a regexp runs once per process
	// name, not once per socket.
	snap         *snapshot.Snapshot
	processMatch [][]int8
}

func (t *poolsTally) Add(sk *tables.Socket, in *snapshot.SockInfo) {
	if t.cfg == nil || in.Dir != snapshot.Outbound || !sk.State.Valid() {
		return
	}
	for p, pool := range t.cfg.Pools {
		if pool.MatchesRemote(sk.Remote) && (pool.Process == nil || t.processMatches(p, in.Owner)) {
			t.counts[p][sk.State]++
			if sk.State == tables.StateCloseWait || in.Held {
				t.ages[p].add(in, t.c.stuckAfter)
			}
		}
	}
}

// processMatches tells whether pool p's process regexp matches the owner.
func (t *poolsTally) processMatches(p int, owner int32) bool {
	if owner == owners.NoOwner {
		return false // a pool with a process matcher never counts unknown owners
	}
	m := t.processMatch[p]
	for int(owner) >= len(m) {
		m = append(m, 0)
	}
	t.processMatch[p] = m
	if m[owner] == 0 {
		m[owner] = -1
		if t.cfg.Pools[p].Process.MatchString(t.snap.OwnerNames[owner]) {
			m[owner] = 1
		}
	}
	return m[owner] == 1
}

func (t *poolsTally) Emit(s *snapshot.Snapshot, ch chan<- prometheus.Metric) error {
	cfg, c := t.cfg, t.c
	if cfg == nil || len(cfg.Pools) == 0 {
		return nil
	}
	if cfg.NeedsOwners() && s.OwnersErr != nil {
		return s.OwnersErr
	}
	for p, pool := range cfg.Pools {
		for _, st := range tables.AllStates {
			ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, t.counts[p][st], pool.Name, tables.StateNames[st])
		}
		ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(pool.Max), pool.Name)
		port := "any"
		if pool.RemotePort != 0 {
			port = strconv.Itoa(int(pool.RemotePort))
		}
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, pool.Name, orAny(pool.ProcessText), orAny(pool.AddressText), port)
		if c.trackAges {
			// A pool with no CLOSE_WAIT socket has nothing stuck: 0, not absent,
			// so that rules compare.
			ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, t.ages[p].oldest, pool.Name)
			ch <- prometheus.MustNewConstMetric(c.stuck, prometheus.GaugeValue, t.ages[p].stuck, pool.Name)
		}
	}
	return s.TableErr
}

func orAny(s string) string {
	if s == "" {
		return "any"
	}
	return s
}
