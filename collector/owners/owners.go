package owners

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"golang.org/x/sys/unix"
)

// NoOwner marks a socket whose owning process is not known.
const NoOwner = -1

// completeWalkInterval bounds how long process attributions may come from the
// cache without a walk of every process (see SocketOwners).
const completeWalkInterval = 5 * time.Minute

// OwnerWalk is the outcome of one walk of /proc/PID/fd: which process holds
// each socket inode.
type OwnerWalk struct {
	// Names are the process names (comm) of the owners, each once.
	Names []string
	// index holds one key per socket fd found, sorted by inode and then
	// pid: a compact map from inode to pid (8 bytes a socket, where a Go map
	// costs about 50), searched through buckets; pidName names each pid.
	index   ownerIndex
	pidName map[int32]int32
	// fixed holds owners found after the tables were read (Settle), for
	// the sockets the index did not know.
	fixed map[uint64]socketOwner
	// Denied counts processes whose fd folder could not be read for lack of
	// privileges; their sockets stay unresolved. DeniedPIDs lists them, in
	// pid order, and DeniedErr is the error of the lowest one.
	Denied     int
	DeniedPIDs []int32
	DeniedErr  error
	// Processes counts the processes whose fd folder was read.
	Processes int
	// Cached counts the processes whose sockets came from the cache.
	Cached int
	// fds holds the open fds of each process with socket fds, counted
	// when its fd folder was read (or the cache's count, unchanged since).
	fds map[int32]int64
	// Held lists, sorted by inode, the TCP sockets processes hold that no
	// table listed (FindHeld).
	Held []HeldSocket

	wk *walk // the walk's state, for Settle
	// limits, when PrefetchLimits ran: the fd limits read beside the
	// tables.
	limits *limitsPrefetch
}

type socketOwner struct {
	name int32
	pid  int32
}

// Lookup returns the index in Names of the process holding inode and its
// pid (the lowest, when several processes hold it), or noOwner and 0. It
// also notes that the tables list the socket, which Settle needs: call it
// once for each socket of a reading, from one goroutine.
func (w *OwnerWalk) Lookup(inode uint64) (name, pid int32) {
	if i, ok := w.index.find(inode); ok {
		w.index.markRun(i)
		pid := w.index.pidAt(i)
		return w.pidName[pid], pid
	}
	if pid, ok := w.index.wide[inode]; ok {
		return w.pidName[pid], pid
	}
	if o, ok := w.fixed[inode]; ok {
		return o.name, o.pid
	}
	return NoOwner, 0
}

// SocketOwners maps socket inodes to processes through /proc/PID/fd links.
// A walk runs before the TCP tables are read and indexes every socket fd of
// every process, so that each socket's owner is known as the tables stream
// and no socket has to be kept; Settle, after the tables, files what was
// missing.
//
// Reading every fd link costs a few microseconds each, the bulk of a scrape
// on a host with many sockets, so SocketOwners remembers, per process (its
// pid and start time), how many fds it had and which TCP sockets it held,
// and reads a process's fd folder again only when something says it may
// have changed:
//
//   - the process is new, or its pid now names a process with another
//     start time;
//   - its fd count (the size the kernel reports for /proc/PID/fd since
//     Linux 6.2) differs;
//   - one of the sockets it held is no longer in the tables (closed): then
//     it is read again right after the tables, and the sockets the tables
//     listed without an owner are looked for in it;
//   - a socket that had no owner at the previous reading still has none,
//     and is not one that no process held at the last walk of every
//     process: then every process not read yet is read, in pid order. (A
//     socket seen for the first time without an owner waits a reading:
//     most are passing ones, opened after the walk or whose process exited.)
//
// What this can miss is a process that, between two scrapes, closed or
// received an fd of a socket shared with another process while keeping its
// fd count; the sockets are still counted, possibly for the other holder.
// A complete walk at least every completeWalkInterval corrects that. When
// the kernel does not report fd counts (before 6.2, or a fixture tree) the
// cache is off and every walk reads every process.
type SocketOwners struct {
	Root string
	// Workers bounds how many processes are read at once.
	Workers int
	// NoCache turns the cache off: every walk reads every process.
	NoCache bool

	mu    sync.Mutex // one walk at a time; guards the fields below
	procs map[int32]*procState
	// orphan: sockets held by no process that could be read, at the last
	// walk that read every process; pending: sockets first seen without an
	// owner at the last reading.
	orphan, pending, spareSet map[uint64]struct{}
	last                      time.Time // of the last walk that read every process
	counts                    int8      // whether the kernel reports fd counts: 0 unknown, 1 yes, -1 no
	pids                      []int32
	dirent                    []byte
	keys                      []uint64 // the last index's, reused
	protos                    sockProtos
	// held: the sockets the last FindHeld confirmed, with the fd each
	// was found at (the walk's Held); reread: the pids whose fd folder the
	// last FindHeld read again (for tests).
	held   []HeldSocket
	reread []int32
}

// procState is what the cache knows of one process.
type procState struct {
	start  uint64   // start time, in clock ticks after boot
	fds    int64    // its fd count
	inodes []uint64 // its socket fds: after a reading, only those in the TCP tables
	// maxFiles is its soft limit on open files, read at this start time
	// and fd count when maxKnown (see ReadFDUsage).
	maxFiles int64
	maxKnown bool
}

// Walk reads (or takes from the cache) every process's socket fds and
// indexes them. Processes that exit during the walk are skipped silently;
// only a failure to list the PID folders is an error.
func (o *SocketOwners) Walk(ctx context.Context) (*OwnerWalk, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rootFD, err := unix.Open(o.Root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listing processes: open %s: %w", o.Root, err)
	}
	defer unix.Close(rootFD)
	if err := o.listPids(rootFD); err != nil {
		return nil, fmt.Errorf("listing processes in %s: %w", o.Root, err)
	}
	if o.counts == 0 {
		o.counts = -1
		if n, err := fdCount(rootFD, []byte("self/fd\x00")); err == nil && n > 0 {
			o.counts = 1
		}
	}
	caching := !o.NoCache && o.counts > 0
	now := time.Now()
	useCache := caching && o.procs != nil && now.Sub(o.last) < completeWalkInterval
	if !useCache {
		// Read every process, and start the cache afresh.
		o.procs = make(map[int32]*procState)
		o.last = now
		o.protos.renew()
	}
	w := &OwnerWalk{pidName: map[int32]int32{}, fds: map[int32]int64{}}
	wk := &walk{
		owners: o, ctx: ctx, caching: caching, useCache: useCache,
		w:       w,
		nameIdx: map[string]int32{},
		read:    make(map[int32]bool),
		keys:    o.keys[:0],
	}
	w.wk = wk
	wk.run(rootFD, o.pids, false)
	if wk.err != nil {
		return nil, fmt.Errorf("walking /proc/PID/fd: %w", wk.err)
	}
	slices.Sort(w.DeniedPIDs)
	for pid := range o.procs {
		if _, found := slices.BinarySearch(o.pids, pid); !found {
			delete(o.procs, pid) // gone
		}
	}
	w.index.build(wk.keys)
	o.keys = wk.keys
	wk.keys = nil
	return w, nil
}

// FindHeld runs after the tables of a complete reading, before Settle: it
// files in w.Held the TCP sockets processes hold that no table listed,
// each confirmed by a second read of its process's fd folder. Unless
// allNamespaces (the tables of every namespace with a process were read),
// only the processes of the exporter's own network namespace count.
func (o *SocketOwners) FindHeld(ctx context.Context, w *OwnerWalk, allNamespaces bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	cands := o.heldCandidates(w)
	if len(cands) == 0 || ctx.Err() != nil {
		if ctx.Err() == nil {
			o.held, o.reread = nil, o.reread[:0] // none held now
		}
		return ctx.Err()
	}
	rootFD, err := unix.Open(o.Root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("listing processes: open %s: %w", o.Root, err)
	}
	defer unix.Close(rootFD)
	var changed []int32
	w.Held, changed = o.confirmHeld(rootFD, cands, allNamespaces)
	for _, pid := range changed {
		delete(o.procs, pid) // read again at the next walk
	}
	return nil
}

// Settle runs after the tables of a reading were streamed, every socket
// looked up once in w. unowned lists the inodes of the sockets the tables
// listed without an owner. Settle reads again the cached processes that
// held a socket the tables no longer list, and, when a socket left without
// an owner at the previous reading still has none, every process not read
// yet; what it finds, w.Lookup returns from then on. It keeps in the cache
// only the sockets the tables listed, and files the sockets still without
// an owner for the next reading.
func (o *SocketOwners) Settle(ctx context.Context, w *OwnerWalk, unowned []uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	wk := w.wk
	if wk == nil || !wk.caching {
		return nil
	}
	rootFD, err := unix.Open(o.Root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("listing processes: open %s: %w", o.Root, err)
	}
	defer unix.Close(rootFD)
	wk.ctx, wk.rootFD = ctx, rootFD

	stale := o.sortOut(w)
	complete := !wk.useCache
	if len(unowned) > 0 {
		wk.unowned = make(map[uint64]struct{}, len(unowned))
		for _, ino := range unowned {
			wk.unowned[ino] = struct{}{}
		}
		w.fixed = make(map[uint64]socketOwner)
		if len(stale) > 0 {
			slices.Sort(stale)
			wk.run(rootFD, stale, true)
		}
		if wk.useCache && len(w.fixed) < len(unowned) && o.stillPending(w) {
			// A socket that had no owner at the previous reading still has
			// none: read every process not read yet.
			rest := make([]int32, 0, len(o.pids))
			for _, pid := range o.pids {
				if !wk.read[pid] {
					rest = append(rest, pid)
				}
			}
			wk.run(rootFD, rest, true)
			complete = true
		}
	} else if len(stale) > 0 {
		// Nothing is missing; the stale processes are read at the next
		// walk, for their fd count or cache entry no longer matches.
		for _, pid := range stale {
			delete(o.procs, pid)
		}
	}
	if wk.err != nil {
		return fmt.Errorf("walking /proc/PID/fd: %w", wk.err)
	}
	o.sortUnresolved(w, unowned, complete)
	return nil
}

// sortOut goes once over the index after the tables: a process read by
// this walk keeps in the cache only its sockets the tables listed (its
// others are UDP or Unix ones, or closed since); a process taken from the
// cache that held a socket the tables did not list closed it since, and is
// returned, to be read again.
func (o *SocketOwners) sortOut(w *OwnerWalk) (stale []int32) {
	wk, x := w.wk, &w.index
	for pid := range wk.read {
		if st := o.procs[pid]; st != nil {
			st.inodes = st.inodes[:0]
		}
	}
	var seen map[int32]bool
	for i := range x.keys {
		pid, listed := x.pidAt(i), x.isListedAt(i)
		if !listed && w.isHeld(x.inodeAt(i)) {
			// Dropped by the kernel, still held: kept, and FindHeld read
			// the process again.
			listed = true
		}
		if wk.read[pid] {
			if st := o.procs[pid]; listed && st != nil {
				st.inodes = append(st.inodes, x.inodeAt(i))
			}
			continue
		}
		if !listed && !seen[pid] {
			if seen == nil {
				seen = map[int32]bool{}
			}
			seen[pid] = true
			stale = append(stale, pid)
		}
	}
	return stale
}

// stillPending tells whether a socket left without an owner at the last
// reading still has none.
func (o *SocketOwners) stillPending(w *OwnerWalk) bool {
	for ino := range o.pending {
		if _, missing := w.wk.unowned[ino]; !missing {
			continue
		}
		if _, found := w.fixed[ino]; !found {
			return true
		}
	}
	return false
}

// sortUnresolved files the sockets left without an owner: after a walk that
// read every process, as held by no process that can be read (they start
// no walk of every process again); otherwise, unless already so filed, as
// pending, to be looked for in every process if they are still there at
// the next reading.
func (o *SocketOwners) sortUnresolved(w *OwnerWalk, unowned []uint64, complete bool) {
	if o.orphan == nil {
		o.orphan = make(map[uint64]struct{})
		o.pending = make(map[uint64]struct{})
	}
	old := o.orphan
	o.orphan, o.spareSet = o.spareSet, old
	if o.orphan == nil {
		o.orphan = make(map[uint64]struct{})
	}
	clear(o.orphan)
	clear(o.pending)
	for _, ino := range unowned {
		if _, found := w.fixed[ino]; found {
			continue
		}
		if _, was := old[ino]; complete || was {
			o.orphan[ino] = struct{}{}
		} else {
			o.pending[ino] = struct{}{}
		}
	}
}

// listPids reads the numeric folders of the procfs root, in pid order.
func (o *SocketOwners) listPids(rootFD int) error {
	if o.dirent == nil {
		o.dirent = make([]byte, 32<<10)
	}
	o.pids = o.pids[:0]
	for {
		n, err := unix.Getdents(rootFD, o.dirent)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			break
		}
		for b := o.dirent[:n]; len(b) >= direntNameOffset; {
			name, reclen := direntName(b)
			b = b[reclen:]
			if pid, ok := tables.ParseDec(name); ok && pid > 0 && pid < 1<<31 {
				o.pids = append(o.pids, int32(pid))
			}
		}
	}
	slices.Sort(o.pids)
	return nil
}

// Sized tells whether the inode index has room reserved already.
func (o *SocketOwners) Sized() bool { return o.keys != nil }

// Presize reserves room for n sockets in the inode index, before the first
// walk.
func (o *SocketOwners) Presize(n int) { o.keys = make([]uint64, 0, n) }
