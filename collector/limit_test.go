package collector

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// render turns the metrics emit sends into sorted "name=value,... N" lines.
func render(t *testing.T, emit func(ch chan<- prometheus.Metric)) []string {
	t.Helper()
	ch := make(chan prometheus.Metric, 10000)
	emit(ch)
	close(ch)
	var out []string
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		var labels []string
		for _, l := range pb.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		out = append(out, strings.Join(labels, ",")+" "+strconv.FormatFloat(pb.GetGauge().GetValue(), 'g', -1, 64))
	}
	slices.Sort(out)
	return out
}

func TestBoundedFamilyFoldsTheSmallestIntoOther(t *testing.T) {
	t.Parallel()
	desc := prometheus.NewDesc("test_port_connections", "test", []string{"port", "state"}, nil)
	f := newBoundedFamily[string]()
	add := func(port string, st tables.State, n int) {
		for range n {
			f.add(port, st)
		}
	}
	add("9000", tables.StateCloseWait, 50) // 9000: 60 sockets in two series
	add("9000", tables.StateEstablished, 10)
	add("443", tables.StateEstablished, 30) // 443: 30 in one series
	add("80", tables.StateEstablished, 5)   // 80: 7 in two series
	add("80", tables.StateTimeWait, 2)
	add("22", tables.StateEstablished, 7) // 22: 7 in one series, ranks before 80 by label

	var folded int
	got := render(t, func(ch chan<- prometheus.Metric) {
		folded = f.emit(ch, desc, 4, func(p string) []string { return []string{p} })
	})
	want := []string{
		"port=22,state=established 7",
		"port=443,state=established 30",
		"port=9000,state=close_wait 50",
		"port=9000,state=established 10",
		"port=other,state=established 5",
		"port=other,state=time_wait 2",
	}
	if !slices.Equal(got, want) || folded != 2 {
		t.Fatalf("got %q, folded %d\nwant %q, folded 2", got, folded, want)
	}

	// With room for everything, nothing is folded.
	got = render(t, func(ch chan<- prometheus.Metric) {
		folded = f.emit(ch, desc, 6, func(p string) []string { return []string{p} })
	})
	if len(got) != 6 || folded != 0 || slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "other") }) {
		t.Fatalf("max 6: got %q, folded %d", got, folded)
	}

	// An entity that does not fit is folded whole, and so is every smaller
	// one, so the kept set is always a prefix of the ranking.
	got = render(t, func(ch chan<- prometheus.Metric) {
		folded = f.emit(ch, desc, 1, func(p string) []string { return []string{p} })
	})
	if folded != 6 || len(got) != 3 || got[0] != "port=other,state=close_wait 50" {
		t.Fatalf("max 1: got %q, folded %d", got, folded)
	}
}

func TestEmitRankedKeepsTheHighestRanked(t *testing.T) {
	t.Parallel()
	desc := prometheus.NewDesc("test_route_unread", "test", []string{"route"}, nil)
	values := map[string]*rankedValue{
		"a": {rank: 40, value: 0}, // many CLOSE_WAIT, none unread: still kept
		"b": {rank: 10, value: 3},
		"c": {rank: 10, value: 1}, // ties broken by label: b before c
		"d": {rank: 2, value: 2},
	}
	var folded int
	got := render(t, func(ch chan<- prometheus.Metric) {
		folded = emitRanked(ch, desc, values, 2, func(k string) []string { return []string{k} })
	})
	want := []string{"route=a 0", "route=b 3", "route=other 3"}
	if !slices.Equal(got, want) || folded != 2 {
		t.Fatalf("got %q, folded %d; want %q, folded 2", got, folded, want)
	}
	got = render(t, func(ch chan<- prometheus.Metric) {
		folded = emitRanked(ch, desc, values, 4, func(k string) []string { return []string{k} })
	})
	if len(got) != 4 || folded != 0 {
		t.Fatalf("max 4: got %q, folded %d", got, folded)
	}
}
