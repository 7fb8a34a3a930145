package snapshot

import (
	"context"
	"slices"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
)

// ProcessFDs is one process's (one pid's) open file descriptors against
// its soft limit, with the name and namespace its sockets count under.
type ProcessFDs struct {
	ProcessKey
	Pid       int32
	Open, Max int64
	// Malformed: the pid's limits file could not be parsed (Snapshot.FDsErr
	// says where); Max is unknown.
	Malformed bool
}

// fdPids remembers, as the sockets are counted, the pids that own at least
// one (the lowest pid holding a socket, as for every per-process family)
// and the name and namespace of the first socket each owns. One entry per
// process, none per socket.
type fdPids struct {
	keys    map[int32]ProcessKey
	lastPid int32
	pids    []int32
	usage   []owners.FDUsage
}

func (f *fdPids) reset() {
	if f.keys == nil {
		f.keys = map[int32]ProcessKey{}
	}
	clear(f.keys)
	f.lastPid = 0
}

// add notes a counted socket's owner. Sockets of one process often come
// in runs: the last pid seen skips the map.
func (f *fdPids) add(pid int32, key ProcessKey) {
	if pid == f.lastPid && pid != 0 {
		return
	}
	f.lastPid = pid
	if _, ok := f.keys[pid]; !ok {
		f.keys[pid] = key
	}
}

// readFDs fills s.FDs for the pids that own sockets: the fds the walk
// counted and each pid's limit.
func (r *Reader) readFDs(ctx context.Context, s *Snapshot, walk *owners.OwnerWalk) {
	f := &r.fdPids
	f.pids = f.pids[:0]
	for pid := range f.keys {
		f.pids = append(f.pids, pid)
	}
	slices.Sort(f.pids)
	f.usage = slices.Grow(f.usage[:0], len(f.pids))[:len(f.pids)]
	s.FDsErr = r.Owners.ReadFDUsage(ctx, walk, f.pids, f.usage)
	s.FDs = make([]ProcessFDs, 0, len(f.pids))
	for i, pid := range f.pids {
		if u := f.usage[i]; u.Known || u.Malformed {
			s.FDs = append(s.FDs, ProcessFDs{ProcessKey: f.keys[pid], Pid: pid, Open: u.Open, Max: u.Max, Malformed: u.Malformed})
		}
	}
}
