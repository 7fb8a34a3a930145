package collector

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// poolsCollector reports, for each pool declared in the config file, the
// outbound sockets that match it by state and its configured maximum.
type poolsCollector struct {
	connections, max, info *prometheus.Desc
	config                 func() *Config
}

func newPoolsCollector(o Options) familyCollector {
	return &poolsCollector{
		connections: prometheus.NewDesc(namespace+"_pool_connections",
			"Outbound TCP sockets matching a pool declared in the config file, by state.", []string{"pool", "state"}, nil),
		max: prometheus.NewDesc(namespace+"_pool_max_connections",
			"The maximum number of connections configured for a pool.", []string{"pool"}, nil),
		info: prometheus.NewDesc(namespace+"_pool_info",
			"A pool's matchers as declared in the config file (\"any\" where not set); always 1.", []string{"pool", "process", "remote_address", "remote_port"}, nil),
		config: o.Config,
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
	for i := range s.Sockets {
		sk := &s.Sockets[i]
		if s.Direction[i] != Outbound || !sk.State.Valid() {
			continue
		}
		owner, known := s.OwnerName(i)
		for p, pool := range cfg.Pools {
			if pool.Matches(sk.Remote, owner, known) {
				counts[p][sk.State]++
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
	}
	return s.TableErr
}

func orAny(s string) string {
	if s == "" {
		return "any"
	}
	return s
}
