package collector

import (
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"

	"github.com/prometheus/client_golang/prometheus"
)

// closeWaitAge summarises the ages of a group of CLOSE_WAIT sockets (a
// route, a pool), from the ages the tracker handed each socket as it
// streamed: what the *_close_wait_oldest_seconds and *_stuck families
// report.
type closeWaitAge struct {
	count  float64 // CLOSE_WAIT sockets in the group, with an age or not
	oldest float64 // seconds; the oldest socket's age
	stuck  float64 // sockets older than the stuck-after threshold
	known  bool    // whether any socket of the group has an age
}

func (a *closeWaitAge) add(in *snapshot.SockInfo, stuckAfter time.Duration) {
	a.count++
	if in.AgeSource == snapshot.AgeNone {
		return
	}
	a.known = true
	a.oldest = max(a.oldest, in.Age.Seconds())
	if in.Age > stuckAfter {
		a.stuck++
	}
}

func (a *closeWaitAge) merge(b *closeWaitAge) {
	a.count += b.count
	a.stuck += b.stuck
	if b.known {
		a.known = true
		a.oldest = max(a.oldest, b.oldest)
	}
}

// emitBoundedAges sends the oldest age and the stuck count of each group,
// keeping the maxSeries groups with the most CLOSE_WAIT sockets and folding
// the rest into one group whose labels read "other". Groups with no age
// are left out. It returns how many groups were folded.
func emitBoundedAges[K comparable](ch chan<- prometheus.Metric, oldest, stuck *prometheus.Desc, ages map[K]*closeWaitAge, maxSeries int, labels func(K) []string) int {
	return emitFolded(ages, maxSeries, labels,
		func(a *closeWaitAge) float64 { return a.count },
		(*closeWaitAge).merge,
		func(labels []string, a *closeWaitAge) {
			if !a.known {
				return
			}
			ch <- prometheus.MustNewConstMetric(oldest, prometheus.GaugeValue, a.oldest, labels...)
			ch <- prometheus.MustNewConstMetric(stuck, prometheus.GaugeValue, a.stuck, labels...)
		})
}
