package top

// Benchmarks of the reading the exporter serves at ReadingPath, on
// generated tables (tables.WriteSyntheticTables, no processes: every
// CLOSE_WAIT socket is listed without an owner). They only run with
// -bench.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// countingWriter counts the bytes of the JSON document.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkReading takes a reading as /api/v1/top does and encodes it,
// without and with the sockets (?sockets=1), and reports the document's
// bytes per socket listed.
func BenchmarkReading(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		dir, err := os.MkdirTemp("", "tcpstate-top-bench-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if err := tables.WriteSyntheticTables(dir, n); err != nil {
			b.Fatal(err)
		}
		for _, withSockets := range []bool{false, true} {
			b.Run(fmt.Sprintf("lines=%d/sockets=%v", n, withSockets), func(b *testing.B) {
				e, err := collector.NewExporter(collector.Options{ProcRoot: dir, Tables: tables.NewProcfsTables(dir), MaxSeries: 1000,
					RouteStates: []tables.State{tables.StateCloseWait, tables.StateClose, tables.StateEstablished}, Workers: 2,
					CloseWait: snapshot.NewCloseWaitTracker(n)}, collector.Names())
				if err != nil {
					b.Fatal(err)
				}
				var w countingWriter
				var listed int
				read := func() {
					r, err := Read(context.Background(), e, nil, withSockets)
					if err != nil {
						b.Fatal(err)
					}
					listed = len(r.Sockets)
					w.n = 0
					if err := json.NewEncoder(io.Writer(&w)).Encode(r); err != nil {
						b.Fatal(err)
					}
				}
				read() // sizes the buffers and maps
				for b.Loop() {
					read()
				}
				b.ReportMetric(float64(w.n), "json-bytes")
				if listed > 0 {
					b.ReportMetric(float64(w.n)/float64(listed), "json-bytes/socket")
				}
				b.ReportMetric(float64(listed), "sockets-listed")
			})
		}
	}
}
