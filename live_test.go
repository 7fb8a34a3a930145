package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// helper is a running sockhold process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines []string
}

// startHelper runs sockhold with args and waits for its "ready" line. The
// helper ends when the test closes its stdin.
func startHelper(t *testing.T, args ...string) *helper {
	t.Helper()
	return startHelperIn(t, nil, args...)
}

// startHelperIn is startHelper with a command prefix, such as
// `ip netns exec NAME`.
func startHelperIn(t *testing.T, prefix []string, args ...string) *helper {
	t.Helper()
	argv := append(append(slices.Clone(prefix), sockhold), append(args, "-stdin", "-hold=5m")...)
	h := &helper{cmd: exec.Command(argv[0], argv[1:]...)}
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.cmd.Stderr = os.Stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.release)
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- nil
				go func() { _, _ = io.Copy(io.Discard, stdout) }()
				return
			}
			h.lines = append(h.lines, sc.Text())
		}
		ready <- fmt.Errorf("sockhold %v ended before it was ready", args)
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("sockhold %v not ready after a minute", args)
	}
	return h
}

// release closes the helper's stdin and waits for it to exit.
func (h *helper) release() {
	if h.cmd.ProcessState != nil {
		return
	}
	h.stdin.Close()
	done := make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
	}
}

// parseExposition maps each sample line's series (as printed) to its value.
func parseExposition(t *testing.T, body string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestLiveCloseWaitOnLoopback holds real sockets in CLOSE_WAIT toward an IPv4
// and an IPv6 listener and checks the exact counts in every family.
func TestLiveCloseWaitOnLoopback(t *testing.T) {
	const (
		closeWait4, closeWait6     = 7, 4
		established4, established6 = 3, 2
		client, server             = "tcpst-client", "tcpst-upstream"
	)
	srv := startHelper(t, "serve", "-comm", server, "-listen", "127.0.0.2:0", "-listen", "[::1]:0")
	if len(srv.lines) != 2 {
		t.Fatalf("server printed %q", srv.lines)
	}
	port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
	clientHelper := startHelper(t, "connect", "-comm", client,
		"-close-wait", "127.0.0.2:"+port+"="+strconv.Itoa(closeWait4),
		"-close-wait", "[::1]:"+port+"="+strconv.Itoa(closeWait6),
		"-established", "127.0.0.2:"+port+"="+strconv.Itoa(established4),
		"-established", "[::1]:"+port+"="+strconv.Itoa(established6))

	config := filepath.Join(t.TempDir(), "pools.yml")
	pools := fmt.Sprintf(`pools:
  - name: upstream
    remote_port: %[1]s
    max: 400
  - name: client-v4
    process: "^%[2]s$"
    remote_address: 127.0.0.0/8
    remote_port: %[1]s
    max: 10
  - name: someone-else
    process: "^not-%[2]s$"
    remote_port: %[1]s
    max: 10
`, port, client)
	if err := os.WriteFile(config, []byte(pools), 0o644); err != nil {
		t.Fatal(err)
	}
	e := startExporter(t, "--config.file="+config)
	code, body := e.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	got := parseExposition(t, body)

	cw, est := float64(closeWait4+closeWait6), float64(established4+established6)
	want := map[string]float64{
		`tcpstate_remote_port_connections{remote_port="` + port + `",state="close_wait"}`:                                                                      cw,
		`tcpstate_remote_port_connections{remote_port="` + port + `",state="established"}`:                                                                     est,
		`tcpstate_local_port_connections{local_port="` + port + `",state="listen"}`:                                                                            2,
		`tcpstate_local_port_connections{local_port="` + port + `",state="established"}`:                                                                       est,
		`tcpstate_process_connections{netns="host",process="` + client + `",state="close_wait"}`:                                                               cw,
		`tcpstate_process_connections{netns="host",process="` + client + `",state="established"}`:                                                              est,
		`tcpstate_process_connections{netns="host",process="` + server + `",state="listen"}`:                                                                   2,
		`tcpstate_process_connections{netns="host",process="` + server + `",state="established"}`:                                                              est,
		`tcpstate_process_remote_connections{netns="host",process="` + client + `",remote_address="127.0.0.2",remote_port="` + port + `",state="close_wait"}`:  closeWait4,
		`tcpstate_process_remote_connections{netns="host",process="` + client + `",remote_address="::1",remote_port="` + port + `",state="close_wait"}`:        closeWait6,
		`tcpstate_process_remote_connections{netns="host",process="` + client + `",remote_address="127.0.0.2",remote_port="` + port + `",state="established"}`: established4,
		`tcpstate_process_remote_connections{netns="host",process="` + client + `",remote_address="::1",remote_port="` + port + `",state="established"}`:       established6,
		`tcpstate_pool_connections{pool="upstream",state="close_wait"}`:                                                                                        cw,
		`tcpstate_pool_connections{pool="upstream",state="established"}`:                                                                                       est,
		`tcpstate_pool_max_connections{pool="upstream"}`:                                                                                                       400,
		`tcpstate_pool_connections{pool="client-v4",state="close_wait"}`:                                                                                       closeWait4,
		`tcpstate_pool_connections{pool="client-v4",state="established"}`:                                                                                      established4,
		`tcpstate_pool_max_connections{pool="client-v4"}`:                                                                                                      10,
		`tcpstate_pool_connections{pool="someone-else",state="close_wait"}`:                                                                                    0,
		`tcpstate_pool_connections{pool="someone-else",state="established"}`:                                                                                   0,
	}
	for series, w := range want {
		if v, ok := got[series]; !ok || v != w {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, w)
		}
	}
	// The host-wide counts include at least the held sockets.
	if v := got[`tcpstate_connections{family="ipv4",state="close_wait"}`]; v < closeWait4 {
		t.Errorf("ipv4 close_wait = %v, want at least %d", v, closeWait4)
	}
	if v := got[`tcpstate_connections{family="ipv6",state="close_wait"}`]; v < closeWait6 {
		t.Errorf("ipv6 close_wait = %v, want at least %d", v, closeWait6)
	}
	for _, c := range []string{"connections", "queues", "ports", "process", "pools"} {
		if got[`tcpstate_scrape_collector_success{collector="`+c+`"}`] != 1 {
			t.Errorf("collector %s did not succeed", c)
		}
	}

	// `top` shows the same numbers, with the pids and the fullest pool
	// of each route: the IPv4 route belongs to upstream (16/400) and to
	// client-v4, full at 10/10, which must not hide behind upstream. Only
	// this test's client: the host's other routes may add columns (NETNS).
	code, out := runToExit(t, "top", "--no-exporter", "--config.file="+config, "--limit=0", "--process=^"+client+"$")
	if code != 0 {
		t.Fatalf("top: exit %d\n%s", code, out)
	}
	// OLDEST is the kernel's age of sockets a moment old (netlink), or "-"
	// (procfs: a single run has seen them once).
	pid := strconv.Itoa(clientHelper.cmd.Process.Pid)
	inUse := strconv.Itoa(closeWait4+closeWait6+established4+established6) + "/400" // the pool's, every route
	for _, want := range [][]string{
		{client, pid, "127.0.0.2:" + port, strconv.Itoa(closeWait4), strconv.Itoa(established4), "client-v4(+1)", "10/10", "FULL"},
		{client, pid, "[::1]:" + port, strconv.Itoa(closeWait6), strconv.Itoa(established6), "upstream", inUse},
	} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			// ... OLDEST FDS
			if len(f) != len(want)+2 || strings.Join(f[:len(want)], " ") != strings.Join(want, " ") {
				continue
			}
			age, err := time.ParseDuration(f[len(want)])
			found = f[len(want)] == "-" || (err == nil && age < time.Minute)
		}
		if !found {
			t.Errorf("top has no row %q with an OLDEST of - or under a minute:\n%s", want, out)
		}
	}
	if want := "FULL: pool client-v4 holds 10 connections (7 in CLOSE_WAIT, 3 ESTABLISHED) for a maximum of 10\n"; !strings.Contains(out, want) {
		t.Errorf("want %q under the table:\n%s", want, out)
	}
}

// TestLiveCloseWaitUnread holds three kinds of CLOSE_WAIT sockets toward
// one endpoint: idle ones (the FIN never read, Recv-Q 1), ones holding a
// response nobody read (Recv-Q 101) and ones read to the end of stream
// (Recv-Q 0). Only the second kind holds data.
func TestLiveCloseWaitUnread(t *testing.T) {
	const (
		idle, unread, drained = 5, 3, 2
		comm                  = "tcpst-unread"
	)
	srv := startHelper(t, "serve", "-comm", "tcpst-unread-s", "-listen", "127.0.0.2:0", "-listen", "[::1]:0", "-response-bytes", "100")
	port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
	target := "127.0.0.2:" + port
	startHelper(t, "connect", "-comm", comm,
		"-close-wait-idle", target+"="+strconv.Itoa(idle),
		"-close-wait-unread", target+"="+strconv.Itoa(unread),
		"-close-wait", target+"="+strconv.Itoa(drained))
	// A second route of the same process, with idle sockets only.
	startHelper(t, "connect", "-comm", comm, "-close-wait-idle", "[::1]:"+port+"=4")

	m := parseExposition(t, mustGet(t, startExporter(t)))
	route := `{netns="host",process="` + comm + `",remote_address="127.0.0.2",remote_port="` + port + `"}`
	want := map[string]float64{
		`tcpstate_process_remote_connections{netns="host",process="` + comm + `",remote_address="127.0.0.2",remote_port="` + port + `",state="close_wait"}`: idle + unread + drained,
		"tcpstate_process_remote_close_wait_unread_sockets" + route:                                                                                         unread,
		`tcpstate_process_remote_close_wait_unread_sockets{netns="host",process="` + comm + `",remote_address="::1",remote_port="` + port + `"}`:            0,
		`tcpstate_series_truncated{metric="tcpstate_process_remote_close_wait_unread_sockets"}`:                                                             0,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	// The host's other sockets add to the queue bytes, but the held ones
	// contribute exactly their unread responses.
	if got := m[`tcpstate_receive_queue_bytes{state="close_wait"}`]; got < unread*100 {
		t.Errorf(`tcpstate_receive_queue_bytes{state="close_wait"} = %v, want at least %d`, got, unread*100)
	}
}

// TestLiveCloseWaitKernelAges holds sockets in CLOSE_WAIT for a few seconds
// before the exporter starts: with the netlink source its first scrape
// already knows their age from the kernel's clock, and so does a restarted
// exporter's; fresh sockets beside them are not stuck; `top --sockets`
// names each of them.
func TestLiveCloseWaitKernelAges(t *testing.T) {
	if !netlinkWorks(t) {
		t.Skip("netlink sock_diag does not answer here")
	}
	const (
		old, fresh = 4, 3
		comm       = "tcpst-aging"
		stuckAfter = 2 * time.Second
		held       = 3 * time.Second // before the exporter starts
	)
	srv := startHelper(t, "serve", "-comm", "tcpst-age-srv", "-listen", "127.0.0.2:0")
	port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
	target := "127.0.0.2:" + port
	// No keepalive: nothing the server sends restarts the kernel's clock.
	oldHelper := startHelper(t, "connect", "-comm", comm, "-keepalive=false", "-close-wait", target+"="+strconv.Itoa(old))
	heldSince := time.Now() // the old sockets are in CLOSE_WAIT by now
	config := filepath.Join(t.TempDir(), "pools.yml")
	if err := os.WriteFile(config, []byte("pools:\n  - name: aging\n    remote_port: "+port+"\n    max: 100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(held)

	route := `{netns="host",process="` + comm + `",remote_address="127.0.0.2",remote_port="` + port + `"}`
	ages := []string{"tcpstate_process_remote_close_wait_oldest_seconds" + route, `tcpstate_pool_close_wait_oldest_seconds{pool="aging"}`}
	stucks := []string{"tcpstate_process_remote_close_wait_stuck_sockets" + route, `tcpstate_pool_close_wait_stuck_sockets{pool="aging"}`}
	check := func(what string, m map[string]float64, wantStuck int, orStuck ...int) {
		t.Helper()
		truth := time.Since(heldSince).Seconds()
		for _, k := range ages {
			if got := m[k]; got < held.Seconds()-1 || got > truth {
				t.Errorf("%s: %s = %.2fs; the oldest sockets are %.2fs old (held %v before the exporter started)", what, k, got, truth, held)
			}
		}
		for _, k := range stucks {
			if m[k] != float64(wantStuck) && !slices.Contains(orStuck, int(m[k])) {
				t.Errorf("%s: %s = %v, want %d %v", what, k, m[k], wantStuck, orStuck)
			}
		}
		if got := m[`tcpstate_close_wait_age_sockets{source="kernel"}`]; got < float64(wantStuck) {
			t.Errorf("%s: %v CLOSE_WAIT sockets with a kernel age, want at least %d", what, got, wantStuck)
		}
	}
	args := []string{"--config.file=" + config, "--collector.close-wait.stuck-after=" + stuckAfter.String(), "--collector.tcp.source=netlink"}
	e := startExporter(t, args...)
	check("first scrape", parseExposition(t, mustGet(t, e)), old)

	// Fresh sockets on the same route are not stuck.
	freshStarted := time.Now()
	freshHelper := startHelper(t, "connect", "-comm", comm, "-keepalive=false", "-close-wait", target+"="+strconv.Itoa(fresh))
	freshReady := time.Now()
	m := parseExposition(t, mustGet(t, e))
	if got := m[`tcpstate_process_remote_connections{netns="host",process="`+comm+`",remote_address="127.0.0.2",remote_port="`+port+`",state="close_wait"}`]; got != old+fresh {
		t.Errorf("route holds %v CLOSE_WAIT sockets, want %d", got, old+fresh)
	}
	check("with fresh sockets", m, old)
	// Read without dumping every age again: the fresh sockets' were looked
	// up one by one.
	if got := m[`tcpstate_close_wait_age_sockets{source="kernel"}`]; got < old+fresh {
		t.Errorf("with fresh sockets: %v CLOSE_WAIT sockets with a kernel age, want at least %d", got, old+fresh)
	}
	if got := m["tcpstate_close_wait_stuck_after_seconds"]; got != stuckAfter.Seconds() {
		t.Errorf("tcpstate_close_wait_stuck_after_seconds = %v, want --collector.close-wait.stuck-after %v", got, stuckAfter.Seconds())
	}

	// A restarted exporter knows the ages at once too.
	e.stop(t)
	e = startExporter(t, args...)
	scrapeBegun := time.Now()
	m = parseExposition(t, mustGet(t, e))
	// On a busy host the restart can take longer than stuck-after: the fresh
	// sockets are stuck too when they surely are by the clock around the
	// scrape, and may be when the clock cannot tell.
	switch youngest, oldest := scrapeBegun.Sub(freshReady), time.Since(freshStarted); {
	case youngest >= stuckAfter:
		check("after a restart", m, old+fresh)
	case oldest < stuckAfter:
		check("after a restart", m, old)
	default:
		check("after a restart", m, old, old+fresh)
	}
	t.Logf("oldest age after the restart %.2fs, true age %.2fs", m[ages[0]], time.Since(heldSince).Seconds())

	// top --sockets names every socket: its pid, local port and age.
	code, out := runToExit(t, "top", "--no-exporter", "--sockets", "--process=^"+comm+"$", "--config.file="+config, "--output=json", "--log.level=error")
	if code != 0 {
		t.Fatalf("top --sockets: exit %d\n%s", code, out)
	}
	var list struct {
		Sockets []struct {
			Pid        int      `json:"pid"`
			Process    string   `json:"process"`
			Local      string   `json:"local"`
			Remote     string   `json:"remote"`
			AgeSeconds *float64 `json:"age_seconds"`
			AgeSource  string   `json:"age_source"`
			Pool       string   `json:"pool"`
		} `json:"sockets"`
		Matched int `json:"matched"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("top --sockets --output=json is not JSON: %v\n%s", err, out)
	}
	if list.Matched != old+fresh || len(list.Sockets) != old+fresh {
		t.Fatalf("top --sockets listed %d of %d sockets, want %d:\n%s", len(list.Sockets), list.Matched, old+fresh, out)
	}
	locals := map[string]bool{}
	for i, s := range list.Sockets {
		wantPid := oldHelper.cmd.Process.Pid
		if i >= old { // oldest first
			wantPid = freshHelper.cmd.Process.Pid
		}
		if s.Pid != wantPid || s.Process != comm || s.Remote != target || s.Pool != "aging" || s.AgeSource != "kernel" || s.AgeSeconds == nil {
			t.Errorf("socket %d: %+v; want pid %d, %s, toward %s, pool aging, a kernel age", i, s, wantPid, comm, target)
			continue
		}
		if i < old && *s.AgeSeconds < held.Seconds() {
			t.Errorf("socket %d (old): age %.2fs, want at least %v", i, *s.AgeSeconds, held)
		}
		locals[s.Local] = true
	}
	if len(locals) != old+fresh {
		t.Errorf("local endpoints %v: want %d distinct", locals, old+fresh)
	}
	// The table names the same local ports.
	code, out = runToExit(t, "top", "--no-exporter", "--sockets", "--remote-port="+port)
	if code != 0 {
		t.Fatalf("top --sockets: exit %d\n%s", code, out)
	}
	for l := range locals {
		if !strings.Contains(out, " "+l+" ") {
			t.Errorf("top --sockets table lacks %s:\n%s", l, out)
		}
	}
}

// TestLiveCloseWaitKeepalive: a CLOSE_WAIT socket that sends keepalive probes
// every second, answered by the server while it lingers in FIN_WAIT2, keeps
// restarting the kernel's last-ACK clock; the age the exporter reports
// must still never go backwards.
func TestLiveCloseWaitKeepalive(t *testing.T) {
	if !netlinkWorks(t) {
		t.Skip("netlink sock_diag does not answer here")
	}
	const n = 3
	srv := startHelper(t, "serve", "-comm", "tcpst-ka-srv", "-listen", "127.0.0.2:0")
	port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
	startHelper(t, "connect", "-comm", "tcpst-ka", "-keepalive-idle=1s", "-close-wait", "127.0.0.2:"+port+"="+strconv.Itoa(n))
	e := startExporter(t, "--collector.tcp.source=netlink")
	key := `tcpstate_process_remote_close_wait_oldest_seconds{netns="host",process="tcpst-ka",remote_address="127.0.0.2",remote_port="` + port + `"}`
	// The age counts at least from the first scrape's reading: from when
	// the first scrape returned to when the last one began is a lower bound
	// that holds however long scrapes take on a busy host.
	var firstDone, lastBegun time.Time
	prev := -1.0
	for i := 0; i < 8; i++ {
		lastBegun = time.Now()
		m := parseExposition(t, mustGet(t, e))
		if i == 0 {
			firstDone = time.Now()
		}
		age, ok := m[key]
		if !ok {
			t.Fatalf("no %s", key)
		}
		if age < prev {
			t.Errorf("scrape %d: age went backwards, %.3fs after %.3fs", i, age, prev)
		}
		prev = age
		time.Sleep(500 * time.Millisecond)
	}
	elapsed := lastBegun.Sub(firstDone).Seconds()
	if prev < elapsed {
		t.Errorf("age %.2fs at a scrape begun %.2fs after the first returned: it should count at least from the first scrape", prev, elapsed)
	}
	// The probes did restart the kernel's clock: ss shows a last ACK
	// younger than the age reported.
	out, err := exec.Command("ss", "-tinH", "state", "close-wait", "dport", "= :"+port).CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v\n%s", err, out)
	}
	// ss prints one line of tcp_info per socket, with lastack:MS unless
	// the last ACK came within the current millisecond (0).
	var lastacks []int
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, "rtt:") {
			continue
		}
		ms := 0
		if m := regexp.MustCompile(`lastack:(\d+)`).FindStringSubmatch(line); m != nil {
			ms, _ = strconv.Atoi(m[1])
		}
		lastacks = append(lastacks, ms)
	}
	if len(lastacks) != n {
		t.Fatalf("ss lists %d CLOSE_WAIT sockets with tcp_info, want %d:\n%s", len(lastacks), n, out)
	}
	for _, ms := range lastacks {
		if float64(ms)/1000 > prev-1 {
			t.Errorf("lastack %dms: the keepalive probes did not restart the kernel's clock (age reported %.2fs), the test proves nothing", ms, prev)
		}
	}
	t.Logf("age reported %.2fs after %.2fs of scrapes; ss lastack %v", prev, elapsed, lastacks)
}

// TestLiveCloseWaitProcfsAges: the procfs source has no kernel clock, so
// ages count from the exporter's first sighting, and the exporter says so.
func TestLiveCloseWaitProcfsAges(t *testing.T) {
	const n = 3
	srv := startHelper(t, "serve", "-comm", "tcpst-pf-srv", "-listen", "127.0.0.2:0")
	port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
	startHelper(t, "connect", "-comm", "tcpst-pf", "-keepalive=false", "-close-wait", "127.0.0.2:"+port+"="+strconv.Itoa(n))
	time.Sleep(1500 * time.Millisecond)
	// First-seen ages start at the exporter's first reading: bounds from
	// the clock around the scrapes hold however long they take.
	started := time.Now()
	e := startExporter(t, "--collector.tcp.source=procfs", "--no-collector.netns")
	key := `tcpstate_process_remote_close_wait_oldest_seconds{netns="host",process="tcpst-pf",remote_address="127.0.0.2",remote_port="` + port + `"}`
	m := parseExposition(t, mustGet(t, e))
	firstDone := time.Now()
	if got, most := m[key], firstDone.Sub(started).Seconds(); got > most {
		t.Errorf("first scrape: %s = %.2f, more than the %.2f s since the exporter started; a first-seen age starts at 0", key, got, most)
	}
	if m[`tcpstate_close_wait_age_sockets{source="kernel"}`] != 0 || m[`tcpstate_close_wait_age_sockets{source="first_seen"}`] < n {
		t.Errorf("age sources kernel %v, first_seen %v; want 0 and at least %d", m[`tcpstate_close_wait_age_sockets{source="kernel"}`], m[`tcpstate_close_wait_age_sockets{source="first_seen"}`], n)
	}
	time.Sleep(time.Second)
	secondBegun := time.Now()
	got := parseExposition(t, mustGet(t, e))[key]
	least, most := secondBegun.Sub(firstDone).Seconds(), time.Since(started).Seconds()
	if got < least || got > most {
		t.Errorf("second scrape a second later: %s = %.2f; want between %.2f and %.2f (the clock around the scrapes)", key, got, least, most)
	}
	code, out := runToExit(t, "top", "--no-exporter", "--sockets", "--collector.tcp.source=procfs", "--no-collector.netns", "--process=^tcpst-pf$")
	if code != 0 || !strings.Contains(out, "AGE -: the kernel gives no age") {
		t.Errorf("top --sockets on procfs should say why ages are missing (exit %d):\n%s", code, out)
	}
}

// netlinkWorks tells whether sock_diag answers here.
func netlinkWorks(t *testing.T) bool {
	t.Helper()
	code, out := runToExit(t, "top", "--no-exporter", "--collector.tcp.source=netlink", "--limit=1")
	return code == 0 && !strings.Contains(out, "netlink")
}

// TestLiveNetworkNamespace holds CLOSE_WAIT sockets inside a network
// namespace the test creates: the host's tables do not list them, so only
// --collector.netns (the default) counts them, attributed to the process
// inside.
func TestLiveNetworkNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating a network namespace needs root")
	}
	name := fmt.Sprintf("tcpst-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del: %v\n%s", err, out)
		}
	})
	in := []string{"ip", "netns", "exec", name}
	if out, err := exec.Command("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v\n%s", err, out)
	}
	const closeWait, established = 5, 2
	srv := startHelperIn(t, in, "serve", "-comm", "tcpst-ns-srv", "-listen", "127.0.0.1:0")
	port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
	startHelperIn(t, in, "connect", "-comm", "tcpst-ns-cli",
		"-close-wait", "127.0.0.1:"+port+"="+strconv.Itoa(closeWait),
		"-established", "127.0.0.1:"+port+"="+strconv.Itoa(established))

	route := `tcpstate_process_remote_connections{netns="tcpst-ns-srv",process="tcpst-ns-cli",remote_address="127.0.0.1",remote_port="` + port + `",state="close_wait"}`
	without := parseExposition(t, mustGet(t, startExporter(t, "--no-collector.netns")))
	if v, ok := without[route]; ok {
		t.Errorf("without --collector.netns the namespace's sockets should be invisible, got %v", v)
	}

	m := parseExposition(t, mustGet(t, startExporter(t))) // --collector.netns is on by default
	want := map[string]float64{
		route: closeWait,
		`tcpstate_process_connections{netns="tcpst-ns-srv",process="tcpst-ns-cli",state="close_wait"}`: closeWait,
		`tcpstate_process_connections{netns="tcpst-ns-srv",process="tcpst-ns-srv",state="listen"}`:     1,
		`tcpstate_local_port_connections{local_port="` + port + `",state="listen"}`:                    1,
		`tcpstate_local_port_connections{local_port="` + port + `",state="established"}`:               established,
		`tcpstate_netns_connections{netns="tcpst-ns-srv",state="close_wait"}`:                          closeWait,
		`tcpstate_netns_connections{netns="tcpst-ns-srv",state="established"}`:                         2 * established,
		`tcpstate_netns_connections{netns="tcpst-ns-srv",state="listen"}`:                              1,
		`tcpstate_scrape_collector_success{collector="connections"}`:                                   1,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	// The namespace's sockets count in the host-wide totals too.
	if m[`tcpstate_connections{family="ipv4",state="close_wait"}`] < closeWait {
		t.Errorf("host-wide close_wait %v does not include the namespace's", m[`tcpstate_connections{family="ipv4",state="close_wait"}`])
	}
	if m[`tcpstate_netns_connections{netns="host",state="listen"}`] < 1 {
		t.Errorf("the exporter's own namespace should read host and hold its listener")
	}
}

// TestLiveDeniedProcessesAreNamed runs the exporter as root without
// CAP_DAC_READ_SEARCH, CAP_DAC_OVERRIDE and CAP_SYS_PTRACE beside a
// root-owned process with every capability holding CLOSE_WAIT sockets: the
// kernel refuses that process's /proc/PID/fd, and the log must name it, the
// errno, and the capabilities really missing; with every capability the
// log must not tell to grant them.
func TestLiveDeniedProcessesAreNamed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the exporter drops capabilities a root process has")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skipf("needs setpriv (util-linux): %v", err)
	}
	srv := startHelper(t, "serve", "-comm", "tcpst-deny-srv", "-listen", "127.0.0.2:0")
	port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
	client := startHelper(t, "connect", "-comm", "tcpst-denied", "-close-wait", "127.0.0.2:"+port+"=3")
	pid := strconv.Itoa(client.cmd.Process.Pid)

	addr := testutil.FreeAddr(t)
	e := launch(t, exec.Command(setpriv, "--inh-caps=-all", "--bounding-set=-dac_read_search,-dac_override,-sys_ptrace",
		binary, "--web.listen-address="+addr), addr)
	e.waitServing(t)
	m := parseExposition(t, mustGet(t, e))
	if _, named := m[`tcpstate_process_connections{netns="host",process="tcpst-denied",state="close_wait"}`]; named {
		t.Fatal("the exporter read the fds of a process it should be denied")
	}
	if m[`tcpstate_unresolved_sockets{state="close_wait"}`] < 3 {
		t.Errorf("unresolved close_wait %v, want at least the 3 held", m[`tcpstate_unresolved_sockets{state="close_wait"}`])
	}
	log := strings.ReplaceAll(e.stderr.String(), `\"`, `"`)
	for _, want := range []string{"cannot read /proc/PID/fd of ", "(EACCES)", "The exporter lacks CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE", "capabilities_missing=CAP_DAC_READ_SEARCH,CAP_SYS_PTRACE"} {
		if !strings.Contains(log, want) {
			t.Errorf("want %q in the log:\n%s", want, log)
		}
	}
	// The client is named when it is among the first pids listed, and
	// counted in processes_denied in any case.
	if !strings.Contains(log, "processes_denied=") {
		t.Errorf("no processes_denied in the log:\n%s", log)
	}
	t.Logf("client pid %s; log:\n%s", pid, log)

	full := startExporter(t)
	m = parseExposition(t, mustGet(t, full))
	if m[`tcpstate_process_connections{netns="host",process="tcpst-denied",state="close_wait"}`] != 3 {
		t.Errorf("with every capability the client's sockets are not attributed")
	}
	if log := full.stderr.String(); strings.Contains(log, "lacks CAP_") || strings.Contains(log, "grant CAP_") {
		t.Errorf("root with every capability was told to grant capabilities:\n%s", log)
	}
}

// TestLiveFileCapabilitiesRaised runs the exporter as nobody from a binary
// with the image's file capabilities, cap_dac_read_search,cap_sys_ptrace=p,
// beside a root-owned process holding CLOSE_WAIT sockets:
//   - with both in the bounding set, every thread of the exporter has them
//     effective and the sockets are attributed;
//   - with neither (a runtime that withholds them), the binary still
//     starts, counts the sockets unresolved and warns once in two scrapes;
//   - a binary linking cgo cannot raise them on every thread and says so.
func TestLiveFileCapabilitiesRaised(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: sets file capabilities and runs the exporter as nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skipf("needs setpriv (util-linux): %v", err)
	}
	setcap, err := exec.LookPath("setcap")
	if err != nil {
		t.Skipf("needs setcap (libcap2-bin): %v", err)
	}
	// Nobody must reach the binaries: not under TestMain's 0700 directory.
	dir, err := os.MkdirTemp("", "tcpstate-filecaps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	static := filepath.Join(dir, "tcpstate_exporter")
	build := exec.Command("go", "build", "-o", static, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build with CGO_ENABLED=0: %v", err)
	}
	filecaps := func(path string) {
		t.Helper()
		if out, err := exec.Command(setcap, "cap_dac_read_search,cap_sys_ptrace=p", path).CombinedOutput(); err != nil {
			t.Skipf("setcap on %s (a file system without extended attributes?): %v: %s", dir, err, out)
		}
	}
	filecaps(static)

	srv := startHelper(t, "serve", "-comm", "tcpst-fcap-srv", "-listen", "127.0.0.2:0")
	port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
	startHelper(t, "connect", "-comm", "tcpst-fcaps", "-close-wait", "127.0.0.2:"+port+"=3")
	const attributed = `tcpstate_process_connections{netns="host",process="tcpst-fcaps",state="close_wait"}`
	const warning = "cannot read /proc/PID/fd of "

	// asNobody starts bin as uid 65534 with the bounding set changed by
	// bounding (setpriv's syntax; empty: unchanged).
	asNobody := func(bin, bounding string) *exporter {
		t.Helper()
		args := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
		if bounding != "" {
			args = append(args, "--bounding-set="+bounding)
		}
		addr := testutil.FreeAddr(t)
		cmd := exec.Command(setpriv, append(args, bin, "--web.listen-address="+addr)...)
		cmd.Dir = "/"
		e := launch(t, cmd, addr)
		e.waitServing(t)
		return e
	}

	t.Run("granted", func(t *testing.T) {
		e := asNobody(static, "")
		m := parseExposition(t, mustGet(t, e))
		if m[attributed] != 3 {
			t.Errorf("%s = %v, want 3", attributed, m[attributed])
		}
		// setpriv execs the exporter in place: the pid is the exporter's.
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", e.cmd.Process.Pid))
		if err != nil || len(tasks) < 2 {
			t.Fatalf("threads of the exporter: %v %v", tasks, err)
		}
		for _, status := range tasks {
			b, err := os.ReadFile(status)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "\nCapEff:\t0000000000080004\n") {
				t.Errorf("%s: the thread does not have exactly DAC_READ_SEARCH and SYS_PTRACE effective:\n%s", status, b)
			}
		}
		log := e.stderr.String()
		if !strings.Contains(log, "made the permitted CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE effective") || strings.Contains(log, "lacks CAP_") {
			t.Errorf("the log does not say both were raised, or says one is missing:\n%s", log)
		}
		t.Logf("%d threads with CapEff 0000000000080004", len(tasks))
	})

	t.Run("withheld", func(t *testing.T) {
		e := asNobody(static, "-dac_read_search,-sys_ptrace")
		m := parseExposition(t, mustGet(t, e))
		mustGet(t, e)
		if _, named := m[attributed]; named {
			t.Error("without the capabilities the exporter named a root-owned process")
		}
		if got := m[`tcpstate_unresolved_sockets{state="close_wait"}`]; got < 3 {
			t.Errorf("unresolved close_wait %v, want at least the 3 held", got)
		}
		log := strings.ReplaceAll(e.stderr.String(), `\"`, `"`)
		if n := strings.Count(log, warning); n != 1 || !strings.Contains(log, "lacks CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE") || strings.Contains(log, "made the permitted") {
			t.Errorf("want one warning in two scrapes naming both capabilities missing, nothing raised; %d warnings:\n%s", n, log)
		}
	})

	t.Run("cgo", func(t *testing.T) {
		if out, err := exec.Command("go", "env", "CGO_ENABLED").Output(); err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Skipf("TestMain's binary is built without cgo here (go env CGO_ENABLED: %q, %v)", out, err)
		}
		withCgo := filepath.Join(dir, "tcpstate_exporter-cgo")
		b, err := os.ReadFile(binary)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(withCgo, b, 0o755); err != nil {
			t.Fatal(err)
		}
		filecaps(withCgo)
		e := asNobody(withCgo, "")
		m := parseExposition(t, mustGet(t, e))
		if _, named := m[attributed]; named {
			t.Error("a binary linking cgo cannot have raised its capabilities on every thread, yet named a root-owned process")
		}
		log := e.stderr.String()
		for _, want := range []string{"cannot make the permitted CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE effective", "links cgo", "CGO_ENABLED=0"} {
			if !strings.Contains(log, want) {
				t.Errorf("want %q in the log:\n%s", want, log)
			}
		}
	})
}
