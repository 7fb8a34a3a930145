package collector

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// poolsCollector reports, for each pool declared in the config file, the
// outbound sockets that match it by state and its configured maximum.
type poolsCollector struct {
	connections, max, info, oldest, stuck *prometheus.Desc
	config                                func() *Config
	stuckAfter                            time.Duration
}

func newPoolsCollector(o Options) familyCollector {
	return &poolsCollector{
		connections: prometheus.NewDesc(namespace+"_pool_connections",
			"Outbound TCP sockets matching a pool declared in the config file, by state.", []string{"pool", "state"}, nil),
		max: prometheus.NewDesc(namespace+"_pool_max_connections",
			"The maximum number of connections configured for a pool.", []string{"pool"}, nil),
		info: prometheus.NewDesc(namespace+"_pool_info",
			"A pool's matchers as declared in the config file (\"any\" where not set); always 1.", []string{"pool", "process", "remote_address", "remote_port"}, nil),
		oldest: prometheus.NewDesc(namespace+"_pool_close_wait_oldest_seconds",
			"Age of a pool's oldest CLOSE_WAIT socket: the larger of the kernel's time since the socket last received an ACK (netlink source) and the time since this exporter first saw it in CLOSE_WAIT (procfs source, other network namespaces).", []string{"pool"}, nil),
		stuck: prometheus.NewDesc(namespace+"_pool_close_wait_stuck",
			"A pool's CLOSE_WAIT sockets that have been in CLOSE_WAIT for longer than --collector.close-wait.stuck-after, by the age of tcpstate_pool_close_wait_oldest_seconds.", []string{"pool"}, nil),
		config:     o.Config,
		stuckAfter: o.StuckAfter,
	}
}

func (c *poolsCollector) Update(s *Snapshot, ch chan<- prometheus.Metric) error {
	cfg := c.config()
	if cfg == nil || len(cfg.Pools) == 0 {
		return nil
	}
	if cfg.NeedsOwners() && s.OwnersErr != nil {
		return s.OwnersErr
	}
	counts := make([][numStates]float64, len(cfg.Pools))
	ages := make([]closeWaitAge, len(cfg.Pools))
	now := s.Taken.UnixNano()
	for i := range s.Sockets {
		sk := &s.Sockets[i]
		if s.Direction[i] != Outbound || !sk.State.Valid() {
			continue
		}
		owner, known := s.OwnerName(i)
		for p, pool := range cfg.Pools {
			if pool.Matches(sk.Remote, owner, known) {
				counts[p][sk.State]++
				if sk.State == StateCloseWait && s.CloseWaitSince != nil {
					ages[p].add(s.CloseWaitSince[i], now, c.stuckAfter)
				}
			}
		}
	}
	for p, pool := range cfg.Pools {
		for _, st := range allStates {
			ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, counts[p][st], pool.Name, stateNames[st])
		}
		ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(pool.Max), pool.Name)
		port := "any"
		if pool.RemotePort != 0 {
			port = strconv.Itoa(int(pool.RemotePort))
		}
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, pool.Name, orAny(pool.processText), orAny(pool.addressText), port)
		if s.CloseWaitSince != nil {
			// A pool with no CLOSE_WAIT socket has nothing stuck: 0, not absent,
			// so that rules compare.
			ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, ages[p].oldest, pool.Name)
			ch <- prometheus.MustNewConstMetric(c.stuck, prometheus.GaugeValue, ages[p].stuck, pool.Name)
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
