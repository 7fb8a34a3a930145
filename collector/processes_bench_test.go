package collector

import (
	"net"
	"os"
	"os/exec"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
)

// benchProcesses is how many processes BenchmarkScrapeProcesses starts,
// each holding one TCP socket of its own: a host with 2 000 processes.
const benchProcesses = 2000

// BenchmarkScrapeProcesses runs whole scrapes of the real /proc (every
// collector) while benchProcesses child processes (sleep) each hold one
// loopback TCP socket of their own, so that every one of them is walked,
// owns a socket and has its fd limit read: "warm" is the steady state (the
// walk's cache, limits kept while a process's fd count stays put), "cold"
// a fresh exporter's first scrape. The host's other processes and sockets
// are measured too: compare runs on the same host (docs/performance.md).
func BenchmarkScrapeProcesses(b *testing.B) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var served []net.Conn
	defer func() {
		for _, c := range served {
			c.Close()
		}
	}()
	var children []*exec.Cmd
	defer func() {
		for _, c := range children {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	for range benchProcesses {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		served = append(served, s)
		f, err := c.(*net.TCPConn).File()
		c.Close()
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("sleep", "3600")
		cmd.ExtraFiles = []*os.File{f} // its fd 3: the child's own socket
		err = cmd.Start()
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		children = append(children, cmd)
	}
	opts := Options{ProcRoot: "/proc", MaxSeries: 1000, RouteStates: []tables.State{tables.StateCloseWait, tables.StateEstablished}, Workers: 2}
	scrape := func(e *Exporter) {
		ch := make(chan prometheus.Metric, 4096)
		done := make(chan struct{})
		go func() {
			for range ch {
			}
			close(done)
		}()
		e.Collect(ch)
		close(ch)
		<-done
	}
	b.Run("warm", func(b *testing.B) {
		e, err := NewExporter(opts, Names())
		if err != nil {
			b.Fatal(err)
		}
		scrape(e)
		scrape(e)
		for b.Loop() {
			scrape(e)
		}
	})
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			e, err := NewExporter(opts, Names())
			if err != nil {
				b.Fatal(err)
			}
			scrape(e)
		}
	})
}
