package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// TestNamespaceTablesReadsEachNamespaceOnce builds a tree where processes
// 900 and 901 share a network namespace other than the exporter's: its
// table is read once, through the lowest pid, and named after its
// container.
func TestNamespaceTablesReadsEachNamespaceOnce(t *testing.T) {
	t.Parallel()
	root := testutil.CopyTree(t, "../../testdata/proc")
	link := func(target, path string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, text string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link("net:[1]", filepath.Join(root, "self", "ns", "net"))
	link("net:[1]", filepath.Join(root, "200", "ns", "net"))
	for _, pid := range []string{"901", "900"} {
		link("net:[2]", filepath.Join(root, pid, "ns", "net"))
		write(filepath.Join(root, pid, "comm"), "nginx\n")
	}
	header := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	// Inside: a listener on 127.0.0.1:8080 and a CLOSE_WAIT client socket
	// whose local port 8080 would look inbound if listeners leaked across
	// namespaces from the host's 127.0.0.1:8080 listener.
	write(filepath.Join(root, "900", "net", "tcp"), header+
		"   0: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5001 1 0000000000000000 100 0 0 10 0\n"+
		"   1: 0100007F:1F90 0302010A:2328 08 00000000:00000000 00:00000000 00000000     0        0 5002 1 0000000000000000 100 0 0 10 0\n")
	write(filepath.Join(root, "900", "cgroup"), "0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n")
	write(filepath.Join(root, "901", "net", "tcp"), "this table must not be read\n")

	src := tables.NewNamespaceTables(root, tables.NewProcfsTables(root))
	socks, err := tables.AppendSockets(context.Background(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := src.Namespaces(); len(got) != 2 || got[0] != "host" || got[1] != "0123456789ab" {
		t.Fatalf("namespaces %q", got)
	}
	if len(socks) != 19+4+2 {
		t.Fatalf("%d sockets, want the host's 23 and the namespace's 2", len(socks))
	}
	var c classifier
	c.reset()
	for _, sk := range socks {
		dir := c.direction(&sk)
		if sk.Inode == 5002 && (sk.NetNS != 1 || dir != Outbound) {
			t.Errorf("socket 5002: netns %d, direction %d; want 1 and outbound", sk.NetNS, dir)
		}
		if sk.Inode == 1004 && sk.NetNS != 0 {
			t.Errorf("a host socket got netns %d", sk.NetNS)
		}
	}
}
