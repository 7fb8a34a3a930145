package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// renderNamed is render with each line prefixed by its metric's name.
func renderNamed(t *testing.T, emit func(ch chan<- prometheus.Metric)) []string {
	t.Helper()
	ch := make(chan prometheus.Metric, 10000)
	emit(ch)
	close(ch)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	var out []string
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		var labels []string
		for _, l := range pb.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		name := fqName.FindStringSubmatch(m.Desc().String())[1]
		out = append(out, name+"{"+strings.Join(labels, ",")+"} "+strconv.FormatFloat(pb.GetGauge().GetValue(), 'g', -1, 64))
	}
	slices.Sort(out)
	return out
}

const (
	podASandbox   = "aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff6666aaaa7777bbbb8888"
	podAContainer = "1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef"
	podAUID       = "5b1c7c8e-2f0d-4c51-9a3e-6f4d8e2a1b90"
	podBContainer = "fedcba0987654321fedcba0987654321fedcba0987654321fedcba0987654321"
	podBUID       = "0a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d"
)

// podTree adds two pods to a copy of the fixture tree, each in its own
// network namespace, whose "podclient" processes hold 3 and 5 CLOSE_WAIT
// sockets toward the same 127.0.0.1:18080: pod A under the cgroupfs driver
// and cgroup v1, with a sandbox ("pause") process first; pod B under the
// systemd driver and cgroup v2, its client alone.
func podTree(t *testing.T) string {
	t.Helper()
	root := testutil.CopyTree(t, "../testdata/proc")
	mk := func(path string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, path string) {
		mk(path)
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, text string) {
		mk(path)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link("net:[1]", filepath.Join(root, "self", "ns", "net"))
	header := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	table := func(n, firstInode int) string {
		s := header
		for i := range n {
			// 10.244.0.5:40000+i -> 127.0.0.1:18080, CLOSE_WAIT (08)
			s += fmt.Sprintf("   %d: 0500F40A:%04X 0100007F:46A0 08 00000000:00000001 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0\n", i, 40000+i, firstInode+i)
		}
		return s
	}
	pod := func(pid int, ns, comm, cgroup string, inodes []int) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		link(ns, filepath.Join(dir, "ns", "net"))
		write(filepath.Join(dir, "comm"), comm+"\n")
		write(filepath.Join(dir, "cgroup"), cgroup)
		mk(filepath.Join(dir, "fd", "0"))
		for i, ino := range inodes {
			link(fmt.Sprintf("socket:[%d]", ino), filepath.Join(dir, "fd", strconv.Itoa(10+i)))
		}
	}
	podA := "/kubepods/burstable/pod" + podAUID + "/"
	pod(900, "net:[2]", "pause", "11:memory:"+podA+podASandbox+"\n1:name=systemd:"+podA+podASandbox+"\n0::/\n", nil)
	pod(901, "net:[2]", "podclient", "11:memory:"+podA+podAContainer+"\n1:name=systemd:"+podA+podAContainer+"\n0::/\n", []int{7001, 7002, 7003})
	write(filepath.Join(root, "900", "net", "tcp"), table(3, 7001))
	podB := "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(podBUID, "-", "_") + ".slice/cri-containerd-" + podBContainer + ".scope\n"
	pod(910, "net:[3]", "podclient", podB, []int{7101, 7102, 7103, 7104, 7105})
	write(filepath.Join(root, "910", "net", "tcp"), table(5, 7101))
	return root
}

func podExporter(t *testing.T, root string, maxSeries int) *Exporter {
	t.Helper()
	o := Options{ProcRoot: root, MaxSeries: maxSeries, RouteStates: []tables.State{tables.StateCloseWait, tables.StateEstablished}, Workers: 2}
	o.Tables = tables.NewNamespaceTables(root, tables.NewProcfsTables(root))
	e, err := NewExporter(o, []string{"connections", "process"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPodsAreToldApart: two pods whose clients of the same name leak toward
// the same endpoint are two series, one per network namespace, and
// tcpstate_netns_info names each namespace's pod and container.
func TestPodsAreToldApart(t *testing.T) {
	t.Parallel()
	got := renderNamed(t, podExporter(t, podTree(t), 1000).Collect)
	nsA, nsB := podASandbox[:12], podBContainer[:12]
	route := "tcpstate_process_remote_connections{netns=%s,process=podclient,remote_address=127.0.0.1,remote_port=18080,state=close_wait} %d"
	want := []string{
		fmt.Sprintf(route, nsA, 3),
		fmt.Sprintf(route, nsB, 5),
		"tcpstate_process_connections{netns=" + nsA + ",process=podclient,state=close_wait} 3",
		"tcpstate_process_connections{netns=" + nsB + ",process=podclient,state=close_wait} 5",
		"tcpstate_process_connections{netns=host,process=java,state=close_wait} 5",
		"tcpstate_process_remote_close_wait_unread_sockets{netns=" + nsB + ",process=podclient,remote_address=127.0.0.1,remote_port=18080} 0",
		"tcpstate_netns_info{container_id=,netns=host,pod_uid=} 1",
		"tcpstate_netns_info{container_id=" + podASandbox + ",netns=" + nsA + ",pod_uid=" + podAUID + "} 1",
		"tcpstate_netns_info{container_id=" + podBContainer + ",netns=" + nsB + ",pod_uid=" + podBUID + "} 1",
		"tcpstate_series_truncated{metric=tcpstate_netns_info} 0",
	}
	// Every namespace has all eleven states, zeros included.
	for _, ns := range []string{nsA, nsB} {
		for _, st := range tables.AllStates {
			n := 0
			if st == tables.StateCloseWait {
				n = map[string]int{nsA: 3, nsB: 5}[ns]
			}
			want = append(want, fmt.Sprintf("tcpstate_netns_connections{netns=%s,state=%s} %d", ns, tables.StateNames[st], n))
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing %s", w)
		}
	}
	for _, line := range got {
		if strings.Contains(line, "podclient") && strings.Contains(line, "netns=host") {
			t.Errorf("a pod's socket counted in the host's namespace: %s", line)
		}
	}
	if t.Failed() {
		t.Logf("got:\n%s", strings.Join(got, "\n"))
	}
}

// TestNamespaceFamiliesAreBounded: with --collector.max-series=2 the
// namespace families keep the two namespaces with the most sockets (the
// host's and pod B's) and fold pod A into "other": eleven series folded,
// one info series.
func TestNamespaceFamiliesAreBounded(t *testing.T) {
	t.Parallel()
	got := renderNamed(t, podExporter(t, podTree(t), 2).Collect)
	nsA, nsB := podASandbox[:12], podBContainer[:12]
	for _, w := range []string{
		"tcpstate_netns_connections{netns=" + nsB + ",state=close_wait} 5",
		"tcpstate_netns_connections{netns=other,state=close_wait} 3",
		"tcpstate_netns_connections{netns=other,state=listen} 0",
		"tcpstate_series_truncated{metric=tcpstate_netns_connections} 11",
		"tcpstate_netns_info{container_id=" + podBContainer + ",netns=" + nsB + ",pod_uid=" + podBUID + "} 1",
		"tcpstate_netns_info{container_id=other,netns=other,pod_uid=other} 1",
		"tcpstate_series_truncated{metric=tcpstate_netns_info} 1",
	} {
		if !slices.Contains(got, w) {
			t.Errorf("missing %s", w)
		}
	}
	for _, line := range got {
		if strings.Contains(line, "netns="+nsA) {
			t.Errorf("pod A should be folded: %s", line)
		}
	}
	if t.Failed() {
		t.Logf("got:\n%s", strings.Join(got, "\n"))
	}
}
