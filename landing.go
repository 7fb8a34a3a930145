package main

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/tcpstate-exporter/tcpstate_exporter/top"
)

// landingPage is the page served at /. It links only what the exporter
// serves: the profiles only with --web.enable-pprof.
func landingPage(metricsPath string, profiles bool) (http.Handler, error) {
	profiling := "false"
	if profiles {
		profiling = "true"
	}
	return web.NewLandingPage(web.LandingConfig{
		Name:        programName,
		Description: "TCP sockets by state, port, process and connection pool",
		Version:     version.Info(),
		Links: []web.LandingLinks{
			{Address: metricsPath, Text: "Metrics"},
			{Address: top.ReadingPath, Text: "Top", Description: "the routes, pools and dead sockets tcpstate_exporter top shows, as JSON (?sockets=1 lists the sockets)"},
		},
		Profiling: profiling,
	})
}

// servePprof serves Go's profiles under /debug/pprof/ on mux, as
// node_exporter does on its own, but only when asked: a CPU profile costs
// the host CPU, and a heap profile shows the exporter's memory.
func servePprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index) // heap, goroutine, allocs… by name
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
