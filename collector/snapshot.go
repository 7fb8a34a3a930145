package collector

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Direction says how a socket relates to the host's listening sockets.
type Direction uint8

const (
	// Outbound sockets were opened by a client on this host: their local
	// address and port belong to no listening socket.
	Outbound Direction = iota
	// Inbound sockets were accepted on one of this host's listening ports.
	Inbound
	// Listening sockets wait for connections.
	Listening
)

// Snapshot is one reading of the TCP tables, with each socket classified and,
// when asked for, attributed to a process. Every metric family is a view of
// one snapshot; a snapshot is never changed once built, until every scrape
// that used it released it (its buffers then serve a later reading).
type Snapshot struct {
	Sockets []Socket
	// Direction, Owner and OwnerPid run parallel to Sockets. Owner indexes
	// OwnerNames, or is noOwner; OwnerPid is the pid that holds the socket
	// (the lowest, when several do).
	Direction  []Direction
	Owner      []int32
	OwnerPid   []int32
	OwnerNames []string

	// TableErr is set when the tables could not be read completely: the
	// sockets present are real but some are missing.
	TableErr error
	// OwnersWalked tells whether the process view was built; OwnersErr is
	// set when the walk failed as a whole.
	OwnersWalked bool
	OwnersErr    error
	// DeniedProcesses counts processes whose sockets could not be read for
	// lack of privileges; DeniedPIDs lists them and DeniedErr is the error
	// of the first.
	DeniedProcesses int
	DeniedPIDs      []int32
	DeniedErr       error

	TablesDuration, OwnersDuration time.Duration

	// Taken is when the tables were read. CloseWaitSince, parallel to
	// Sockets when CLOSE_WAIT ages are tracked, holds since when each
	// CLOSE_WAIT socket has been in that state, and by which clock.
	Taken          time.Time
	CloseWaitSince []closeWaitSince

	// Namespaces names the network namespaces read, indexed by
	// Socket.NetNS, when the source reads more than the exporter's own.
	Namespaces []string
}

// snapshotReader builds snapshots from a table source and the /proc/PID/fd
// walk. Readings never overlap (the Exporter runs one at a time), so the
// buffers a reading needs besides the snapshot are kept here and reused; a
// snapshot's own buffers are reused once every scrape using it released it,
// so that a scrape allocates the same whatever the number of sockets.
type snapshotReader struct {
	tables TableSource
	owners *SocketOwners
	// lastSize sizes the next snapshot's slices.
	lastSize int

	listeners map[listenKey]struct{}
	ports     *portSet
	wanted    map[uint64]socketOwner

	mu    sync.Mutex // guards spare
	spare *Snapshot
}

// read builds one snapshot. A table source that fails outright yields a
// snapshot with no sockets and TableErr set.
func (r *snapshotReader) read(ctx context.Context, withOwners bool) *Snapshot {
	r.mu.Lock()
	s := r.spare
	r.spare = nil
	r.mu.Unlock()
	if s == nil {
		s = &Snapshot{}
	}
	*s = Snapshot{Sockets: s.Sockets[:0], Direction: s.Direction[:0], Owner: s.Owner[:0], OwnerPid: s.OwnerPid[:0], CloseWaitSince: s.CloseWaitSince[:0]}
	if r.lastSize == 0 {
		// Size the first reading from the kernel's socket counters rather
		// than by growing: growing a large slice leaves four times its size
		// in garbage, and the process's peak memory with it.
		r.lastSize = tcpSocketEstimate(r.owners.Root)
	}
	if cap(s.Sockets) < r.lastSize {
		s.Sockets = make([]Socket, 0, r.lastSize+r.lastSize/16)
	}
	if r.listeners == nil {
		r.listeners = make(map[listenKey]struct{})
		r.ports = new(portSet)
		r.wanted = make(map[uint64]socketOwner)
	}

	start := time.Now()
	s.Sockets, s.TableErr = r.tables.AppendSockets(ctx, s.Sockets)
	if n, ok := r.tables.(namespaceNamer); ok {
		s.Namespaces = n.Namespaces()
	}
	r.lastSize = len(s.Sockets)
	s.TablesDuration = time.Since(start)
	s.classify(r.listeners, r.ports)

	if withOwners {
		start = time.Now()
		s.attribute(ctx, r.owners, r.wanted)
		s.OwnersDuration = time.Since(start)
	}
	return s
}

// tcpSocketEstimate reads how many TCP sockets the kernel has allocated and
// holds in TIME_WAIT from net/sockstat: about the lines of both tables.
// It returns 0 when the file cannot be read.
func tcpSocketEstimate(procRoot string) int {
	data, err := os.ReadFile(filepath.Join(procRoot, "net", "sockstat"))
	if err != nil {
		return 0
	}
	// TCP: inuse 27 orphan 0 tw 3 alloc 30 mem 1
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "TCP: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		n := 0
		for i := 0; i+1 < len(f); i += 2 {
			if f[i] == "alloc" || f[i] == "tw" {
				v, _ := strconv.Atoi(f[i+1])
				n += v
			}
		}
		return min(max(n, 0), 1<<24)
	}
	return 0
}

// release takes back a snapshot that no scrape uses any more, so that the
// next reading reuses its buffers.
func (r *snapshotReader) release(s *Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spare == nil || cap(s.Sockets) > cap(r.spare.Sockets) {
		r.spare = s
	}
}

type listenKey struct {
	addr  netip.Addr
	port  uint16
	netns uint16 // listeners serve only their own network namespace
}

// portSet is a set of ports, one bit each.
type portSet [1 << 16 / 64]uint64

func (p *portSet) add(port uint16)      { p[port>>6] |= 1 << (port & 63) }
func (p *portSet) has(port uint16) bool { return p[port>>6]&(1<<(port&63)) != 0 }

// classify sets each socket's direction. A socket is inbound when a listening
// socket holds its local port on its local address or on the wildcard
// address of either family (a dual-stack [::] listener accepts IPv4 too).
// listeners and ports are scratch space, cleared here.
func (s *Snapshot) classify(listeners map[listenKey]struct{}, ports *portSet) {
	clear(listeners)
	clear(ports[:])
	for i := range s.Sockets {
		sk := &s.Sockets[i]
		if sk.State == StateListen {
			listeners[listenKey{sk.Local.Addr().Unmap(), sk.Local.Port(), sk.NetNS}] = struct{}{}
			ports.add(sk.Local.Port())
		}
	}
	v4any, v6any := netip.IPv4Unspecified(), netip.IPv6Unspecified()
	s.Direction = slices.Grow(s.Direction[:0], len(s.Sockets))[:len(s.Sockets)]
	for i := range s.Sockets {
		sk := &s.Sockets[i]
		port := sk.Local.Port()
		switch {
		case sk.State == StateListen:
			s.Direction[i] = Listening
		case !ports.has(port):
			// Most sockets: no listener on this port at all.
			s.Direction[i] = Outbound
		default:
			s.Direction[i] = Outbound
			if _, ok := listeners[listenKey{sk.Local.Addr().Unmap(), port, sk.NetNS}]; ok {
				s.Direction[i] = Inbound
			} else if _, ok := listeners[listenKey{v4any, port, sk.NetNS}]; ok {
				s.Direction[i] = Inbound
			} else if _, ok := listeners[listenKey{v6any, port, sk.NetNS}]; ok {
				s.Direction[i] = Inbound
			}
		}
	}
}

// attribute maps each socket with an inode to the process holding it.
// wanted is scratch space, cleared here.
func (s *Snapshot) attribute(ctx context.Context, owners *SocketOwners, wanted map[uint64]socketOwner) {
	s.OwnersWalked = true
	s.Owner = slices.Grow(s.Owner[:0], len(s.Sockets))[:len(s.Sockets)]
	s.OwnerPid = slices.Grow(s.OwnerPid[:0], len(s.Sockets))[:len(s.Sockets)]
	clear(wanted)
	for i := range s.Sockets {
		s.Owner[i], s.OwnerPid[i] = noOwner, 0
		if ino := s.Sockets[i].Inode; ino != 0 {
			wanted[ino] = socketOwner{name: noOwner}
		}
	}
	walk, err := owners.Walk(ctx, wanted)
	if err != nil {
		s.OwnersErr = err
		return
	}
	s.OwnerNames = walk.Names
	s.DeniedProcesses = walk.Denied
	s.DeniedPIDs, s.DeniedErr = walk.DeniedPIDs, walk.DeniedErr
	for i := range s.Sockets {
		if ino := s.Sockets[i].Inode; ino != 0 {
			s.Owner[i], s.OwnerPid[i] = walk.Lookup(ino)
		}
	}
}

// OwnerName returns the name of the process holding socket i, and whether it
// is known.
func (s *Snapshot) OwnerName(i int) (string, bool) {
	if !s.OwnersWalked || s.OwnersErr != nil || s.Owner[i] == noOwner {
		return "", false
	}
	return s.OwnerNames[s.Owner[i]], true
}
