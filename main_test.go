package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/e2e-output.txt from the binary's output")

// binary is the exporter and sockhold the socket-holding helper, built once
// for the tests in this package.
var binary, sockhold string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "tcpstate-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tcpstate_exporter")
	sockhold = filepath.Join(dir, "sockhold")
	if err := testutil.Build(map[string]string{binary: ".", sockhold: "./internal/sockhold"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// exporter is a running instance of the built binary.
type exporter struct {
	cmd    *exec.Cmd
	url    string
	stderr *testutil.SyncBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited is closed
}

// launch starts cmd as an exporter serving on addr and stops it when the
// test ends.
func launch(t *testing.T, cmd *exec.Cmd, addr string) *exporter {
	t.Helper()
	e := &exporter{cmd: cmd, url: "http://" + addr, stderr: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = e.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.err = cmd.Wait(); close(e.exited) }()
	t.Cleanup(func() { e.stop(t) })
	return e
}

// startExporter runs the binary with args and waits until it serves.
func startExporter(t *testing.T, args ...string) *exporter {
	t.Helper()
	addr := testutil.FreeAddr(t)
	e := launch(t, exec.Command(binary, append([]string{"--web.listen-address=" + addr}, args...)...), addr)
	e.waitServing(t)
	return e
}

// waitServing polls until the exporter answers HTTP, for at most 10 s.
func (e *exporter) waitServing(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(e.url + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-e.exited:
			t.Fatalf("exporter exited before serving: %v\n%s", e.err, e.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter not serving after 10s:\n%s", e.stderr)
		}
	}
}

// stop sends SIGTERM and expects a clean exit within a second.
func (e *exporter) stop(t *testing.T) {
	select {
	case <-e.exited:
		return
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
		if e.err != nil {
			t.Errorf("exporter exited with %v after SIGTERM:\n%s", e.err, e.stderr)
		}
	case <-time.After(time.Second):
		_ = e.cmd.Process.Kill()
		<-e.exited
		t.Errorf("exporter still running a second after SIGTERM")
	}
}

func (e *exporter) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// volatile families change from run to run: the golden file keeps their
// HELP and TYPE lines but not their samples.
var volatile = []string{
	"tcpstate_scrape_collector_duration_seconds",
	"tcpstate_snapshot_duration_seconds",
	"tcpstate_exporter_build_info",
	"tcpstate_config_last_reload_success_timestamp_seconds",
}

// stableExposition keeps the tcpstate_ lines of an exposition, HELP and TYPE
// included, without the samples of the volatile families.
func stableExposition(body string) string {
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		name, sample := line, true
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, sample = rest, false
		} else if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, sample = rest, false
		}
		if !strings.HasPrefix(name, "tcpstate_") {
			continue
		}
		name = name[:strings.IndexAny(name+" ", "{ ")]
		if sample && slices.Contains(volatile, name) {
			continue
		}
		out.WriteString(line + "\n")
	}
	return out.String()
}

func TestGoldenExposition(t *testing.T) {
	// --collector.memory is off by default; the golden file shows it too.
	e := startExporter(t, "--path.procfs=testdata/proc", "--config.file=testdata/config.yml", "--collector.memory")
	code, body := e.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	got := stableExposition(body)
	const golden = "testdata/e2e-output.txt"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run `make golden` to create it)", err)
	}
	if got != string(want) {
		t.Errorf("exposition differs from %s (if the change is intended, run `make golden` and review the diff):\n%s", golden, lineDiff(string(want), got))
	}
	for _, v := range volatile {
		if !strings.Contains(body, "\n"+v) {
			t.Errorf("%s missing from the exposition", v)
		}
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

func TestLandingPageLinksToMetrics(t *testing.T) {
	e := startExporter(t, "--path.procfs=testdata/proc")
	code, body := e.get(t, "/")
	if code != http.StatusOK || !strings.Contains(body, `href="/metrics"`) {
		t.Fatalf("landing page: %d\n%s", code, body)
	}
}

// runToExit runs the binary expecting it to stop by itself.
func runToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		// logfmt escapes quotes; the tests look for the text a person reads.
		text := strings.ReplaceAll(out.String(), `\"`, `"`)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), text
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, text
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%v still running after 10s; output:\n%s", args, out.String())
		return 0, ""
	}
}

func TestBadConfigExitsWithoutServing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte("pools:\n  - name: search\n    remote_address: 10.0.0.300/8\n    max: 400\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	code, out := runToExit(t, "--config.file="+path, "--web.listen-address="+addr)
	if code == 0 {
		t.Fatalf("exit code 0 with a bad config; output:\n%s", out)
	}
	want := path + `:3: pool "search": remote_address "10.0.0.300/8": not an IP address or CIDR`
	if !strings.Contains(out, want) {
		t.Errorf("output does not name the bad value; want %q in:\n%s", want, out)
	}
	if strings.Contains(out, "Listening on") {
		t.Errorf("served with a bad config:\n%s", out)
	}
}

func TestBadFlagsAreClearErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--collector.process.remote-states=close_wait,closed"}, `unknown TCP state "closed"`},
		{[]string{"--collector.max-series=0"}, "--collector.max-series=0: out of range; it takes 1 or more"},
		{[]string{"--log.level=loud"}, `--log.level="loud": must be one of debug, info, warn, error`},
		{[]string{"--log.format=xml"}, `--log.format="xml": must be one of logfmt, json`},
		{[]string{"--collector.tcp.source=ebpf"}, `--collector.tcp.source="ebpf": must be one of auto, netlink, procfs`},
		{[]string{"--collector.close-wait.stuck-after=0s"}, "--collector.close-wait.stuck-after=0s: out of range"},
		{[]string{"--no-such-flag"}, "unknown long flag '--no-such-flag'"},
	}
	for _, c := range cases {
		code, out := runToExit(t, append(c.args, "--web.listen-address="+testutil.FreeAddr(t))...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, want non-zero and %q in:\n%s", c.args, code, c.want, out)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	code, out := runToExit(t, "--version")
	if code != 0 || !strings.Contains(out, "tcpstate_exporter, version") {
		t.Fatalf("--version: exit %d:\n%s", code, out)
	}
}

func TestDisabledCollectorsAreAbsent(t *testing.T) {
	e := startExporter(t, "--path.procfs=testdata/proc", "--collector.disable-defaults", "--collector.connections")
	_, body := e.get(t, "/metrics")
	if !strings.Contains(body, `tcpstate_connections{family="ipv4",state="close_wait"} 4`) {
		t.Errorf("connections collector missing:\n%s", body)
	}
	for _, absent := range []string{"tcpstate_process_connections", "tcpstate_remote_port_connections", `collector="process"`} {
		if strings.Contains(body, absent) {
			t.Errorf("%s present although its collector is off", absent)
		}
	}
	// Without a collector that needs owners, /proc/PID/fd is not walked.
	if !strings.Contains(body, `tcpstate_snapshot_duration_seconds{stage="owners"} 0`+"\n") {
		t.Errorf("the fd walk ran although no collector needs it")
	}
}

func TestConfigErrorsNameEveryBadPool(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	doc := "pools:\n  - name: search\n    remote_address: 10.0.0.300/8\n    max: 400\n  - name: db\n    remote_port: 5432\n    max: 0\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runToExit(t, "--config.file="+path, "--web.listen-address="+testutil.FreeAddr(t))
	if code == 0 {
		t.Fatalf("exit code 0 with two bad pools:\n%s", out)
	}
	for _, want := range []string{
		path + `:3: pool "search": remote_address "10.0.0.300/8": not an IP address or CIDR`,
		path + `:7: pool "db": max "0": must be a whole number greater than 0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

func TestEmptyConfigFileWarns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e := startExporter(t, "--path.procfs=testdata/proc", "--config.file="+path)
	if _, body := e.get(t, "/metrics"); strings.Contains(body, "tcpstate_pool_connections") {
		t.Errorf("pool metrics without pools")
	}
	const want = "the config file declares no pools"
	if log := e.stderr.String(); !strings.Contains(log, want) || !strings.Contains(log, "file="+path) {
		t.Errorf("want a warning %q naming %s in:\n%s", want, path, log)
	}
	// A config with pools says nothing of the kind.
	e = startExporter(t, "--path.procfs=testdata/proc", "--config.file=testdata/config.yml")
	e.get(t, "/metrics")
	if strings.Contains(e.stderr.String(), want) {
		t.Errorf("warned about a config that declares pools:\n%s", e.stderr)
	}
}

// TestConfigErrorsThroughTheBinary: a pool with a bad regexp and max 0
// reports both; an indentation error names its own line.
func TestConfigErrorsThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		doc  string
		want []string
	}{
		{"pools:\n  - name: search\n    process: \"java(\"\n    max: 0\n", []string{
			`:3: pool "search": process "java(": invalid regexp`,
			`:4: pool "search": max "0": must be a whole number greater than 0`}},
		{"pools:\n  - name: search\n    max: 4\n   remote_port: 9000\n", []string{
			`:4: yaml: did not find expected '-' indicator`}},
	} {
		path := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(path, []byte(c.doc), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := runToExit(t, "--config.file="+path, "--web.listen-address="+testutil.FreeAddr(t))
		if code == 0 {
			t.Fatalf("exit 0 with a bad config:\n%s", out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, path+w) {
				t.Errorf("want %q in:\n%s", path+w, out)
			}
		}
	}
}
