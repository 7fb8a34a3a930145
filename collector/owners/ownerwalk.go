package owners

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
)

// walk is one Walk's shared state, kept for its Settle.
type walk struct {
	owners *SocketOwners
	rootFD int
	ctx    context.Context
	// caching: the cache is kept up to date; useCache: this walk may take
	// processes from it.
	caching, useCache bool

	mu      sync.Mutex // guards w, keys, nameIdx, read, unowned, owners.procs
	w       *OwnerWalk
	keys    []uint64
	nameIdx map[string]int32
	read    map[int32]bool // processes whose fd folder was read
	// unowned, in Settle: the sockets the tables listed without an owner,
	// looked for in the processes read then.
	unowned map[uint64]struct{}
	err     error
	// deniedMin is the lowest pid in w.DeniedPIDs.
	deniedMin int32
}

// run hands pids, in order, to the workers. Without force each process is
// checked against the cache and read only when it may have changed; with
// force (in Settle) every one is read, for the sockets still unowned.
func (wk *walk) run(rootFD int, pids []int32, force bool) {
	wk.rootFD = rootFD
	workers := max(wk.owners.Workers, 1)
	next := make(chan int32, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := procReader{root: rootFD, rootPath: wk.owners.Root, protos: &wk.owners.protos}
			for pid := range next {
				wk.visit(&r, pid, force)
			}
		}()
	}
	for _, pid := range pids {
		if err := wk.ctx.Err(); err != nil {
			wk.err = err
			break
		}
		next <- pid
	}
	close(next)
	wg.Wait()
}

// visit checks or reads one process.
func (wk *walk) visit(r *procReader, pid int32, force bool) {
	o := wk.owners
	var start uint64
	fds := int64(-1)
	if wk.caching {
		var err error
		if start, err = r.startTime(pid); err != nil {
			return // gone
		}
		if n, err := r.fdCount(pid); err == nil {
			fds = n
		}
	}
	if !force && wk.useCache {
		wk.mu.Lock()
		st := o.procs[pid]
		reuse := st != nil && st.start == start && st.fds == fds && fds >= 0
		wk.mu.Unlock()
		if reuse {
			wk.claimCached(r, pid, st)
			return
		}
	}
	inodes, err := r.sockets(pid)
	if err != nil {
		wk.mu.Lock()
		if errors.Is(err, fs.ErrPermission) {
			wk.w.Denied++
			// Workers finish out of order: keep the lowest pid's error.
			if wk.w.DeniedErr == nil || pid < wk.deniedMin {
				wk.deniedMin = pid
				wk.w.DeniedErr = fmt.Errorf("%s/%d/fd: %w", wk.owners.Root, pid, err)
			}
			wk.w.DeniedPIDs = append(wk.w.DeniedPIDs, pid)
			wk.read[pid] = true
		}
		// Otherwise the process went away mid-walk.
		delete(o.procs, pid)
		wk.mu.Unlock()
		return
	}
	comm := ""
	if len(inodes) > 0 {
		if comm, err = r.comm(pid); err != nil {
			return
		}
	}
	wk.mu.Lock()
	defer wk.mu.Unlock()
	wk.read[pid] = true
	wk.w.Processes++
	if wk.caching {
		st := o.procs[pid]
		if st == nil {
			st = &procState{}
			o.procs[pid] = st
		}
		if st.start != start || st.fds != fds {
			st.maxKnown = false // the limit is read again when asked
		}
		st.start, st.fds = start, fds
		st.inodes = append(st.inodes[:0], inodes...)
		if force {
			// In Settle the index is built: keep what the tables listed
			// or still miss.
			st.inodes = slices.DeleteFunc(st.inodes, func(ino uint64) bool {
				_, missing := wk.unowned[ino]
				return !missing && !wk.w.index.isListed(ino) && !wk.w.isHeld(ino)
			})
		}
	}
	if len(inodes) > 0 {
		wk.w.fds[pid] = r.nfds
	}
	wk.claim(pid, comm, inodes, force)
}

// claimCached takes a process's sockets from the cache; its name is read
// again, as exec or prctl may have changed it.
func (wk *walk) claimCached(r *procReader, pid int32, st *procState) {
	comm := ""
	if len(st.inodes) > 0 {
		var err error
		if comm, err = r.comm(pid); err != nil {
			return
		}
	}
	wk.mu.Lock()
	defer wk.mu.Unlock()
	wk.w.Cached++
	if len(st.inodes) > 0 {
		wk.w.fds[pid] = st.fds // unchanged since it was read
	}
	wk.claim(pid, comm, st.inodes, false)
}

// claim records that pid holds inodes: as index entries during the walk,
// or, in Settle (fix), as the owner of the sockets still unowned where it
// is the lowest pid so far. Called with wk.mu held.
func (wk *walk) claim(pid int32, comm string, inodes []uint64, fix bool) {
	if len(inodes) == 0 {
		return
	}
	idx := wk.nameIndex(comm)
	wk.w.pidName[pid] = idx
	for _, ino := range inodes {
		if !fix {
			wk.keys = wk.w.index.add(wk.keys, ino, pid)
			continue
		}
		if _, missing := wk.unowned[ino]; !missing {
			continue
		}
		if cur, ok := wk.w.fixed[ino]; !ok || pid < cur.pid {
			wk.w.fixed[ino] = socketOwner{idx, pid}
		}
	}
}

// nameIndex returns comm's index in Names. Called with wk.mu held.
func (wk *walk) nameIndex(comm string) int32 {
	idx, seen := wk.nameIdx[comm]
	if !seen {
		idx = int32(len(wk.w.Names))
		wk.nameIdx[comm] = idx
		wk.w.Names = append(wk.w.Names, comm)
	}
	return idx
}
