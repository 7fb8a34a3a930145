package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// topJSON is what the tests read of `top --output=json` (routes).
type topJSON struct {
	Source struct {
		Kind     string   `json:"kind"`
		URL      string   `json:"url"`
		Fallback string   `json:"fallback"`
		Unknown  []string `json:"unknown"`
	} `json:"source"`
	Routes []struct {
		Process     string   `json:"process"`
		Netns       string   `json:"netns"`
		Pids        []int    `json:"pids"`
		CloseWait   float64  `json:"close_wait"`
		Close       float64  `json:"close"`
		Established float64  `json:"established"`
		Pool        string   `json:"pool"`
		PoolMax     int      `json:"pool_max"`
		PoolInUse   *float64 `json:"pool_in_use"`
		PoolFull    bool     `json:"pool_full"`
	} `json:"routes"`
	UnroutedClose float64 `json:"unrouted_close"`
}

// topSocketsJSON is what the tests read of `top --sockets --output=json`.
type topSocketsJSON struct {
	Source struct {
		Kind string `json:"kind"`
	} `json:"source"`
	Sockets []struct {
		Pid    int    `json:"pid"`
		State  string `json:"state"`
		Local  string `json:"local"`
		Remote string `json:"remote"`
		Pool   string `json:"pool"`
	} `json:"sockets"`
	Total  int `json:"close_wait_total"`
	Closed int `json:"close_total"`
}

// TestLiveTopShowsWhatTheExporterKnows holds, in one pool of 10, three
// CLOSE_WAIT sockets and three that the server reset after the exporter
// saw them (the kernel drops those; the client still holds them: CLOSE).
// /metrics counts 6 dead slots. top asking the exporter shows the same 6,
// the CLOSE sockets in the route and in --sockets with their endpoints;
// top without an exporter reads the kernel, sees 3 and says what it cannot
// know.
func TestLiveTopShowsWhatTheExporterKnows(t *testing.T) {
	const (
		comm    = "tcpst-topx"
		poolMax = 10
	)
	srv := startHelper(t, "serve", "-comm", "tcpst-topx-s", "-listen", "127.0.0.4:0")
	target := strings.TrimPrefix(srv.lines[0], "listening ")
	port := target[strings.LastIndexByte(target, ':')+1:]
	client := startHelper(t, "connect", "-comm", comm, "-keepalive=false", "-close-wait", target+"=3", "-close-wait-reset", target+"=3")

	config := filepath.Join(t.TempDir(), "pools.yml")
	doc := fmt.Sprintf("pools:\n  - name: topx\n    process: \"^%s$\"\n    remote_address: 127.0.0.4\n    remote_port: %s\n    max: %d\n", comm, port, poolMax)
	if err := os.WriteFile(config, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	// The host may hold thousands of other routes: none of ours is folded
	// into "other".
	const unbounded = "--collector.max-series=1000000"
	e := startExporter(t, "--config.file="+config, unbounded)
	series := func(state string) string {
		return fmt.Sprintf(`tcpstate_pool_connections{pool="topx",state="%s"}`, state)
	}
	waitFor(t, e, "6 CLOSE_WAIT in the pool", func(m map[string]float64) bool { return m[series("close_wait")] == 6 })
	if _, err := io.WriteString(client.stdin, "reset\n"); err != nil {
		t.Fatal(err)
	}
	m := waitFor(t, e, "3 CLOSE and 3 CLOSE_WAIT in the pool", func(m map[string]float64) bool {
		return m[series("close")] == 3 && m[series("close_wait")] == 3
	})
	inUse := m[series("close")] + m[series("close_wait")] + m[series("established")]
	if inUse != 6 {
		t.Fatalf("/metrics: the pool holds %v, want 6:\n%v", inUse, m)
	}

	// From the exporter: /metrics' numbers.
	filter := []string{"--process=^" + comm + "$"}
	args := append([]string{"top", "--exporter.url=" + e.url}, filter...)
	out, stderr, code := runPiped(t, append(args, "--output=json")...)
	var v topJSON
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("top --output=json: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	if v.Source.Kind != "exporter" || v.Source.URL != e.url || len(v.Source.Unknown) != 0 {
		t.Errorf("source %+v, want the exporter at %s", v.Source, e.url)
	}
	pid := []int{client.cmd.Process.Pid}
	if len(v.Routes) != 1 {
		t.Fatalf("%d routes, want 1:\n%s", len(v.Routes), out)
	}
	r := v.Routes[0]
	if r.CloseWait != 3 || r.Close != 3 || r.Established != 0 || !slices.Equal(r.Pids, pid) || r.Netns != "host" ||
		r.Pool != "topx" || r.PoolMax != poolMax || r.PoolInUse == nil || *r.PoolInUse != inUse || r.PoolFull {
		t.Errorf("route %+v, want 3 CLOSE_WAIT, 3 CLOSE, pid %v, pool topx at %v/%d", r, pid, inUse, poolMax)
	}
	code, out = runToExit(t, args...)
	if want := "source: the exporter at " + e.url + " (its numbers are /metrics')\n"; code != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("top: exit %d, want it to begin with %q:\n%s", code, want, out)
	}
	wantRow := []string{comm, strconv.Itoa(pid[0]), target, "3", "3", "0", "topx", "6/10"}
	if row := tableRow(out, comm); !slices.Equal(row[:min(len(row), len(wantRow))], wantRow) {
		t.Errorf("top: row %q, want it to begin with %q:\n%s", row, wantRow, out)
	}
	// Every dead socket, the CLOSE ones with the endpoints the exporter
	// remembers.
	out, stderr, code = runPiped(t, "top", "--exporter.url="+e.url, "--sockets", "--pool=topx", "--output=json")
	var l topSocketsJSON
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil {
		t.Fatalf("top --sockets: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	states := map[string]int{}
	for _, s := range l.Sockets {
		states[s.State]++
		if s.Pid != pid[0] || s.Remote != target || !strings.HasPrefix(s.Local, "127.0.0.1:") || s.Pool != "topx" {
			t.Errorf("socket %+v, want pid %d, 127.0.0.1:PORT → %s, pool topx", s, pid[0], target)
		}
	}
	if l.Source.Kind != "exporter" || states["close"] != 3 || states["close_wait"] != 3 || len(l.Sockets) != 6 {
		t.Errorf("top --sockets --pool=topx from the exporter: %v (source %s), want 3 close and 3 close_wait:\n%s", states, l.Source.Kind, out)
	}
	code, out = runToExit(t, "top", "--exporter.url="+e.url, "--sockets", "--pool=topx")
	if code != 0 || strings.Count(out, "       CLOSE  127.0.0.1:") != 3 {
		t.Errorf("top --sockets: exit %d, want 3 CLOSE rows with their endpoints:\n%s", code, out)
	}

	// No exporter answers: top reads the kernel, sees only the CLOSE_WAIT
	// sockets in the pool, and says why and what it cannot know.
	nobody := "http://" + testutil.FreeAddr(t)
	kernel := append([]string{"top", "--exporter.url=" + nobody, "--config.file=" + config, unbounded}, filter...)
	out, stderr, code = runPiped(t, append(kernel, "--output=json")...)
	v = topJSON{}
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("top without an exporter: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	if v.Source.Kind != "kernel" || !strings.HasPrefix(v.Source.Fallback, "no exporter answered at "+nobody) || len(v.Source.Unknown) != 2 {
		t.Errorf("source %+v, want the kernel, no exporter at %s, and what it cannot know", v.Source, nobody)
	}
	if len(v.Routes) != 1 || v.Routes[0].CloseWait != 3 || v.Routes[0].Close != 0 || v.Routes[0].PoolInUse == nil || *v.Routes[0].PoolInUse != 3 {
		t.Errorf("routes %+v, want 3 CLOSE_WAIT, no CLOSE, 3 in use", v.Routes)
	}
	// Held sockets of other processes on the host may add to it.
	if v.UnroutedClose < 3 || !strings.Contains(v.Source.Unknown[0], "sockets held after a reset") {
		t.Errorf("unrouted_close %v, want at least the 3 reset sockets, named in %q", v.UnroutedClose, v.Source.Unknown)
	}
	code, out = runToExit(t, kernel...)
	for _, want := range []string{
		"source: the kernel, read by top itself (no exporter answered at " + nobody,
		"\ntop cannot know what a running exporter remembers: the routes and pools of ",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("top without an exporter: exit %d, want %q in:\n%s", code, want, out)
		}
	}
	// The table has a CLOSE column only when a row has CLOSE sockets.
	wantRow = []string{comm, strconv.Itoa(pid[0]), target, "3"}
	if row := tableRow(out, comm); !slices.Equal(row[:min(len(row), len(wantRow))], wantRow) || !slices.Contains(row, "3/10") {
		t.Errorf("top without an exporter: row %q, want 3 CLOSE_WAIT and 3/10 in use:\n%s", row, out)
	}
	code, out = runToExit(t, "top", "--no-exporter", "--config.file="+config, unbounded, "--sockets", "--pool=topx")
	if code != 0 || strings.Count(out, "  CLOSE_WAIT  127.0.0.1:") != 3 || strings.Contains(out, "       CLOSE  127.0.0.1:") ||
		!strings.Contains(out, "CLOSE sockets have no known route, so the filters on remote address, port and pool cannot match them") {
		t.Errorf("top --no-exporter --sockets: exit %d, want 3 CLOSE_WAIT rows and a note on the CLOSE ones it cannot place:\n%s", code, out)
	}
}

// tableRow is the fields of the table's row of process, or nil.
func tableRow(out, process string) []string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == process {
			return f
		}
	}
	return nil
}

// TestTopThroughTLSAndBasicAuth: the exporter's reading for top is behind
// the same web config as /metrics; top authenticates with a Prometheus
// HTTP client config, and an answer that refuses it is an error, not a
// silent fallback to the kernel.
func TestTopThroughTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	webConfig, certPath, roots := writeAuthWebConfig(t, dir)
	e := startExporter(t, "--path.procfs=testdata/proc", "--config.file=testdata/config.yml", "--web.config.file="+webConfig)
	base := strings.Replace(e.url, "http://", "https://", 1)
	writeConfig := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := writeConfig("good.yml", "tls_config:\n  ca_file: "+certPath+"\nbasic_auth:\n  username: prometheus\n  password: s3cret\n")
	wrong := writeConfig("wrong.yml", "tls_config:\n  ca_file: "+certPath+"\nbasic_auth:\n  username: prometheus\n  password: guess\n")
	anonymous := writeConfig("anonymous.yml", "tls_config:\n  ca_file: "+certPath+"\n")

	out, stderr, code := runPiped(t, "top", "--exporter.url="+base, "--exporter.http-config.file="+good, "--output=json")
	var v topJSON
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("top with credentials: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	if v.Source.Kind != "exporter" || len(v.Routes) != 4 {
		t.Errorf("top with credentials: source %+v, %d routes, want the exporter's 4:\n%s", v.Source, len(v.Routes), out)
	}
	// --pool names one of the exporter's pools.
	code, out = runToExit(t, "top", "--exporter.url="+base, "--exporter.http-config.file="+good, "--pool=nope")
	if want := `--pool "nope": no such pool in the config file of the exporter at ` + base + ` (declared: search-engine, search-java-v4, db-v6)`; code != 1 || !strings.Contains(out, want) {
		t.Errorf("--pool=nope: exit %d, want 1 and %q:\n%s", code, want, out)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong password", []string{"--exporter.http-config.file=" + wrong}, "401 Unauthorized"},
		{"no credentials", []string{"--exporter.http-config.file=" + anonymous}, "401 Unauthorized"},
		{"unknown certificate", nil, "certificate"},
	} {
		code, out := runToExit(t, append([]string{"top", "--exporter.url=" + base}, c.args...)...)
		if code != 1 || !strings.Contains(out, "the exporter at "+base) || !strings.Contains(out, c.want) || strings.Contains(out, "source: the kernel") {
			t.Errorf("%s: exit %d, want 1 and an error naming the exporter and %q, no reading of the kernel:\n%s", c.name, code, c.want, out)
		}
	}

	// The endpoint refuses what /metrics refuses.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	for _, path := range []string{"/metrics", "/api/v1/top"} {
		for _, c := range []struct {
			user, pass string
			want       int
		}{{"", "", http.StatusUnauthorized}, {"prometheus", "guess", http.StatusUnauthorized}, {"prometheus", "s3cret", http.StatusOK}} {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			if c.user != "" {
				req.SetBasicAuth(c.user, c.pass)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want || (c.want != http.StatusOK && strings.Contains(string(body), "routes")) {
				t.Errorf("%s as %q: %d, want %d:\n%s", path, c.user, resp.StatusCode, c.want, body)
			}
		}
	}
	// Authenticated, a bad question is answered as one.
	for _, c := range []struct {
		method, query string
		want          int
		body          string
	}{{http.MethodGet, "?sockets=maybe", http.StatusBadRequest, `sockets="maybe": it takes 1 or 0`}, {http.MethodPost, "", http.StatusMethodNotAllowed, "use GET"}} {
		req, _ := http.NewRequest(c.method, base+"/api/v1/top"+c.query, nil)
		req.SetBasicAuth("prometheus", "s3cret")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || !strings.Contains(string(body), c.body) {
			t.Errorf("%s /api/v1/top%s: %d %q, want %d %q", c.method, c.query, resp.StatusCode, body, c.want, c.body)
		}
	}
}

// TestTopExporterFlagsAreChecked: a bad --exporter.url or client config is
// refused with exit 2, naming the flag, before anything is read.
func TestTopExporterFlagsAreChecked(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "http.yml")
	if err := os.WriteFile(bad, []byte("basic_auth:\n  username: a\n  pasword: b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--exporter.url="}, `--exporter.url="": empty`},
		{[]string{"--exporter.url=localhost:9951"}, `--exporter.url="localhost:9951": scheme "localhost"; it takes http:// or https://`},
		{[]string{"--exporter.url=ftp://127.0.0.1"}, `--exporter.url="ftp://127.0.0.1": scheme "ftp"`},
		{[]string{"--exporter.url=http://"}, `--exporter.url="http://": no host`},
		{[]string{"--exporter.url=http://127.0.0.1:9951/?x=1"}, "a query or fragment"},
		{[]string{"--exporter.url=http://[::1"}, `--exporter.url="http://[::1": parse`},
		{[]string{"--exporter.http-config.file=" + bad}, `--exporter.http-config.file="` + bad + `": yaml: unmarshal errors`},
		{[]string{"--exporter.http-config.file=/nonexistent/http.yml"}, "no such file"},
		{[]string{"--no-exporter", "--exporter.url=http://127.0.0.1:9951"}, "--exporter.url and --exporter.http-config.file need the exporter"},
	} {
		stdout, stderr, code := runPiped(t, append([]string{"top", "--path.procfs=testdata/proc"}, c.args...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, c.want) {
			t.Errorf("top %v: exit %d, stdout %q, stderr %q; want 2, nothing and %q", c.args, code, stdout, stderr, c.want)
		}
	}
}

// TestTelemetryPathCannotTakeTopsEndpoint: the metrics path may not be the
// path of top's reading; the exporter says so and does not start.
func TestTelemetryPathCannotTakeTopsEndpoint(t *testing.T) {
	code, out := runToExit(t, "--path.procfs=testdata/proc", "--web.telemetry-path=/api/v1/top", "--web.listen-address="+testutil.FreeAddr(t))
	if code != 2 || !strings.Contains(out, "--web.telemetry-path=/api/v1/top is where the exporter serves top's reading") {
		t.Errorf("exit %d, want 2 and the reason:\n%s", code, out)
	}
}
