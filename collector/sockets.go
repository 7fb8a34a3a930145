package collector

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"
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
	State State
	// Age is how long the socket has been in CLOSE_WAIT, by AgeSource's
	// clock; 0 with AgeNone.
	Age       time.Duration
	AgeSource AgeSource
	// Unread is the data the application never read (unreadData).
	Unread uint64
	Inode  uint64
	// Namespace names the socket's network namespace when the exporter
	// reads several ("host" for its own), else "".
	Namespace string

	owner int32
	netns uint16
}

// CloseWaitSockets reads (or shares) a snapshot, with the process walk
// even when no collector needs it, and lists its CLOSE_WAIT sockets, oldest
// first (then by process, remote and local endpoint). Ages are known only
// when the exporter tracks them (--collector.close-wait.max-tracked > 0).
// The error, when not nil, says that the listing is incomplete (tables not
// read completely, or owners not found); the sockets returned are real.
func (e *Exporter) CloseWaitSockets(ctx context.Context) ([]CloseWaitSocket, error) {
	s := e.snapshot(ctx, true, true)
	out := slices.Clone(s.closeWait)
	for i := range out {
		if out[i].owner != noOwner {
			out[i].Process = s.OwnerNames[out[i].owner]
		}
		if int(out[i].netns) < len(s.Namespaces) {
			out[i].Namespace = s.Namespaces[out[i].netns]
		}
	}
	slices.SortFunc(out, func(a, b CloseWaitSocket) int {
		if c := cmp.Compare(b.Age, a.Age); c != 0 {
			return c
		}
		// Sockets of a known process before the others.
		if c := cmp.Compare(b2i(a.Process == ""), b2i(b.Process == "")); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Process, b.Process); c != 0 {
			return c
		}
		if c := a.Remote.Compare(b.Remote); c != 0 {
			return c
		}
		return a.Local.Compare(b.Local)
	})
	return out, errors.Join(s.TableErr, s.OwnersErr)
}

// closeWaitSocketOf notes a CLOSE_WAIT socket as it streams; its process
// name and namespace are filled in once the reading is done.
func closeWaitSocketOf(sk *Socket, in *sockInfo) CloseWaitSocket {
	return CloseWaitSocket{State: sk.State, Pid: int(in.pid), Local: unmapped(sk.Local), Remote: unmapped(sk.Remote),
		Age: in.age, AgeSource: in.ageSource, Unread: unreadData(sk), Inode: sk.Inode, owner: in.owner, netns: sk.NetNS}
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
