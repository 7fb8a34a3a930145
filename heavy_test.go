package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The heavy tests hold 100 000 sockets or 20 000 ports. They run with
// TCPSTATE_HEAVY=1 (make heavy, which CI runs); plain `go test` skips them.
func heavy(t *testing.T) {
	if os.Getenv("TCPSTATE_HEAVY") != "1" {
		t.Skip("set TCPSTATE_HEAVY=1 (make heavy) to hold 100 000 sockets")
	}
}

// peakRSS reads a process's peak resident set size in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

type scrapeResult struct {
	code int
	body string
}

// burst sends n scrapes at once and returns their results.
func burst(t *testing.T, url string, n int) []scrapeResult {
	t.Helper()
	out := make([]scrapeResult, n)
	client := &http.Client{Timeout: time.Minute}
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			resp, err := client.Get(url)
			if err != nil {
				out[i] = scrapeResult{code: -1, body: err.Error()}
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				out[i] = scrapeResult{code: -1, body: err.Error()}
				return
			}
			out[i] = scrapeResult{code: resp.StatusCode, body: string(body)}
		}()
	}
	start.Done()
	done.Wait()
	return out
}

// holdPairs holds about perProcess established pairs per server address,
// each pair's two ends in two processes, so no process nears the 20 000
// descriptor limit.
func holdPairs(t *testing.T, addrs []string, perProcess int) int {
	t.Helper()
	total := 0
	for _, a := range addrs {
		// Keepalive probes from 100 000 idle loopback sockets overflow the
		// loopback queue and reset connections: turn them off.
		srv := startHelper(t, "serve", "-comm", "storm-srv", "-keepalive=false", "-listen", a+":0")
		port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
		startHelper(t, "connect", "-comm", "storm-cli", "-keepalive=false", "-established", a+":"+port+"="+strconv.Itoa(perProcess))
		total += 2 * perProcess
	}
	return total
}

// stormFamilies keeps the lines of an exposition that describe the held
// sockets, which must not change while they are held.
func stormFamilies(body string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, `"storm-cli"`) || strings.Contains(l, `"storm-srv"`) {
			out = append(out, l)
		}
	}
	return out
}

func TestHeavyScrapeStorm(t *testing.T) {
	heavy(t)
	addrs := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	held := holdPairs(t, addrs, 17000)
	t.Logf("holding %d established sockets in %d server and %d client processes", held, len(addrs), len(addrs))

	const scrapes = 50
	e := startExporter(t, "--web.max-requests=60")
	before := parseExposition(t, mustGet(t, e))["tcpstate_snapshot_readings_total"]
	results := burst(t, e.url+"/metrics", scrapes)
	after := parseExposition(t, mustGet(t, e))["tcpstate_snapshot_readings_total"]

	byReading := map[float64][]string{}
	var first []string
	for i, r := range results {
		if r.code != http.StatusOK {
			t.Fatalf("scrape %d: %d %s", i, r.code, r.body)
		}
		m := parseExposition(t, r.body)
		if m[`tcpstate_process_connections{netns="host",process="storm-cli",state="established"}`] != float64(held/2) {
			t.Fatalf("scrape %d: storm-cli holds %v established, want %d", i, m[`tcpstate_process_connections{netns="host",process="storm-cli",state="established"}`], held/2)
		}
		// Responses that share a reading are identical, apart from timings.
		byReading[m["tcpstate_snapshot_readings_total"]] = append(byReading[m["tcpstate_snapshot_readings_total"]], stableExposition(r.body))
		if first == nil {
			first = stormFamilies(r.body)
		} else if got := stormFamilies(r.body); strings.Join(got, "\n") != strings.Join(first, "\n") {
			t.Fatalf("scrape %d sees the held sockets differently", i)
		}
	}
	for reading, bodies := range byReading {
		for _, b := range bodies[1:] {
			if b != bodies[0] {
				t.Errorf("two scrapes sharing reading %v differ", reading)
			}
		}
	}
	readings := after - before - 1 // the "after" scrape made one
	t.Logf("%d concurrent scrapes: all 200, %v readings of /proc (%d distinct results)", scrapes, readings, len(byReading))
	if readings > scrapes/5 {
		t.Errorf("%d concurrent scrapes made %v readings; they should share", scrapes, readings)
	}
	rss := peakRSS(t, e.cmd.Process.Pid)
	t.Logf("exporter peak RSS after the storm: %.1f MiB", float64(rss)/(1<<20))
	if rss > 256<<20 {
		t.Errorf("peak RSS %d MiB, want under 256 MiB", rss>>20)
	}

	// With a small --web.max-requests the excess is refused, not queued.
	limited := startExporter(t, "--web.max-requests=5")
	results = burst(t, limited.url+"/metrics", scrapes)
	ok, refused := 0, 0
	for _, r := range results {
		switch r.code {
		case http.StatusOK:
			ok++
		case http.StatusServiceUnavailable:
			refused++
			if !strings.Contains(r.body, "--web.max-requests=5") {
				t.Errorf("503 without an explanation: %q", r.body)
			}
		default:
			t.Errorf("unexpected answer %d %q", r.code, r.body)
		}
	}
	t.Logf("--web.max-requests=5, %d at once: %d served, %d refused with 503", scrapes, ok, refused)
	if ok < 5 || refused == 0 {
		t.Errorf("want at least 5 served and some refused, got %d and %d", ok, refused)
	}
}

func mustGet(t *testing.T, e *exporter) string {
	t.Helper()
	code, body := e.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	return body
}

// familySeries counts a family's series and its "other" series.
func familySeries(m map[string]float64, family string) (all, other int) {
	for k := range m {
		if strings.HasPrefix(k, family+"{") {
			all++
			if strings.Contains(k, `"other"`) {
				other++
			}
		}
	}
	return all, other
}

func TestHeavyHostileCardinality(t *testing.T) {
	heavy(t)
	// 20 000 distinct remote ports: two servers listening on 10 000 ports
	// each, connections left in their backlogs, and two clients opening one
	// connection to each port.
	listened := 0
	for _, r := range []string{"10000-19999", "20000-29999"} {
		srv := startHelper(t, "serve", "-comm", "hostile-srv", "-no-accept", "-listen", "127.0.0.3:"+r)
		var n, skipped int
		if _, err := fmt.Sscanf(srv.lines[0][strings.Index(srv.lines[0], "listened="):], "listened=%d skipped=%d", &n, &skipped); err != nil {
			t.Fatalf("server said %q: %v", srv.lines, err)
		}
		listened += n
		startHelper(t, "connect", "-comm", "hostile-ports", "-established", "127.0.0.3:"+r+"=1")
	}
	// 20 000 distinct source ports toward one listening port, in CLOSE_WAIT.
	srv := startHelper(t, "serve", "-comm", "hostile-srv", "-listen", "127.0.0.4:0")
	port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
	for range 2 {
		startHelper(t, "connect", "-comm", "hostile-src", "-close-wait", "127.0.0.4:"+port+"=10000")
	}
	t.Logf("%d listening ports each with one connection; 20000 CLOSE_WAIT sockets toward 127.0.0.4:%s", listened, port)
	if listened < 19000 {
		t.Fatalf("only %d of 20000 ports could be listened on", listened)
	}

	const maxSeries = 1000
	e := startExporter(t, "--collector.max-series="+strconv.Itoa(maxSeries))
	body := mustGet(t, e)
	m := parseExposition(t, body)
	t.Logf("response: %d bytes, %d series", len(body), len(m))
	if len(body) > 2<<20 {
		t.Errorf("response of %d bytes; the bounds should keep it small", len(body))
	}
	for _, f := range []string{"tcpstate_remote_port_connections", "tcpstate_local_port_connections", "tcpstate_process_connections", "tcpstate_process_remote_connections",
		"tcpstate_accept_queue_sockets", "tcpstate_accept_queue_max_sockets", "tcpstate_ephemeral_ports_used"} {
		all, other := familySeries(m, f)
		truncated := m[`tcpstate_series_truncated{metric="`+f+`"}`]
		t.Logf("%s: %d series (%d of them other), %v folded", f, all, other, truncated)
		if all-other > maxSeries || other > 11 {
			t.Errorf("%s: %d series and %d other series, want at most %d plus one per state", f, all-other, other, maxSeries)
		}
	}
	// The 20 000 remote ports, their 20 000 listeners and 20 000 routes must
	// have been folded, and said so.
	for _, f := range []string{"tcpstate_remote_port_connections", "tcpstate_local_port_connections", "tcpstate_process_remote_connections",
		"tcpstate_accept_queue_sockets", "tcpstate_accept_queue_max_sockets"} {
		if got := m[`tcpstate_series_truncated{metric="`+f+`"}`]; got < float64(listened-maxSeries) {
			t.Errorf("%s: %v series folded, want at least %d", f, got, listened-maxSeries)
		}
	}
	// The 20 000 source ports are no label: one route holds them all.
	if got := m[`tcpstate_process_remote_connections{netns="host",process="hostile-src",remote_address="127.0.0.4",remote_port="`+port+`",state="close_wait"}`]; got != 20000 {
		t.Errorf("hostile-src route: %v, want 20000", got)
	}
	// They hold 20 000 ephemeral ports toward that one destination; the
	// 20 000 destinations of one port each are under the floor.
	if got := m[`tcpstate_ephemeral_ports_used{remote_address="127.0.0.4",remote_port="`+port+`"}`]; got != 20000 {
		t.Errorf("ephemeral ports toward 127.0.0.4:%s: %v, want 20000", port, got)
	}
	// Labels carry only comm names, addresses and ports.
	comms := map[string]bool{"other": true}
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil {
			comms[strings.TrimSuffix(string(b), "\n")] = true
		}
	}
	for k := range m {
		for _, pair := range strings.Split(strings.Trim(k[strings.IndexByte(k+"{", '{'):], "{}"), ",") {
			name, val, _ := strings.Cut(pair, "=")
			val = strings.Trim(val, `"`)
			switch name {
			case "process":
				// A process of the host that ended between the scrape and
				// the listing above is gone from /proc: its name can only
				// be checked to fit a comm (at most 15 bytes, no newline).
				if !comms[val] && (len(val) > 15 || strings.ContainsAny(val, "\n\x00")) {
					t.Errorf("process label %q is not a comm name (%s)", val, k)
				}
			case "remote_address":
				if _, err := net.ResolveIPAddr("ip", val); err != nil && val != "other" {
					t.Errorf("remote_address %q is not an address", val)
				}
			case "remote_port", "local_port":
				if _, err := strconv.Atoi(val); err != nil && val != "other" {
					t.Errorf("%s %q is not a port", name, val)
				}
			}
		}
	}
	t.Logf("exporter peak RSS: %.1f MiB", float64(peakRSS(t, e.cmd.Process.Pid))/(1<<20))
}
