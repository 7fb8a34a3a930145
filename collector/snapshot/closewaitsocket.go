package snapshot

import (
	"net/netip"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// CloseWaitSocket is one dead-but-held socket (CLOSE_WAIT, or CLOSE after
// the kernel dropped it), named: what `top --sockets`
// lists so that an engineer can match it against the application's own
// logs, thread dumps or lsof. Per-socket detail never reaches /metrics.
type CloseWaitSocket struct {
	// Pid and Process hold the socket (the lowest pid when several do);
	// 0 and "" when the owner is not known.
	Pid     int
	Process string
	Local   netip.AddrPort
	Remote  netip.AddrPort
	// State is StateCloseWait, or StateClose for a socket the kernel
	// dropped that the process still holds: Local and Remote are then
	// invalid when the exporter never saw its route.
	State tables.State
	// Age is how long the socket has been in CLOSE_WAIT, by AgeSource's
	// clock; 0 with AgeNone.
	Age       time.Duration
	AgeSource AgeSource
	// Unread is the data the application never read (unreadData).
	Unread uint64
	Inode  uint64
	// Namespace names the socket's network namespace when the exporter
	// reads several ("host" for its own), else "" (top's readings name
	// it always).
	Namespace string

	Owner int32
	NetNS uint16
}

// closeWaitSocketOf notes a CLOSE_WAIT socket as it streams; its process
// name and namespace are filled in once the reading is done.
func closeWaitSocketOf(sk *tables.Socket, in *SockInfo) CloseWaitSocket {
	return CloseWaitSocket{State: sk.State, Pid: int(in.pid), Local: unmapped(sk.Local), Remote: unmapped(sk.Remote),
		Age: in.Age, AgeSource: in.AgeSource, Unread: tables.UnreadData(sk), Inode: sk.Inode, Owner: in.Owner, NetNS: sk.NetNS}
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
