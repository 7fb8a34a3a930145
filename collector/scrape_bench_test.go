package collector

// Benchmarks of a whole scrape on generated tables (tables.WriteSyntheticTables). They
// only run with -bench; `make bench` runs them with -benchmem and puts the
// numbers in docs/performance.md.

import (
	"fmt"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
)

// benchSizes are the table sizes the benchmarks run at, in lines (sockets).
var benchSizes = []int{1_000, 10_000, 100_000, 1_000_000}

func reportPerSocket(b *testing.B, sockets int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sockets), "ns/socket")
}

// BenchmarkScrape runs whole scrapes (every collector; the generated tree
// has no processes, so the /proc/PID/fd walk finds no owner) and drains
// their metrics, as an HTTP scrape would before encoding them.
func BenchmarkScrape(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("lines=%d", n), func(b *testing.B) {
			root := b.TempDir() // once per size: b.Loop runs the body once
			if err := tables.WriteSyntheticTables(root, n); err != nil {
				b.Fatal(err)
			}
			e, err := NewExporter(Options{ProcRoot: root, MaxSeries: 1000, RouteStates: []tables.State{tables.StateCloseWait, tables.StateEstablished}, Workers: 2}, Names())
			if err != nil {
				b.Fatal(err)
			}
			ch := make(chan prometheus.Metric, 4096)
			series := 0
			scrape := func() {
				done := make(chan int)
				go func() {
					k := 0
					for range ch {
						k++
					}
					done <- k
				}()
				e.Collect(ch)
				close(ch)
				series = <-done
				ch = make(chan prometheus.Metric, 4096)
			}
			// The first readings size the buffers and maps.
			scrape()
			scrape()
			for b.Loop() {
				scrape()
			}
			b.ReportMetric(float64(series), "series")
			reportPerSocket(b, n)
		})
	}
}
