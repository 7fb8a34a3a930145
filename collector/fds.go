package collector

import (
	"math"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"

	"github.com/prometheus/client_golang/prometheus"
)

// fdDescs are the per-process file descriptor families: a process that
// runs out of them fails accept(), connect() and open() with EMFILE, the
// other end of a CLOSE_WAIT leak in a client with no pool bound.
type fdDescs struct {
	open, max *prometheus.Desc
}

func newFDDescs() fdDescs {
	return fdDescs{
		open: prometheus.NewDesc(namespace+"_process_open_fds",
			"Open file descriptors of the process of this name in this network namespace that is nearest its limit (highest open/limit ratio, then most fds), among the processes holding TCP sockets; never a sum over pids, as the limit is per pid.", []string{"process", "netns"}, nil),
		max: prometheus.NewDesc(namespace+"_process_max_fds",
			"Soft limit on open file descriptors (RLIMIT_NOFILE, \"Max open files\" in /proc/PID/limits) of the same pid as tcpstate_process_open_fds: EMFILE (\"Too many open files\") when the open fds reach it.", []string{"process", "netns"}, nil),
	}
}

// fdRatio ranks a process by how near its limit it is.
func fdRatio(u *snapshot.ProcessFDs) float64 {
	if u.Max <= 0 || u.Max == owners.Unlimited {
		return 0
	}
	return float64(u.Open) / float64(u.Max)
}

// nearer tells whether a is nearer its limit than b: a higher ratio, then
// more fds.
func nearer(a, b *snapshot.ProcessFDs) bool {
	ra, rb := fdRatio(a), fdRatio(b)
	if ra != rb {
		return ra > rb
	}
	return a.Open > b.Open
}

// emit sends, for each process name and namespace, the open fds and
// the limit of its pid nearest the limit. The maxSeries processes nearest
// theirs keep their series; the rest fold into one "other" series holding
// the nearest of them (not a sum: a sum of fds against a sum of limits
// would hide the one about to fail). A process one of whose pids has a
// malformed limits file has no series. It returns how many were folded.
func (d fdDescs) emit(s *snapshot.Snapshot, ch chan<- prometheus.Metric, maxSeries int) int {
	worst := map[snapshot.ProcessKey]*snapshot.ProcessFDs{}
	unknown := map[snapshot.ProcessKey]bool{}
	for i := range s.FDs {
		u := &s.FDs[i]
		if u.Malformed {
			// Its pid might be the nearest: no series rather than a
			// wrong one (the error names the file).
			unknown[u.ProcessKey] = true
			continue
		}
		if w := worst[u.ProcessKey]; w == nil || nearer(u, w) {
			worst[u.ProcessKey] = u
		}
	}
	for k := range unknown {
		delete(worst, k)
	}
	return emitFolded(worst, maxSeries,
		func(k snapshot.ProcessKey) []string {
			return []string{s.OwnerNames[k.Process], s.NetnsName(k.NetNS)}
		},
		fdRatio,
		func(dst, src *snapshot.ProcessFDs) {
			if dst.Max == 0 || nearer(src, dst) {
				*dst = *src
			}
		},
		func(labels []string, u *snapshot.ProcessFDs) {
			ch <- prometheus.MustNewConstMetric(d.open, prometheus.GaugeValue, float64(u.Open), labels...)
			max := float64(u.Max)
			if u.Max == owners.Unlimited {
				max = math.Inf(1)
			}
			ch <- prometheus.MustNewConstMetric(d.max, prometheus.GaugeValue, max, labels...)
		})
}
