package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLivePods reproduces issue 19's scenario: two "pods", each in a
// network namespace of its own and in kubelet-style cgroups (pod A as the
// cgroupfs driver names them, pod B as the systemd driver does), whose
// clients, both named podclient, leak 3 and 5 CLOSE_WAIT sockets toward
// the same 127.0.0.1:18080 (each pod's own loopback). They must come out
// as two series told apart by netns, and tcpstate_netns_info must name
// each namespace's pod and container. `ip netns exec` mounts its own /sys,
// so the test places the processes into the cgroups from outside, by pid.
func TestLivePods(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating network namespaces and cgroups needs root")
	}
	cgroupfsRoot, systemdRoot, version := kubeletCgroupRoots(t)
	t.Logf("cgroup %s: cgroupfs driver under %s, systemd driver under %s", version, cgroupfsRoot, systemdRoot)

	type pod struct {
		uid, sandbox, container string
		leaked                  int
		sandboxDir, clientDir   string
	}
	pods := []*pod{
		{uid: randomUID(t), sandbox: randomHex(t, 32), container: randomHex(t, 32), leaked: 3},
		{uid: randomUID(t), sandbox: randomHex(t, 32), container: randomHex(t, 32), leaked: 5},
	}
	// Pod A, cgroupfs driver: kubepods/burstable/pod<uid>/<id>.
	a := filepath.Join(cgroupfsRoot, "kubepods", "burstable", "pod"+pods[0].uid)
	pods[0].sandboxDir, pods[0].clientDir = filepath.Join(a, pods[0].sandbox), filepath.Join(a, pods[0].container)
	// Pod B, systemd driver: kubepods.slice/…-pod<uid with _>.slice/cri-containerd-<id>.scope.
	b := filepath.Join(systemdRoot, "kubepods.slice", "kubepods-besteffort.slice",
		"kubepods-besteffort-pod"+strings.ReplaceAll(pods[1].uid, "-", "_")+".slice")
	pods[1].sandboxDir = filepath.Join(b, "cri-containerd-"+pods[1].sandbox+".scope")
	pods[1].clientDir = filepath.Join(b, "cri-containerd-"+pods[1].container+".scope")

	for i, p := range pods {
		ns := newTestNetns(t, fmt.Sprintf("tcpst-pod%d-%d", i, os.Getpid()))
		in := []string{"ip", "netns", "exec", ns}
		// The namespace's first process stands for the pod's sandbox
		// ("pause"): it serves 127.0.0.1:18080 inside the pod.
		srv := startHelperIn(t, in, "serve", "-comm", "podserver", "-listen", "127.0.0.1:18080")
		placeInCgroup(t, p.sandboxDir, srv.cmd.Process.Pid)
		cli := startHelperIn(t, in, "connect", "-comm", "podclient", "-close-wait", "127.0.0.1:18080="+strconv.Itoa(p.leaked))
		placeInCgroup(t, p.clientDir, cli.cmd.Process.Pid)
	}

	m := parseExposition(t, mustGet(t, startExporter(t)))
	seen := map[string]bool{}
	for _, p := range pods {
		netns := p.sandbox[:12]
		route := `tcpstate_process_remote_connections{netns="` + netns + `",process="podclient",remote_address="127.0.0.1",remote_port="18080",state="close_wait"}`
		info := `tcpstate_netns_info{container_id="` + p.sandbox + `",netns="` + netns + `",pod_uid="` + p.uid + `"}`
		for k, want := range map[string]float64{
			route: float64(p.leaked),
			`tcpstate_process_connections{netns="` + netns + `",process="podclient",state="close_wait"}`: float64(p.leaked),
			`tcpstate_netns_connections{netns="` + netns + `",state="close_wait"}`:                       float64(p.leaked),
			`tcpstate_netns_connections{netns="` + netns + `",state="listen"}`:                           1,
			`tcpstate_netns_connections{netns="` + netns + `",state="syn_sent"}`:                         0,
			info: 1,
		} {
			if got, ok := m[k]; !ok || got != want {
				t.Errorf("%s = %v (present: %v), want %v", k, got, ok, want)
			}
		}
		seen[netns] = true
	}
	if len(seen) != 2 {
		t.Errorf("the two pods share a netns label: %v", seen)
	}
	// No connection count of 8: nothing sums the pods. Only the
	// connection series count sockets; other per-process series (open
	// file descriptors, say) may be 8 by chance.
	for k, v := range m {
		counts := strings.HasPrefix(k, "tcpstate_process_connections{") || strings.HasPrefix(k, "tcpstate_process_remote_connections{")
		if strings.Contains(k, `process="podclient"`) && ((counts && v == 8) || strings.Contains(k, `netns="host"`)) {
			t.Errorf("%s = %v: the pods are not told apart", k, v)
		}
	}
	if t.Failed() {
		for k, v := range m {
			if strings.Contains(k, "netns") {
				t.Logf("%s %v", k, v)
			}
		}
	}
}

// kubeletCgroupRoots returns where the test creates each driver's cgroups:
// under cgroup v2 both in the unified hierarchy; under v1 the cgroupfs
// driver's in the pids hierarchy and the systemd driver's in systemd's
// named hierarchy, as a kubelet on such a host would.
func kubeletCgroupRoots(t *testing.T) (cgroupfs, systemd, version string) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "/sys/fs/cgroup", "/sys/fs/cgroup", "v2"
	}
	for _, dir := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/systemd"} {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			t.Skipf("no cgroup v2 and no v1 hierarchy at %s: %v", dir, err)
		}
	}
	return "/sys/fs/cgroup/pids", "/sys/fs/cgroup/systemd", "v1"
}

// placeInCgroup creates dir (and its parents) and moves pid into it. The
// cleanup, which runs before the helpers' (cleanups run last first), moves
// the process back to the hierarchy's root and removes the folders it
// created, leaf first.
func placeInCgroup(t *testing.T, dir string, pid int) {
	t.Helper()
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("creating cgroup %s: %v", dir, err)
	}
	root := cgroupRootOf(dir)
	t.Cleanup(func() {
		// Back to the hierarchy's root, so the folders are empty.
		_ = os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
		for _, d := range created {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				t.Errorf("removing cgroup %s: %v", d, err)
			}
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatalf("moving pid %d into %s: %v", pid, dir, err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil || !strings.Contains(string(data), strings.TrimPrefix(dir, root)) {
		t.Fatalf("pid %d is not in %s: %v\n%s", pid, dir, err, data)
	}
}

// cgroupRootOf returns the mount point of the hierarchy dir is in.
func cgroupRootOf(dir string) string {
	if strings.HasPrefix(dir, "/sys/fs/cgroup/pids/") || strings.HasPrefix(dir, "/sys/fs/cgroup/systemd/") {
		return filepath.Join("/sys/fs/cgroup", strings.Split(strings.TrimPrefix(dir, "/sys/fs/cgroup/"), "/")[0])
	}
	return "/sys/fs/cgroup"
}

// newTestNetns creates a network namespace with loopback up, removed at
// the end of the test.
func newTestNetns(t *testing.T, name string) string {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del: %v\n%s", err, out)
		}
	})
	if out, err := exec.Command("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v\n%s", err, out)
	}
	return name
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// randomUID returns a pod UID as the API server writes them.
func randomUID(t *testing.T) string {
	h := randomHex(t, 16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
