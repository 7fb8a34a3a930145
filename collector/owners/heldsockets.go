package owners

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sockets held after the kernel dropped them.
//
// A TCP socket reset by its peer (a keepalive probe answered with RST, a
// load balancer dropping an idle connection) leaves every kernel table at
// once: no /proc/net/tcp line and no sock_diag dump lists it, whatever the
// state mask, while the process that holds its descriptor still counts it
// as a pool slot. It is in the kernel's state CLOSE. This file finds such
// sockets after each reading of the tables (the socket fds the walk found
// that no table listed, their protocol asked in a second read of the
// holding process's fd folder, which also confirms they are still held),
// remembers the routes of the sockets that may end that way, and hands
// both to the views as sockets in state CLOSE.
//
// Nothing here touches the application's socket: the protocol comes from
// the system.sockprotoname extended attribute of /proc/PID/fd/N (a path
// lookup, no fd of the exporter's). Reading SO_ERROR, which would need the
// socket itself, would clear the error the application has yet to see.

// sockKind is what a socket fd is, as far as the tables are concerned.
type sockKind uint8

const (
	// kindUnknown: the protocol could not be read (a fixture tree, a
	// kernel without the attribute, the fd closed meanwhile).
	kindUnknown sockKind = iota
	// kindTCP: a TCP socket of either family ("TCP", "TCPv6").
	kindTCP
	// kindOther: unix, UDP, raw, netlink, packet...: never in the TCP
	// tables, and left out of the owner index.
	kindOther
	// kindMPTCP: an MPTCP socket ("MPTCP", "MPTCPv6"; Go's listeners ask
	// for MPTCP by default since Go 1.24). One that fell back to plain TCP
	// is listed under its inode; a real MPTCP connection is listed only by
	// its subflows, which hold no fd: kept in the index, never counted as
	// held.
	kindMPTCP
)

// maxSockProtos bounds the protocol cache; past it the cache starts
// afresh (each socket is then asked once more).
const maxSockProtos = 1 << 22

// sockProtos caches the protocol of the socket inodes that are not plain
// TCP (unix, UDP, MPTCP...), which never changes for the life of a socket:
// the walk leaves those out of the owner index. TCP sockets are not
// cached: most are listed by the tables, and the few that are not are
// asked again after each reading (confirmHeld), so the cache's size
// follows the host's other sockets, not its TCP ones. It is renewed at
// each walk that reads every process, keeping only the inodes seen since,
// so a closed socket's entry lasts at most two such walks. An entry costs
// about 10 bytes: socket inodes are 32-bit numbers (the kernel's
// get_next_ino), kept as such; a wider one is never cached.
type sockProtos struct {
	mu        sync.RWMutex
	cur, prev map[uint32]sockKind
}

func (p *sockProtos) get(ino uint64) sockKind {
	if ino > 1<<32-1 {
		return kindUnknown
	}
	key := uint32(ino)
	p.mu.RLock()
	k, ok := p.cur[key]
	if !ok {
		k, ok = p.prev[key]
		p.mu.RUnlock()
		if ok {
			p.put(ino, k) // seen again: kept at the next renew
		}
		return k
	}
	p.mu.RUnlock()
	return k
}

func (p *sockProtos) put(ino uint64, k sockKind) {
	if ino > 1<<32-1 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || len(p.cur) >= maxSockProtos {
		p.cur = map[uint32]sockKind{}
	}
	p.cur[uint32(ino)] = k
}

// renew starts a walk that reads every process: what it does not see again
// is forgotten at the next renew.
func (p *sockProtos) renew() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prev, p.cur = p.cur, map[uint32]sockKind{}
}

var sockProtoAttr = []byte("system.sockprotoname\x00")

// readKind reads what the socket fd name of process pid is from its
// system.sockprotoname attribute, and caches it unless plain TCP.
func (r *procReader) readKind(pid int32, name []byte, ino uint64) sockKind {
	// getxattr has no *at form before Linux 6.13: the full path.
	r.xpath = append(r.xpath[:0], r.rootPath...)
	r.xpath = append(r.xpath, '/')
	r.xpath = strconv.AppendInt(r.xpath, int64(pid), 10)
	r.xpath = append(r.xpath, "/fd/"...)
	r.xpath = append(r.xpath, name...)
	r.xpath = append(r.xpath, 0)
	n, _, e := unix.Syscall6(unix.SYS_GETXATTR, uintptr(unsafe.Pointer(&r.xpath[0])), uintptr(unsafe.Pointer(&sockProtoAttr[0])),
		uintptr(unsafe.Pointer(&r.xattr[0])), uintptr(len(r.xattr)), 0, 0)
	if e != 0 {
		return kindUnknown
	}
	k := kindOther
	switch v := bytes.TrimRight(r.xattr[:n], "\x00"); string(v) {
	case "TCP", "TCPv6":
		k = kindTCP
	case "MPTCP", "MPTCPv6":
		k = kindMPTCP
	}
	if k != kindTCP && r.protos != nil {
		r.protos.put(ino, k)
	}
	return k
}

// HeldSocket is a TCP socket a process holds that no table lists: the
// kernel dropped it (state CLOSE), the process has not closed it.
type HeldSocket struct {
	Inode uint64
	Pid   int32 // the lowest pid holding it
	Name  int32 // index in OwnerWalk.Names
	// FD is the fd of Pid it was confirmed at, where the next reading
	// confirms it again; -1 while not known.
	FD int32
}

// heldCandidates lists, after the tables, the sockets of the index no
// table listed and not known to be other than plain TCP, once each, with
// their lowest pid.
//
// After a start, every socket fd of another kind (unix, UDP) is one until
// it is asked once: thousands on a busy host. So the list is counted
// first and made to size, rather than grown.
func (o *SocketOwners) heldCandidates(w *OwnerWalk) []HeldSocket {
	x := &w.index
	candidate := func(i int) bool {
		ino := x.inodeAt(i)
		if i > 0 && x.inodeAt(i-1) == ino {
			return false // not the lowest pid
		}
		// Listed, or known not to be plain TCP: not held.
		return !x.isListedAt(i) && o.protos.get(ino) == kindUnknown
	}
	n := 0
	for i := range x.keys {
		if candidate(i) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]HeldSocket, 0, n)
	for i := range x.keys {
		if candidate(i) {
			pid := x.pidAt(i)
			out = append(out, HeldSocket{Inode: x.inodeAt(i), Pid: pid, Name: w.pidName[pid], FD: -1})
		}
	}
	return out
}

// confirmHeld reads again the fd folder of each process holding a
// candidate, asks each candidate's protocol (a unix or UDP socket, seen
// for the first time, is cached as such and left out of the next walks),
// so that only TCP sockets count, and a socket whose fd was closed between
// the walk and the tables (and so freed, and in no table) does not; and, unless every
// namespace is read, leaves out the processes of other network
// namespaces, whose sockets are in tables this reading did not see. It
// returns the confirmed sockets, sorted by inode, and the pids whose
// candidates were not all confirmed.
//
// A held socket stays held for many readings (until the application closes
// it), often in a process of thousands of fds: when every candidate of a
// process was confirmed at the previous reading (o.held, with the fd each
// was found at), each is confirmed again at that fd (its link still names
// the socket, its protocol is still TCP: two system calls) instead of the
// whole folder.
func (o *SocketOwners) confirmHeld(rootFD int, cands []HeldSocket, allNamespaces bool) (held []HeldSocket, changed []int32) {
	o.reread = o.reread[:0]
	prev := o.held
	defer func() { o.held = held }()
	if len(cands) == 0 {
		return nil, nil
	}
	slices.SortFunc(cands, func(a, b HeldSocket) int {
		if a.Pid != b.Pid {
			return int(a.Pid) - int(b.Pid)
		}
		return cmpU64(a.Inode, b.Inode)
	})
	r := procReader{root: rootFD, rootPath: o.Root, protos: &o.protos}
	var own []byte
	if !allNamespaces {
		n, err := readlinkat(rootFD, &[]byte("self/ns/net\x00")[0], r.link[:])
		if err != nil {
			return nil, nil
		}
		own = slices.Clone(r.link[:n])
	}
	for i := 0; i < len(cands); {
		pid := cands[i].Pid
		j := i
		for j < len(cands) && cands[j].Pid == pid {
			j++
		}
		if own != nil {
			n, err := readlinkat(rootFD, &r.at(pid, "ns/net")[0], r.link[:])
			if err != nil || !bytes.Equal(r.link[:n], own) {
				i = j
				continue
			}
		}
		if r.confirmAt(pid, cands[i:j], prev) {
			held = append(held, cands[i:j]...) // their FD set by confirmAt
			i = j
			continue
		}
		o.reread = append(o.reread, pid)
		// The group is sorted by inode: classify binary-searches it.
		n := j - i
		r.classifyInos = r.classifyInos[:0]
		for _, c := range cands[i:j] {
			r.classifyInos = append(r.classifyInos, c.Inode)
		}
		r.classifyKinds = slices.Grow(r.classifyKinds[:0], n)[:n]
		clear(r.classifyKinds) // kindUnknown
		r.classifyFDs = slices.Grow(r.classifyFDs[:0], n)[:n]
		for k := range r.classifyFDs {
			r.classifyFDs[k] = -1
		}
		_, err := r.sockets(pid)
		if err != nil {
			changed = append(changed, pid)
			i = j
			continue
		}
		all := true
		for k, c := range cands[i:j] {
			switch r.classifyKinds[k] {
			case kindTCP:
				c.FD = r.classifyFDs[k]
				held = append(held, c)
			case kindOther, kindMPTCP:
				// Not plain TCP: cached, and gone from the next walks.
			default:
				all = false // closed since, or unreadable
			}
		}
		if !all {
			changed = append(changed, pid)
		}
		i = j
	}
	slices.SortFunc(held, func(a, b HeldSocket) int { return cmpU64(a.Inode, b.Inode) })
	return held, changed
}

// confirmAt tells whether every one of cands, pid's candidates, is still
// where the last reading confirmed it (prev, sorted by inode): the link of
// the same fd names the same socket, and its protocol is TCP; then each
// candidate's FD is set. Any doubt (a candidate new since, an fd closed or
// reused, an error) answers false: the folder is read.
func (r *procReader) confirmAt(pid int32, cands []HeldSocket, prev []HeldSocket) bool {
	var name [12]byte
	for k := range cands {
		c := &cands[k]
		i, ok := slices.BinarySearchFunc(prev, c.Inode, func(h HeldSocket, ino uint64) int { return cmpU64(h.Inode, ino) })
		if !ok || prev[i].Pid != pid || prev[i].FD < 0 {
			return false
		}
		c.FD = prev[i].FD
		fd := strconv.AppendInt(name[:0], int64(c.FD), 10)
		r.path = strconv.AppendInt(r.path[:0], int64(pid), 10)
		r.path = append(append(append(r.path, "/fd/"...), fd...), 0)
		n, err := readlinkat(r.root, &r.path[0], r.link[:])
		if err != nil {
			return false
		}
		if ino, ok := parseSocketLink(r.link[:n]); !ok || ino != c.Inode {
			return false
		}
		if r.readKind(pid, fd, c.Inode) != kindTCP {
			return false
		}
	}
	return true
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// isHeld tells whether inode is one of the walk's confirmed held sockets.
func (w *OwnerWalk) isHeld(ino uint64) bool {
	_, ok := slices.BinarySearchFunc(w.Held, ino, func(h HeldSocket, ino uint64) int { return cmpU64(h.Inode, ino) })
	return ok
}
