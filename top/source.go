package top

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
)

// Source says where a refresh's numbers came from, and what that source
// cannot know; one object of the JSON output.
type Source struct {
	// Kind is "exporter" (the running exporter's reading, its memory
	// included) or "kernel" (read by top itself).
	Kind string `json:"kind"`
	// URL is the exporter asked, "" with --no-exporter.
	URL string `json:"url"`
	// Fallback says why top read the kernel itself: no exporter answered
	// at URL, or --no-exporter.
	Fallback string `json:"fallback"`
	// Unknown lists what top's own reading cannot know that a running
	// exporter remembers; [] for the exporter's.
	Unknown []string `json:"unknown"`
}

// What a fresh process cannot know: the running exporter remembers both
// across its readings.
const (
	unknownRoutes = "the routes and pools of sockets held after a reset (state close) that were dropped before this reading: they count per process only"
	unknownAges   = "ages counted from a first sighting before this reading"
)

// ExporterClient asks a running exporter for its reading.
type ExporterClient struct {
	URL    *url.URL
	Client *http.Client
}

// ParseExporterURL checks --exporter.url: an http or https URL with a
// host, naming the flag when it is not.
func ParseExporterURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return nil, errors.New(`--exporter.url="": empty; give the exporter's URL (such as http://localhost:9951), or --no-exporter to read the kernel`)
	case err != nil:
		return nil, fmt.Errorf("--exporter.url=%q: %w", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("--exporter.url=%q: scheme %q; it takes http:// or https://", s, u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("--exporter.url=%q: no host", s)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("--exporter.url=%q: a query or fragment; give the exporter's base URL", s)
	}
	return u, nil
}

// errNoExporter wraps the failures that mean nobody answered: top then
// reads the kernel itself.
type errNoExporter struct{ err error }

func (e errNoExporter) Error() string { return e.err.Error() }
func (e errNoExporter) Unwrap() error { return e.err }

// Read asks the exporter for one reading. An exporter that does not
// answer (nothing listens, the host is unknown, the connection times out)
// is an errNoExporter; one that answers with an error (401, 404, a
// malformed document) is another error, for top to report rather than
// hide behind its own reading.
func (c *ExporterClient) Read(ctx context.Context, withSockets bool) (*Reading, error) {
	u := c.URL.JoinPath(ReadingPath)
	if withSockets {
		u.RawQuery = "sockets=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Client.Do(req)
	if err != nil {
		var netErr net.Error
		var opErr *net.OpError
		var dnsErr *net.DNSError
		if errors.As(err, &opErr) && opErr.Op == "dial" || errors.As(err, &dnsErr) || errors.As(err, &netErr) && netErr.Timeout() {
			return nil, errNoExporter{err}
		}
		return nil, fmt.Errorf("%s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s: %s", u.Redacted(), resp.Status, strings.TrimSpace(string(body)))
	}
	var r Reading
	dec := json.NewDecoder(resp.Body)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: not a reading of tcpstate_exporter (%s): %w", u.Redacted(), resp.Header.Get("Content-Type"), err)
	}
	if r.Routes == nil || r.Pools == nil || r.Time.IsZero() {
		return nil, fmt.Errorf("%s: not a reading of tcpstate_exporter: no time, routes or pools", u.Redacted())
	}
	return &r, nil
}

// Handler serves the exporter's reading as JSON at ReadingPath:
// "?sockets=1" adds the dead sockets one by one. At most maxRequests
// readings run at once (0: no limit); the excess gets 503.
func Handler(e *collector.Exporter, cfg func() *config.Config, maxRequests int) http.Handler {
	var slots chan struct{}
	if maxRequests > 0 {
		slots = make(chan struct{}, maxRequests)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		withSockets := false
		switch v := req.URL.Query().Get("sockets"); v {
		case "", "0", "false":
		case "1", "true":
			withSockets = true
		default:
			http.Error(w, fmt.Sprintf("sockets=%q: it takes 1 or 0", v), http.StatusBadRequest)
			return
		}
		if slots != nil {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			default:
				http.Error(w, "too many concurrent requests (--web.max-requests)", http.StatusServiceUnavailable)
				return
			}
		}
		ctx, cancel := context.WithTimeout(req.Context(), clientTimeout-5*time.Second)
		defer cancel()
		r, err := Read(ctx, e, cfg(), withSockets)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r)
	})
}

// NewExporterClient checks --exporter.url and reads
// --exporter.http-config.file (Prometheus' HTTP client settings: TLS,
// basic auth, authorization…), naming the flag a bad value came from.
func NewExporterClient(rawURL, httpConfigFile string) (*ExporterClient, error) {
	u, err := ParseExporterURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg := &promconfig.HTTPClientConfig{}
	if httpConfigFile != "" {
		if cfg, _, err = promconfig.LoadHTTPConfigFile(httpConfigFile); err != nil {
			return nil, fmt.Errorf("--exporter.http-config.file=%q: %w", httpConfigFile, err)
		}
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("--exporter.http-config.file=%q: %w", httpConfigFile, err)
		}
	}
	client, err := promconfig.NewClientFromConfig(*cfg, "tcpstate_exporter_top")
	if err != nil {
		return nil, fmt.Errorf("--exporter.http-config.file=%q: %w", httpConfigFile, err)
	}
	client.Timeout = clientTimeout
	return &ExporterClient{URL: u, Client: client}, nil
}

// clientTimeout bounds one request to the exporter: a reading of a host
// with very many sockets takes seconds, not minutes.
const clientTimeout = 30 * time.Second
