package top

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func f(v float64) *float64 { return &v }

// twoPools is a reading whose route belongs to a roomy pool declared first
// and to a small one over its limit: the case where `top` used to show
// only the first and hide the small pool's FULL.
func twoPools() *Reading {
	return &Reading{
		Time: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC),
		Routes: []RouteReading{{Process: "java", Netns: "host", Address: "10.0.0.9", Port: "443", Pids: []int{42},
			CloseWait: 12, Close: 2, Established: 6, Pools: []string{"big", "small"}}},
		Pools: []PoolReading{
			{Name: "big", Max: 100, InUse: f(20), CloseWait: f(12), Close: f(2), Established: f(6)},
			{Name: "small", Max: 16, InUse: f(20), CloseWait: f(12), Close: f(2), Established: f(6), Full: true},
		},
		CloseWaitTotal: f(12), EstablishedTotal: f(6), Collectors: []string{"connections", "process", "pools"}, FailedCollectors: []string{},
	}
}

// TestRouteInTwoPoolsShowsTheFullerOne: the table shows the pool nearest
// its maximum, marked (+1), and names the full one under the table; JSON
// lists both.
func TestRouteInTwoPoolsShowsTheFullerOne(t *testing.T) {
	t.Parallel()
	v, err := viewRoutes(twoPools(), Source{Kind: "exporter", URL: "http://localhost:9951"}, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	v.render(&b)
	out := b.String()
	for _, want := range []string{
		"source: the exporter at http://localhost:9951 (its numbers are /metrics')\n",
		"small(+1)  20/16 FULL",
		"POOL (+N): the route belongs to N more pools",
		"FULL: pool small holds 20 connections (12 in CLOSE_WAIT, 2 in CLOSE (reset, still held), 6 ESTABLISHED) for a maximum of 16\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FULL: pool big") {
		t.Errorf("big is not full:\n%s", out)
	}
	r := v.Rows[0]
	if r.Pool != "small" || !r.PoolFull || len(r.Pools) != 2 || r.Pools[0].Name != "big" || r.Pools[1].Name != "small" {
		t.Errorf("row %+v", r)
	}

	// --pool names the one to show.
	fl, err := ParseSocketFilter("", "", 0, "big")
	if err != nil {
		t.Fatal(err)
	}
	v, err = viewRoutes(twoPools(), Source{Kind: "exporter"}, fl)
	if err != nil {
		t.Fatal(err)
	}
	if r := v.Rows[0]; r.Pool != "big" || r.PoolFull || *r.PoolInUse != 20 || len(v.full) != 1 || v.full[0].Name != "small" {
		t.Errorf("--pool=big: row %+v, full %+v", r, v.full)
	}
}

// keys returns the keys of a JSON object.
func keys(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestJSONKeysAreStable: every route and socket object has the same keys
// whatever its values (no pool, an unknown age, the folded row): scripts
// may index them without checking.
func TestJSONKeysAreStable(t *testing.T) {
	t.Parallel()
	rd := twoPools()
	rd.Routes = append(rd.Routes,
		RouteReading{Process: "python3", Netns: "pod-a", Address: "192.168.1.1", Port: "5432", Pids: []int{7}, Established: 1, Pools: []string{}},
		RouteReading{Process: "other", Address: "other", Port: "other", Established: 3})
	rd.Sockets = []SocketReading{
		{Pid: 42, Process: "java", State: "close_wait", Local: "10.0.0.1:4000", Remote: "10.0.0.9:443", AgeSeconds: f(3), AgeSource: "kernel", Pools: []string{"big", "small"}, Netns: "host"},
		{Pid: 42, Process: "java", State: "close", AgeSource: "none", Netns: "host"},
	}
	want := map[string][]string{
		"route": {"close", "close_wait", "established", "max_fds", "netns", "oldest_close_wait_seconds", "open_fds", "pids", "pool", "pool_close", "pool_close_wait",
			"pool_full", "pool_in_use", "pool_max", "pools", "process", "remote_address", "remote_port"},
		"view": {"close_wait_total", "established_total", "failed_collectors", "matched", "routes", "series_folded", "source", "time",
			"unresolved_close_wait", "unrouted_close"},
		"socket": {"age_seconds", "age_source", "inode", "local", "netns", "pid", "pool", "pools", "process", "remote", "state", "unread_bytes"},
		"list":   {"close_total", "close_wait_total", "incomplete", "matched", "sockets", "source", "time", "unrouted_close"},
		"source": {"fallback", "kind", "unknown", "url"},
	}
	check := func(what string, raw json.RawMessage) {
		t.Helper()
		if got := keys(t, raw); !slices.Equal(got, want[what]) {
			t.Errorf("%s keys %v, want %v:\n%s", what, got, want[what], raw)
		}
	}
	v, err := viewRoutes(rd, Source{Kind: "kernel", Fallback: "--no-exporter", Unknown: []string{unknownRoutes, unknownAges}}, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := writeJSON(&b, v); err != nil {
		t.Fatal(err)
	}
	var view struct {
		Routes []json.RawMessage `json:"routes"`
		Source json.RawMessage   `json:"source"`
	}
	if err := json.Unmarshal(b.Bytes(), &view); err != nil {
		t.Fatal(err)
	}
	check("view", b.Bytes())
	check("source", view.Source)
	if len(view.Routes) != 3 {
		t.Fatalf("%d routes:\n%s", len(view.Routes), b.String())
	}
	for _, r := range view.Routes {
		check("route", r)
	}
	if n := strings.Count(b.String(), "\n"); n != 1 || !strings.HasSuffix(b.String(), "}\n") {
		t.Errorf("one object on one line, got %d lines:\n%s", n, b.String())
	}

	l, err := listSockets(rd, Source{Kind: "exporter"}, Filter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if err := writeJSON(&b, l); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Sockets []json.RawMessage `json:"sockets"`
	}
	if err := json.Unmarshal(b.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	check("list", b.Bytes())
	for _, s := range list.Sockets {
		check("socket", s)
	}
}

// TestWatchJSONIsOneLinePerRefresh: --watch --output json writes one
// object per line, each with the time of its reading, from a real
// exporter's endpoint (served by Handler's client side here).
func TestWatchJSONIsOneLinePerRefresh(t *testing.T) {
	t.Parallel()
	var served int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != ReadingPath {
			http.NotFound(w, r)
			return
		}
		served++
		rd := twoPools()
		rd.Time = rd.Time.Add(time.Duration(served) * time.Second)
		_ = json.NewEncoder(w).Encode(rd)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	var b bytes.Buffer
	err := Run(context.Background(), nil, nil, Options{Watch: true, Count: 3, Interval: time.Millisecond, Output: "json",
		Exporter: &ExporterClient{URL: u, Client: srv.Client()}}, &b)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), b.String())
	}
	for i, line := range lines {
		var v struct {
			Time   time.Time `json:"time"`
			Source Source    `json:"source"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %d: %v\n%s", i, err, line)
		}
		if want := twoPools().Time.Add(time.Duration(i+1) * time.Second); !v.Time.Equal(want) || v.Source.Kind != "exporter" {
			t.Errorf("line %d: time %v, source %+v; want the reading's time %v, the exporter", i, v.Time, v.Source, want)
		}
	}
}

// TestExporterClientTellsSilenceFromRefusal: nothing listening means no
// exporter (top reads the kernel); an answer that is not a reading is an
// error naming the URL.
func TestExporterClientTellsSilenceFromRefusal(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("sockets") {
		case "1":
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		default:
			http.Error(w, "nope", http.StatusForbidden)
		}
	}))
	u, _ := url.Parse(srv.URL)
	c := &ExporterClient{URL: u, Client: srv.Client()}
	if _, err := c.Read(context.Background(), false); err == nil || !strings.Contains(err.Error(), "403 Forbidden: nope") || isNoExporter(err) {
		t.Errorf("403: %v", err)
	}
	if _, err := c.Read(context.Background(), true); err == nil || !strings.Contains(err.Error(), "not a reading of tcpstate_exporter") || isNoExporter(err) {
		t.Errorf("another document: %v", err)
	}
	srv.Close()
	if _, err := c.Read(context.Background(), false); !isNoExporter(err) {
		t.Errorf("nothing listening: %v, want no exporter", err)
	}
}

func isNoExporter(err error) bool {
	_, ok := err.(errNoExporter)
	return ok
}
