package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/sys/unix"
)

// noOwner marks a socket whose owning process is not known.
const noOwner = -1

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

	wk *walk // the walk's state, for Settle
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
	return noOwner, 0
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
}

// procState is what the cache knows of one process.
type procState struct {
	start  uint64   // start time, in clock ticks after boot
	fds    int64    // its fd count
	inodes []uint64 // its socket fds: after a reading, only those in the TCP tables
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
	}
	w := &OwnerWalk{pidName: map[int32]int32{}}
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
			if pid, ok := parseDec(name); ok && pid > 0 && pid < 1<<31 {
				o.pids = append(o.pids, int32(pid))
			}
		}
	}
	slices.Sort(o.pids)
	return nil
}

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
			r := procReader{root: rootFD}
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
		st.start, st.fds = start, fds
		st.inodes = append(st.inodes[:0], inodes...)
		if force {
			// In Settle the index is built: keep what the tables listed
			// or still miss.
			st.inodes = slices.DeleteFunc(st.inodes, func(ino uint64) bool {
				_, missing := wk.unowned[ino]
				return !missing && !wk.w.index.isListed(ino)
			})
		}
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

// procReader reads one process's files at a time with reused buffers and
// raw system calls, so that reading an fd link allocates nothing.
type procReader struct {
	root   int
	path   []byte
	dirent []byte
	link   [64]byte
	small  [512]byte
	inodes []uint64
}

// at returns "PID/name\x00" for the *at system calls.
func (r *procReader) at(pid int32, name string) []byte {
	r.path = strconv.AppendInt(r.path[:0], int64(pid), 10)
	r.path = append(r.path, '/')
	r.path = append(r.path, name...)
	return append(r.path, 0)
}

// sockets returns the inodes of the process's socket fds, in r's buffer.
func (r *procReader) sockets(pid int32) ([]uint64, error) {
	dfd, err := openat(r.root, r.at(pid, "fd"), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	if r.dirent == nil {
		r.dirent = make([]byte, 32<<10)
	}
	r.inodes = r.inodes[:0]
	for {
		n, err := unix.Getdents(dfd, r.dirent)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, errnoErr(err)
		}
		if n <= 0 {
			return r.inodes, nil
		}
		for b := r.dirent[:n]; len(b) >= direntNameOffset; {
			name, reclen := direntName(b)
			if len(name) > 0 && name[0] != '.' {
				// The name is NUL-terminated in the buffer: hand it to
				// readlinkat as it is.
				m, err := readlinkat(dfd, &b[direntNameOffset], r.link[:])
				if err == unix.EACCES || err == unix.EPERM {
					return nil, errnoErr(err)
				}
				if err == nil {
					if ino, ok := parseSocketLink(r.link[:m]); ok {
						r.inodes = append(r.inodes, ino)
					}
				}
				// Any other error: the fd was closed since the listing.
			}
			b = b[reclen:]
		}
	}
}

// startTime reads field 22 of /proc/PID/stat.
func (r *procReader) startTime(pid int32) (uint64, error) {
	b, err := r.readSmall(pid, "stat")
	if err != nil {
		return 0, err
	}
	// The name in parentheses may hold anything: count from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := fields{rest: b[i+1:]}
	var tok []byte
	for range 20 { // fields 3 (state) to 22 (starttime)
		tok, _ = f.next()
	}
	v, ok := parseDec(tok)
	if !ok {
		return 0, errors.New("malformed stat")
	}
	return v, nil
}

func (r *procReader) fdCount(pid int32) (int64, error) {
	return fdCount(r.root, r.at(pid, "fd"))
}

// comm returns the process name as a label value.
func (r *procReader) comm(pid int32) (string, error) {
	b, err := r.readSmall(pid, "comm")
	if err != nil {
		return "", err
	}
	return processName(b), nil
}

// readSmall reads a small proc file into r.small.
func (r *procReader) readSmall(pid int32, name string) ([]byte, error) {
	fd, err := openat(r.root, r.at(pid, name), unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Read(fd, r.small[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, errnoErr(err)
		}
		return r.small[:n], nil
	}
}

// linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type, name.
const direntNameOffset = 19

// direntName returns the name of the first record of b (without its NUL)
// and the record's length.
func direntName(b []byte) ([]byte, int) {
	reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
	name := b[direntNameOffset:reclen]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return name, reclen
}

func openat(dirfd int, path []byte, flags int) (int, error) {
	for {
		fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])), uintptr(flags|unix.O_CLOEXEC), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, errnoErr(e)
		}
		return int(fd), nil
	}
}

func readlinkat(dirfd int, name *byte, buf []byte) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// fdCount returns the size of an fd folder: its number of open fds since
// Linux 6.2, 0 before.
func fdCount(dirfd int, path []byte) (int64, error) {
	var st unix.Stat_t
	_, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])), uintptr(unsafe.Pointer(&st)), 0, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return st.Size, nil
}

// errnoErr maps access errors to a deniedError, which is fs.ErrPermission
// as os's errors are, and keeps the errno for the log.
func errnoErr(err error) error {
	if errno, ok := err.(unix.Errno); ok && (errno == unix.EACCES || errno == unix.EPERM) {
		return deniedError{errno}
	}
	return err
}

// deniedError is a refused access: fs.ErrPermission, naming its errno.
type deniedError struct{ errno unix.Errno }

func (e deniedError) Error() string {
	return fmt.Sprintf("%s (%s)", e.errno.Error(), unix.ErrnoName(e.errno))
}

func (e deniedError) Is(target error) bool { return target == fs.ErrPermission }
func (e deniedError) Unwrap() error        { return e.errno }

// parseSocketLink reads the inode from an fd link target "socket:[12345]".
func parseSocketLink(link []byte) (uint64, bool) {
	const prefix = "socket:["
	if len(link) < len(prefix)+2 || string(link[:len(prefix)]) != prefix || link[len(link)-1] != ']' {
		return 0, false
	}
	return parseDec(link[len(prefix) : len(link)-1])
}

// processName turns the content of /proc/PID/comm into a label value: without
// its newline, and valid UTF-8 (comm is whatever bytes the program set).
func processName(comm []byte) string {
	comm = bytes.TrimSuffix(comm, []byte("\n"))
	if len(comm) == 0 {
		return "unknown"
	}
	if utf8.Valid(comm) {
		return string(comm)
	}
	return strings.ToValidUTF8(string(comm), "?")
}
