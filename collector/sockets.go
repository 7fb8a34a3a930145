package collector

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
)

// CloseWaitSockets reads (or shares) a snapshot, with the process walk
// even when no collector needs it, and lists its CLOSE_WAIT sockets, oldest
// first (then by process, remote and local endpoint). Ages are known only
// when the exporter tracks them (--collector.close-wait.max-tracked > 0).
// The error, when not nil, says that the listing is incomplete (tables not
// read completely, or owners not found); the sockets returned are real.
func (e *Exporter) CloseWaitSockets(ctx context.Context) ([]snapshot.CloseWaitSocket, error) {
	return closeWaitSockets(e.snapshot(ctx, true, true))
}

// closeWaitSockets names and sorts the dead sockets of a reading that
// listed them; each socket's Namespace is its netns label ("host" for the
// exporter's own).
func closeWaitSockets(s *snapshot.Snapshot) ([]snapshot.CloseWaitSocket, error) {
	out := slices.Clone(s.CloseWait)
	for i := range out {
		if out[i].Owner != owners.NoOwner {
			out[i].Process = s.OwnerNames[out[i].Owner]
		}
		out[i].Namespace = s.NetnsName(out[i].NetNS)
	}
	slices.SortFunc(out, func(a, b snapshot.CloseWaitSocket) int {
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

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
