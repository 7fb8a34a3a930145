package owners

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"golang.org/x/sys/unix"
)

// FDUsage is one process's open file descriptors and its soft limit on
// them (RLIMIT_NOFILE, "Max open files" in /proc/PID/limits): accept(),
// connect() and open() fail with EMFILE when Open reaches Max.
type FDUsage struct {
	Open, Max int64
	// Known is false when the process exited before its limit was read;
	// Malformed, when its limits file could not be parsed.
	Known, Malformed bool
}

// ReadFDUsage fills out[i] with the usage of pids[i], each a process of
// w's walk that holds sockets: the fds the walk counted and the soft limit.
// The limit is read from /proc/PID/limits once per process, start time and
// fd count: a process whose fd count did not change since the last reading
// keeps the limit read then, so a limit changed by prlimit on a process
// whose fd count stays put shows at the next complete walk (at most
// completeWalkInterval later). Without the cache (before Linux 6.2, or
// NoCache) every call reads every limit. A malformed limits file is
// returned as an error naming
// the file and the line, the one of the lowest pid when there are several;
// out marks it Malformed.
func (o *SocketOwners) ReadFDUsage(ctx context.Context, w *OwnerWalk, pids []int32, out []FDUsage) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	clear(out)
	rootFD, err := unix.Open(o.Root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("reading fd limits: open %s: %w", o.Root, err)
	}
	defer unix.Close(rootFD)
	r := procReader{root: rootFD, rootPath: o.Root}
	var firstErr error
	var firstPid int32
	pre := w.limits
	if pre != nil {
		<-pre.done
	}
	for i, pid := range pids {
		if err := ctx.Err(); err != nil {
			return err
		}
		open, ok := w.fds[pid]
		if !ok {
			continue
		}
		st := o.procs[pid]
		if st == nil || !st.maxKnown {
			max, read, err := pre.lookup(pid)
			if !read {
				max, err = r.maxOpenFiles(pid)
			}
			if err != nil {
				var errno unix.Errno
				if errors.As(err, &errno) || errors.Is(err, fs.ErrPermission) {
					continue // gone (ENOENT, ESRCH) or hidden: no limit to tell
				}
				if firstErr == nil || pid < firstPid {
					firstErr, firstPid = err, pid
				}
				out[i].Malformed = true
				continue
			}
			if st != nil {
				st.maxFiles, st.maxKnown = max, true
			} else {
				out[i] = FDUsage{Open: open, Max: max, Known: true}
				continue
			}
		}
		out[i] = FDUsage{Open: open, Max: st.maxFiles, Known: true}
	}
	return firstErr
}

// limitsPrefetch holds the fd limits a reading will be asked for, read on
// a goroutine of their own while the tables stream (PrefetchLimits).
type limitsPrefetch struct {
	done chan struct{} // closed once the goroutine is done with the slices
	pids []int32       // sorted
	max  []int64
	err  []error
	read []bool // false: not read (the reading was cancelled first)
}

// lookup returns the prefetched limit of pid, whether it was read, and
// the error reading it gave.
func (p *limitsPrefetch) lookup(pid int32) (limit int64, read bool, err error) {
	if p == nil {
		return 0, false, nil
	}
	i, ok := slices.BinarySearch(p.pids, pid)
	if !ok || !p.read[i] {
		return 0, false, nil
	}
	return p.max[i], true, p.err[i]
}

// PrefetchLimits starts reading, on a goroutine of its own, the fd limit
// of each process of w holding sockets whose limit is not known yet (a
// new process, or one whose fd count changed): after a start, or at a walk
// of every process, those are every process with sockets, thousands of
// /proc/PID/limits reads that would otherwise run one after the other
// after the tables. ReadFDUsage waits for them and takes what was read.
// Call it right after Walk, before the tables are read.
func (o *SocketOwners) PrefetchLimits(ctx context.Context, w *OwnerWalk) {
	o.mu.Lock()
	var pids []int32
	for pid := range w.fds {
		if st := o.procs[pid]; st == nil || !st.maxKnown {
			pids = append(pids, pid)
		}
	}
	o.mu.Unlock()
	if len(pids) == 0 {
		return
	}
	slices.Sort(pids)
	p := &limitsPrefetch{done: make(chan struct{}), pids: pids,
		max: make([]int64, len(pids)), err: make([]error, len(pids)), read: make([]bool, len(pids))}
	w.limits = p
	root := o.Root
	go func() {
		defer close(p.done)
		rootFD, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return // nothing read: ReadFDUsage reads, and says why
		}
		defer unix.Close(rootFD)
		r := procReader{root: rootFD, rootPath: root}
		for i, pid := range p.pids {
			if ctx.Err() != nil {
				return
			}
			p.max[i], p.err[i] = r.maxOpenFiles(pid)
			p.read[i] = true
		}
	}()
}
