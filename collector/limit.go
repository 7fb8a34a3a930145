package collector

import (
	"cmp"
	"slices"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
)

// otherLabel is the value the varying labels of a folded series read.
const otherLabel = "other"

// boundedFamily counts sockets per entity (a port, a process, a route) and
// state, and emits at most maxSeries series: entities are ranked by their
// total count, largest first, and those that do not fit are summed, per
// state, into one series whose entity labels read "other".
//
// A family with everyState set emits all eleven states of every entity it
// keeps, zeros included, and keeps at most maxSeries entities (each of
// eleven series) rather than maxSeries series: that is
// tcpstate_netns_connections, whose entities are the host's network
// namespaces, as few as its pods.
type boundedFamily[K comparable] struct {
	counts     map[K]*[tables.NumStates]float64
	everyState bool
}

func newBoundedFamily[K comparable]() *boundedFamily[K] {
	return &boundedFamily[K]{counts: map[K]*[tables.NumStates]float64{}}
}

func (f *boundedFamily[K]) add(key K, s tables.State) {
	c := f.counts[key]
	if c == nil {
		c = new([tables.NumStates]float64)
		f.counts[key] = c
	}
	c[s]++
}

// addCounts adds a whole entity's counts; an entity with none is left out.
func (f *boundedFamily[K]) addCounts(key K, counts *[tables.NumStates]float64) {
	if *counts == ([tables.NumStates]float64{}) {
		return
	}
	c := f.counts[key]
	if c == nil {
		c = new([tables.NumStates]float64)
		f.counts[key] = c
	}
	for s, v := range counts {
		c[s] += v
	}
}

type rankedEntity[K comparable] struct {
	key    K
	labels []string
	total  float64
	series int
	counts *[tables.NumStates]float64
}

// emit sends the family's series and returns how many were folded into the
// "other" series. labels gives an entity's label values (in desc's order,
// before the state label); ties in rank are broken by those values so the
// output is stable.
func (f *boundedFamily[K]) emit(ch chan<- prometheus.Metric, desc *prometheus.Desc, maxSeries int, labels func(K) []string) int {
	ents := make([]rankedEntity[K], 0, len(f.counts))
	for k, c := range f.counts {
		e := rankedEntity[K]{key: k, counts: c, labels: labels(k)}
		for _, v := range c {
			if v > 0 {
				e.total += v
				e.series++
			}
		}
		if f.everyState {
			e.series = len(tables.AllStates)
		}
		ents = append(ents, e)
	}
	slices.SortFunc(ents, func(a, b rankedEntity[K]) int {
		if c := cmp.Compare(b.total, a.total); c != 0 {
			return c
		}
		return slices.Compare(a.labels, b.labels)
	})

	var other [tables.NumStates]float64
	emitted, folded := 0, 0
	for _, e := range ents {
		cost := e.series
		if f.everyState {
			cost = 1 // the bound counts entities
		}
		if folded > 0 || emitted+cost > maxSeries {
			folded += e.series
			for s, v := range e.counts {
				other[s] += v
			}
			continue
		}
		emitted += cost
		for _, s := range tables.AllStates {
			if v := e.counts[s]; v > 0 || f.everyState {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append(e.labels, tables.StateNames[s])...)
			}
		}
	}
	if folded > 0 {
		others := make([]string, len(ents[0].labels), len(ents[0].labels)+1)
		for i := range others {
			others[i] = otherLabel
		}
		for _, s := range tables.AllStates {
			if v := other[s]; v > 0 || f.everyState {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append(others, tables.StateNames[s])...)
			}
		}
	}
	return folded
}

// rankedValue is one entity's value in a family of one series per entity,
// and the count it is ranked by.
type rankedValue struct {
	rank, value float64
}

// emitRanked sends one series per entity, keeping the maxSeries entities
// with the highest rank and summing the rest into one series whose labels
// read "other". It returns how many entities were folded.
func emitRanked[K comparable](ch chan<- prometheus.Metric, desc *prometheus.Desc, values map[K]*rankedValue, maxSeries int, labels func(K) []string) int {
	return emitFolded(values, maxSeries, labels,
		func(v *rankedValue) float64 { return v.rank },
		func(dst, src *rankedValue) { dst.rank += src.rank; dst.value += src.value },
		func(labels []string, v *rankedValue) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v.value, labels...)
		})
}

// emitFolded ranks the entities of values by rank, highest first (ties by
// their labels, so that the output is stable), hands the first maxSeries
// to emit with their labels, merges the rest into one value handed to emit
// with labels that read "other", and returns how many were folded.
func emitFolded[K comparable, V any](values map[K]*V, maxSeries int, labels func(K) []string, rank func(*V) float64, merge func(dst, src *V), emit func([]string, *V)) int {
	type entity struct {
		labels []string
		v      *V
	}
	ents := make([]entity, 0, len(values))
	for k, v := range values {
		ents = append(ents, entity{labels(k), v})
	}
	slices.SortFunc(ents, func(a, b entity) int {
		if c := cmp.Compare(rank(b.v), rank(a.v)); c != 0 {
			return c
		}
		return slices.Compare(a.labels, b.labels)
	})
	var other V
	folded := 0
	for i, e := range ents {
		if i < maxSeries {
			emit(e.labels, e.v)
			continue
		}
		folded++
		merge(&other, e.v)
	}
	if folded > 0 {
		others := make([]string, len(ents[0].labels))
		for i := range others {
			others[i] = otherLabel
		}
		emit(others, &other)
	}
	return folded
}
