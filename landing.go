package main

import (
	"net/http"

	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
)

// landingPage is the page served at /, linking what the exporter serves.
func landingPage(metricsPath string) (http.Handler, error) {
	return web.NewLandingPage(web.LandingConfig{
		Name:        programName,
		Description: "TCP sockets by state, port, process and connection pool",
		Version:     version.Info(),
		Links:       []web.LandingLinks{{Address: metricsPath, Text: "Metrics"}},
	})
}
