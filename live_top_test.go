package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLiveTopPoolFullAndRoutePids holds 39 CLOSE_WAIT sockets in a pool
// whose maximum is 30, from one of three processes of the same name: one
// holds the pool's sockets, one holds sockets toward another endpoint, one
// holds none. top marks the pool full and lists, per route, only the pid
// that holds its sockets.
func TestLiveTopPoolFullAndRoutePids(t *testing.T) {
	const (
		comm      = "tcpst-topc"
		closeWait = 39
		poolMax   = 30
	)
	srv := startHelper(t, "serve", "-comm", "tcpst-top-s", "-listen", "127.0.0.2:0", "-listen", "[::1]:0")
	if len(srv.lines) != 2 {
		t.Fatalf("server printed %q", srv.lines)
	}
	port := srv.lines[0][strings.LastIndexByte(srv.lines[0], ':')+1:]
	leaker := startHelper(t, "connect", "-comm", comm, "-close-wait-idle", "127.0.0.2:"+port+"="+strconv.Itoa(closeWait))
	other := startHelper(t, "connect", "-comm", comm, "-established", "[::1]:"+port+"=2")
	idle := startHelper(t, "connect", "-comm", comm)

	config := filepath.Join(t.TempDir(), "pools.yml")
	doc := fmt.Sprintf("pools:\n  - name: top-full\n    process: \"^%s$\"\n    remote_address: 127.0.0.2\n    remote_port: %s\n    max: %d\n", comm, port, poolMax)
	if err := os.WriteFile(config, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"top", "--no-exporter", "--config.file=" + config, "--process=^" + comm + "$", "--limit=0"}
	code, out := runToExit(t, args...)
	if code != 0 {
		t.Fatalf("top: exit %d\n%s", code, out)
	}
	pid := func(h *helper) string { return strconv.Itoa(h.cmd.Process.Pid) }
	rows := map[string][]string{} // by REMOTE
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 7 && f[0] == comm {
			rows[f[2]] = f
		}
	}
	full := rows["127.0.0.2:"+port]
	wantFull := []string{comm, pid(leaker), "127.0.0.2:" + port, strconv.Itoa(closeWait), "0", "top-full", fmt.Sprintf("%d/%d", closeWait, poolMax), "FULL"}
	if len(full) < len(wantFull) || strings.Join(full[:len(wantFull)], " ") != strings.Join(wantFull, " ") {
		t.Errorf("the pool's route reads %q, want it to start with %q:\n%s", full, wantFull, out)
	}
	wantOther := []string{comm, pid(other), "[::1]:" + port, "0", "2", "-", "-"}
	if o := rows["[::1]:"+port]; len(o) < len(wantOther) || strings.Join(o[:len(wantOther)], " ") != strings.Join(wantOther, " ") {
		t.Errorf("the other route reads %q, want it to start with %q:\n%s", o, wantOther, out)
	}
	if len(rows) != 2 {
		t.Errorf("%d rows for %s, want 2:\n%s", len(rows), comm, out)
	}
	if strings.Contains(out, pid(idle)) {
		t.Errorf("pid %s holds no socket but is listed:\n%s", pid(idle), out)
	}
	wantLine := fmt.Sprintf("FULL: pool top-full holds %d connections (%d in CLOSE_WAIT, 0 ESTABLISHED) for a maximum of %d", closeWait, closeWait, poolMax)
	if !strings.Contains(out, wantLine) {
		t.Errorf("want %q under the table:\n%s", wantLine, out)
	}

	// The same as JSON.
	code, out = runToExit(t, append(args, "--output=json", "--pool=top-full")...)
	var v struct {
		Routes []struct {
			Pids      []int    `json:"pids"`
			CloseWait float64  `json:"close_wait"`
			PoolInUse *float64 `json:"pool_in_use"`
			PoolMax   int      `json:"pool_max"`
			PoolFull  bool     `json:"pool_full"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("top --output=json: exit %d, %v\n%s", code, err, out)
	}
	if len(v.Routes) != 1 || fmt.Sprint(v.Routes[0].Pids) != "["+pid(leaker)+"]" || v.Routes[0].CloseWait != closeWait ||
		v.Routes[0].PoolInUse == nil || *v.Routes[0].PoolInUse != closeWait || v.Routes[0].PoolMax != poolMax || !v.Routes[0].PoolFull {
		t.Errorf("JSON: %+v\n%s", v, out)
	}
}
