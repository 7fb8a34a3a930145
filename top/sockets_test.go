package top

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// TestTopSocketsShowsHeldClosed: a socket the kernel dropped that the
// process still holds is listed with state CLOSE, its age going on from
// CLOSE_WAIT, its route when seen and "-" when not, counted apart.
func TestTopSocketsShowsHeldClosed(t *testing.T) {
	socks := []snapshot.CloseWaitSocket{
		{State: tables.StateClose, Pid: 7, Process: "heldclient", Local: netip.MustParseAddrPort("127.0.0.1:40000"),
			Remote: netip.MustParseAddrPort("127.0.0.1:8080"), Age: 90 * time.Second, AgeSource: snapshot.AgeKernel, Inode: 11},
		{State: tables.StateCloseWait, Pid: 7, Process: "heldclient", Local: netip.MustParseAddrPort("127.0.0.1:40001"),
			Remote: netip.MustParseAddrPort("127.0.0.1:8080"), Age: 30 * time.Second, AgeSource: snapshot.AgeKernel, Inode: 12},
		{State: tables.StateClose, Pid: 7, Process: "heldclient", Age: 0, AgeSource: snapshot.AgeNone, Inode: 13},
	}
	l, err := listSockets(&Reading{Sockets: socketsOf(socks, nil, false)}, Source{Kind: "kernel", Fallback: "--no-exporter"}, Filter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	l.render(&b)
	out := b.String()
	for _, want := range []string{
		"CLOSE_WAIT 1  CLOSE 2\n",
		"7  heldclient       CLOSE  127.0.0.1:40000  127.0.0.1:8080  1m30s    kernel",
		"7  heldclient  CLOSE_WAIT  127.0.0.1:40001  127.0.0.1:8080    30s    kernel",
		"7  heldclient       CLOSE                -               -      -         -",
		"STATE CLOSE: the kernel dropped the socket",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if l.Closed != 2 || l.Total != 1 || l.Rows[2].Local != "" || l.Rows[0].State != "close" {
		t.Errorf("list %+v", l)
	}
}
