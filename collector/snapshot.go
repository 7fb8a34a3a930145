package collector

import (
	"context"
	"net/netip"
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
// one snapshot; a snapshot is never changed once built.
type Snapshot struct {
	Sockets []Socket
	// Direction and Owner run parallel to Sockets. Owner indexes
	// OwnerNames, or is noOwner.
	Direction  []Direction
	Owner      []int32
	OwnerNames []string

	// TableErr is set when the tables could not be read completely: the
	// sockets present are real but some are missing.
	TableErr error
	// OwnersWalked tells whether the process view was built; OwnersErr is
	// set when the walk failed as a whole.
	OwnersWalked bool
	OwnersErr    error
	// DeniedProcesses counts processes whose sockets could not be read for
	// lack of privileges.
	DeniedProcesses int

	TablesDuration, OwnersDuration time.Duration
}

// snapshotReader builds snapshots from a table source and the /proc/PID/fd
// walk.
type snapshotReader struct {
	tables TableSource
	owners *SocketOwners
	// lastSize sizes the next snapshot's slices.
	lastSize int
}

// read builds one snapshot. A table source that fails outright yields a
// snapshot with no sockets and TableErr set.
func (r *snapshotReader) read(ctx context.Context, withOwners bool) *Snapshot {
	s := &Snapshot{}
	start := time.Now()
	s.Sockets, s.TableErr = r.tables.AppendSockets(ctx, make([]Socket, 0, r.lastSize+r.lastSize/8))
	r.lastSize = len(s.Sockets)
	s.TablesDuration = time.Since(start)
	s.classify()

	if withOwners {
		start = time.Now()
		s.attribute(ctx, r.owners)
		s.OwnersDuration = time.Since(start)
	}
	return s
}

type listenKey struct {
	addr netip.Addr
	port uint16
}

// classify sets each socket's direction. A socket is inbound when a listening
// socket holds its local port on its local address or on the wildcard
// address of either family (a dual-stack [::] listener accepts IPv4 too).
func (s *Snapshot) classify() {
	listeners := make(map[listenKey]struct{})
	for i := range s.Sockets {
		sk := &s.Sockets[i]
		if sk.State == StateListen {
			listeners[listenKey{sk.Local.Addr().Unmap(), sk.Local.Port()}] = struct{}{}
		}
	}
	v4any, v6any := netip.IPv4Unspecified(), netip.IPv6Unspecified()
	s.Direction = make([]Direction, len(s.Sockets))
	for i := range s.Sockets {
		sk := &s.Sockets[i]
		if sk.State == StateListen {
			s.Direction[i] = Listening
			continue
		}
		port := sk.Local.Port()
		if _, ok := listeners[listenKey{sk.Local.Addr().Unmap(), port}]; ok {
			s.Direction[i] = Inbound
		} else if _, ok := listeners[listenKey{v4any, port}]; ok {
			s.Direction[i] = Inbound
		} else if _, ok := listeners[listenKey{v6any, port}]; ok {
			s.Direction[i] = Inbound
		}
	}
}

// attribute maps each socket with an inode to the process holding it.
func (s *Snapshot) attribute(ctx context.Context, owners *SocketOwners) {
	s.OwnersWalked = true
	s.Owner = make([]int32, len(s.Sockets))
	wanted := make(map[uint64]socketOwner, len(s.Sockets))
	for i := range s.Sockets {
		s.Owner[i] = noOwner
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
	for i := range s.Sockets {
		if ino := s.Sockets[i].Inode; ino != 0 {
			s.Owner[i] = walk.Lookup(ino)
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
