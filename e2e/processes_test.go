package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// httpClient bounds every request the test makes.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// process is a server the test started: the exporter, Prometheus or
// Alertmanager.
type process struct {
	name   string
	addr   string // host:port it serves on
	cmd    *exec.Cmd
	output *testutil.SyncBuffer
	done   chan struct{}
	err    error // valid once done is closed
}

// diesWithTest makes the kernel send SIGTERM to a child when the test
// binary dies without running its clean-ups (killed, or panicking on
// -timeout), so no Prometheus or exporter outlives an aborted run.
func diesWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// startProcess runs bin with args, stops it when the test ends, and waits
// until GET readyPath on addr answers 200.
func startProcess(t *testing.T, name, addr, readyPath, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, addr: addr, output: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	p.cmd.SysProcAttr = diesWithTest()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("output of %s (%s):\n%s", name, strings.Join(p.cmd.Args, " "), tail(p.output.String(), 60))
		}
	})
	url := "http://" + addr + readyPath
	deadline := time.Now().Add(startupTimeout)
	for {
		resp, err := httpClient.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready (%v):\n%s", name, p.err, p.output)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s after %v:\n%s", name, url, startupTimeout, p.output)
		}
	}
}

// stop sends SIGTERM to the process the test started, and kills it if it
// has not exited ten seconds later.
func (p *process) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s (pid %d) still running 10s after SIGTERM: killed", p.name, p.cmd.Process.Pid)
	}
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startExporter runs the exporter with the pool configuration.
func startExporter(t *testing.T, config string) *process {
	t.Helper()
	addr := testutil.FreeAddr(t)
	return startProcess(t, "tcpstate_exporter", addr, "/", exporterBin,
		"--web.listen-address="+addr, "--config.file="+config,
		// Off by default (it costs); on here so that its panels are run with data.
		"--collector.memory",
		// The test holds its sockets for seconds, not minutes: with a short
		// stuck-after the stuck panels have data to show.
		"--collector.close-wait.stuck-after=1s")
}

// startAlertmanager runs Alertmanager with one route to the webhook, for
// every alert on its own (group_by: ['...']), notified within a second.
func startAlertmanager(t *testing.T, webhookURL string) *process {
	t.Helper()
	dir := t.TempDir()
	config := writeFile(t, dir, "alertmanager.yml", fmt.Sprintf(`route:
  receiver: webhook
  group_by: ['...']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: %q
        send_resolved: true
`, webhookURL))
	addr := testutil.FreeAddr(t)
	return startProcess(t, "alertmanager", addr, "/-/ready", "prometheus-alertmanager",
		"--web.listen-address="+addr,
		"--cluster.listen-address=", // else it binds 0.0.0.0:9094
		"--storage.path="+filepath.Join(dir, "data"),
		"--config.file="+config)
}

// startPrometheus runs Prometheus scraping the exporter and evaluating the
// rules every second, sending alerts to Alertmanager.
func startPrometheus(t *testing.T, exporterAddr, amAddr, rules string) *process {
	t.Helper()
	return startPrometheusScraping(t, exporterAddr, amAddr, rules, time.Second)
}

// startPrometheusScraping is startPrometheus with another scrape interval
// (and timeout); rules are still evaluated every second.
func startPrometheusScraping(t *testing.T, exporterAddr, amAddr, rules string, scrape time.Duration) *process {
	t.Helper()
	dir := t.TempDir()
	config := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: %[5]s
  scrape_timeout: %[5]s
  evaluation_interval: 1s
rule_files:
  - %[1]q
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%[2]q]
scrape_configs:
  - job_name: %[3]q
    static_configs:
      - targets: [%[4]q]
`, rules, amAddr, jobName, exporterAddr, scrape))
	addr := testutil.FreeAddr(t)
	return startProcess(t, "prometheus", addr, "/-/ready", "prometheus",
		"--web.listen-address="+addr,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--config.file="+config,
		// Without it the first alert goes out before Prometheus knows its
		// Alertmanager, is dropped, and the next try waits a minute.
		"--rules.alert.resend-delay=1s")
}

// sockhold is a running socket-holding helper.
type sockhold struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines []string // lines printed before "ready"
	done  chan struct{}
}

// startSockhold runs the helper and waits for its "ready" line. It holds
// its sockets until release closes its stdin (at the latest when the test
// ends; -hold ends it by itself should the test be killed).
func startSockhold(t *testing.T, args ...string) *sockhold {
	t.Helper()
	h := &sockhold{cmd: exec.Command(sockholdBin, append(args, "-stdin", "-hold=5m")...), done: make(chan struct{})}
	h.cmd.SysProcAttr = diesWithTest()
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &testutil.SyncBuffer{}
	h.cmd.Stderr = stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.release)
	ready := make(chan bool, 1)
	go func() {
		// Wait only once the pipe is read to its end, as os/exec requires.
		defer func() { _ = h.cmd.Wait(); close(h.done) }()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
			h.lines = append(h.lines, sc.Text())
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("sockhold %v ended before it was ready:\n%s", args, stderr)
		}
	case <-time.After(startupTimeout):
		t.Fatalf("sockhold %v not ready after %v:\n%s", args, startupTimeout, stderr)
	}
	return h
}

// release closes the helper's stdin, which makes it close its sockets and
// exit, and waits for that; it kills the helper after ten seconds.
func (h *sockhold) release() {
	if h.stdin == nil {
		return
	}
	h.stdin.Close()
	h.stdin = nil
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}
