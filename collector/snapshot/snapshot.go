package snapshot

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/owners"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
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
	// Unrouted sockets are held after the kernel dropped them, their
	// route never seen: counted per process only.
	Unrouted
)

// SockInfo is what a reading knows of a socket beside its table row, as the
// socket streams past the views.
type SockInfo struct {
	Dir Direction
	// Owner indexes Snapshot.OwnerNames, or is noOwner; pid is the lowest
	// pid holding the socket.
	Owner, pid int32
	// Age is how long a CLOSE_WAIT socket has been in that state, by
	// ageSource's clock (AgeNone: not known).
	Age       time.Duration
	AgeSource AgeSource
	// Held: a TCP socket a process holds that no table lists (state
	// CLOSE, heldclosed.go); the views of the kernel's tables skip it.
	Held bool
	// routed: the tracker, aging the socket, kept its route too.
	routed bool
}

// Tally counts one reading's sockets into a view's families: add sees
// every socket once, as it streams; emit, for every scrape that shares the
// reading, sends the families and must not change the Tally.
type Tally interface {
	Add(sk *tables.Socket, in *SockInfo)
	Emit(s *Snapshot, ch chan<- prometheus.Metric) error
}

// Snapshot is one reading of the TCP tables: no socket is kept, only what
// the enabled views counted as the sockets streamed (their tallies) and
// what the reading learnt on the way. Every scrape that shares the reading
// emits from the same tallies.
type Snapshot struct {
	Tallies []Tally // by the exporter's enabled collectors

	// OwnerNames are the names of the processes that hold sockets.
	OwnerNames []string

	// TableErr is set when the tables could not be read completely: the
	// sockets counted are real but some are missing.
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

	// TablesDuration is the time the tables took to stream through the
	// views; OwnersDuration the /proc/PID/fd walk before and after.
	TablesDuration, OwnersDuration time.Duration

	// Taken is when the reading began.
	Taken time.Time

	// Namespaces names the network namespaces read, indexed by
	// Socket.NetNS, when the source reads more than the exporter's own.
	Namespaces []string
	// NamespaceCgroups tells the container and pod of each namespace, by
	// Socket.NetNS; CgroupErr names the malformed cgroup files read.
	NamespaceCgroups []tables.CgroupInfo
	CgroupErr        error
	// Namespaced tells whether the source reads several namespaces.
	Namespaced bool

	// FDs lists, by pid, the open fds and the limit of every process
	// that owns a socket (when the owners were walked); FDsErr names the
	// malformed /proc/PID/limits files, whose processes are left out.
	FDs    []ProcessFDs
	FDsErr error

	// Held counts the TCP sockets held by processes that no table listed.
	Held int

	// CloseWait lists the CLOSE_WAIT sockets and the held ones, when the reading was asked
	// for them (top --sockets).
	CloseWait []CloseWaitSocket

	// Ephemeral is the exporter's namespace's Ephemeral port range, read
	// at the start of the reading (nil when it could not be: ephemeralErr
	// says why). It is the reader's and valid only while the tables stream.
	Ephemeral    *EphemeralPorts
	EphemeralErr error
}

// NetnsName is the netns label of a socket's namespace, as
// tcpstate_netns_connections names it: "host" for the exporter's own
// (every socket, when the source reads only that one).
func (s *Snapshot) NetnsName(ns uint16) string {
	if int(ns) < len(s.Namespaces) {
		return s.Namespaces[ns]
	}
	if ns == 0 {
		return tables.HostNetns
	}
	return "unknown"
}

// maxDeferred bounds the sockets a reading keeps aside when the walk did
// not know their owner, or when a CLOSE_WAIT socket's kernel age is to be
// looked up, to count them after the tables. Beyond it they are counted at
// once: as unresolved, or without an age this time.
const maxDeferred = 16384

// Reader builds snapshots from a table source and the /proc/PID/fd
// walk. Readings never overlap (the Exporter runs one at a time), so the
// scratch space a reading needs is kept here and reused.
type Reader struct {
	Tables tables.TableSource
	Owners *owners.SocketOwners
	// ProcRoot is --path.procfs, for the ephemeral port range.
	ProcRoot string
	// Tracker remembers CLOSE_WAIT ages and the routes of sockets that
	// may end held; pools tells which match a pool of config's.
	Tracker *CloseWaitTracker
	pools   poolRoutes
	Config  func() *config.Config

	classifier classifier
	ephemeral  EphemeralPorts
	deferred   []deferredSocket
	unowned    []uint64
	in         SockInfo // the streaming socket's
	// The reading's kernel ages: the source that gives them, whether it
	// dumps them, whether some new CLOSE_WAIT socket found no room to be
	// set aside; needDumpAges asks the next reading to dump them (the
	// first does).
	ager                    tables.KernelAger
	agesInDump, ageOverflow bool
	NeedDumpAges            bool
	listCloseWait           bool
	routePids               *RoutePids
	fdPids                  fdPids
}

// deferredSocket is a socket set aside until its owner or kernel age is
// looked up, after the tables.
type deferredSocket struct {
	sk       tables.Socket
	in       SockInfo
	needsAge bool
}

// Request says what one reading builds.
type Request struct {
	// Views make the tallies, in the order of Snapshot.tallies.
	Views      []View
	WithOwners bool
	// CloseWait also lists the CLOSE_WAIT sockets one by one.
	CloseWait bool
	// RoutePids, when set, collects the pids holding each route's sockets.
	RoutePids *RoutePids
}

// Read builds one snapshot: the walk of /proc/PID/fd first (when asked),
// so that every socket's owner is known as the tables stream, then the
// tables, each socket classified, aged and counted by every view, and none
// kept. A table source that fails outright yields a snapshot with nothing
// counted and TableErr set.
func (r *Reader) Read(ctx context.Context, req Request) *Snapshot {
	s := &Snapshot{Taken: time.Now()}
	_, s.Namespaced = r.Tables.(tables.NamespaceNamer)
	var walk *owners.OwnerWalk
	if req.WithOwners {
		walk = r.walkOwners(ctx, s)
	}

	// Kernel ages: the first reading (and one after a reading that could
	// not look up all its new CLOSE_WAIT sockets) has every CLOSE_WAIT
	// socket dumped with its age; the others look up only the CLOSE_WAIT
	// sockets the tracker does not know yet.
	r.ager = nil
	if ager, ok := tables.AgerOf(r.Tables); ok && r.Tracker != nil {
		r.ager, r.agesInDump = ager, r.NeedDumpAges
		ager.SetAgesInDump(r.agesInDump)
	}
	r.listCloseWait, r.routePids = req.CloseWait, req.RoutePids
	var cfg *config.Config
	if r.Config != nil {
		cfg = r.Config()
	}
	start := time.Now()
	// The range can change between readings (sysctl -w): read it each time,
	// before the views' tallies, which take what they need of it.
	s.Ephemeral, r.classifier.ephemeral = nil, nil
	if s.EphemeralErr = ReadEphemeralPorts(r.ProcRoot, &r.ephemeral); s.EphemeralErr == nil {
		s.Ephemeral, r.classifier.ephemeral = &r.ephemeral, &r.ephemeral
	}
	for attempt := 0; ; attempt++ {
		s.Tallies = s.Tallies[:0]
		for _, v := range req.Views {
			s.Tallies = append(s.Tallies, v.NewTally(s))
		}
		s.CloseWait = nil
		if r.routePids != nil {
			clear(r.routePids.Pids)
		}
		r.deferred, r.unowned, r.ageOverflow = r.deferred[:0], r.unowned[:0], false
		r.classifier.reset()
		if r.Tracker != nil {
			r.Tracker.begin()
		}
		r.pools.reset(cfg)
		r.fdPids.reset()
		s.TableErr = r.Tables.Stream(ctx, func(sk *tables.Socket) { r.socket(s, walk, sk) })
		if attempt == 0 && errors.Is(s.TableErr, tables.ErrRestartReading) {
			continue
		}
		break
	}
	if n, ok := r.Tables.(tables.NamespaceNamer); ok {
		// Cloned: the source reuses them, and scrapes may still be
		// emitting this reading when the next one begins.
		s.Namespaces = slices.Clone(n.Namespaces())
		s.NamespaceCgroups = slices.Clone(n.NamespaceCgroups())
		s.CgroupErr = n.CgroupErr()
	}
	s.TablesDuration = time.Since(start)

	r.countDeferred(ctx, s, walk)
	return s
}

// walkOwners walks /proc/PID/fd before the tables are read, so that each
// socket's owner is known as the tables stream.
func (r *Reader) walkOwners(ctx context.Context, s *Snapshot) *owners.OwnerWalk {
	start := time.Now()
	if !r.Owners.Sized() {
		// Size the first index from the kernel's socket counters rather
		// than by growing: growing a large slice leaves several times its
		// size in garbage, and the process's peak memory with it.
		if n := tcpSocketEstimate(r.Owners.Root); n > 0 {
			r.Owners.Presize(n + n/8)
		}
	}
	s.OwnersWalked = true
	walk, err := r.Owners.Walk(ctx)
	s.OwnersErr = err
	if walk != nil {
		r.Owners.PrefetchLimits(ctx, walk) // read beside the tables
		s.OwnerNames = walk.Names
		s.DeniedProcesses, s.DeniedPIDs, s.DeniedErr = walk.Denied, walk.DeniedPIDs, walk.DeniedErr
	}
	s.OwnersDuration = time.Since(start)
	return walk
}

// countDeferred finishes a reading with the sockets set aside as the
// tables streamed: their owners (Settle), their kernel ages (one lookup
// each), then they are counted; and closes the tracker's reading.
func (r *Reader) countDeferred(ctx context.Context, s *Snapshot, walk *owners.OwnerWalk) {
	if walk != nil {
		start := time.Now()
		if s.TableErr == nil && s.OwnersErr == nil {
			// Only a complete listing tells a dropped socket from one the
			// reading missed.
			if err := r.Owners.FindHeld(ctx, walk, s.Namespaced); err != nil {
				s.OwnersErr = err
			}
		}
		if err := r.Owners.Settle(ctx, walk, r.unowned); err != nil && s.OwnersErr == nil {
			s.OwnersErr = err
		}
		s.OwnerNames = walk.Names // Settle may have found new ones
		s.OwnersDuration += time.Since(start)
	}
	queryErr := r.queryAges(ctx)
	for i := range r.deferred {
		d := &r.deferred[i]
		if walk != nil && d.in.Owner == owners.NoOwner && d.sk.Inode != 0 {
			d.in.Owner, d.in.pid = walk.Lookup(d.sk.Inode)
		}
		if d.needsAge {
			r.Tracker.observe(&d.sk, &d.in, s.Taken)
		}
		r.count(s, &d.sk, &d.in)
	}
	if walk != nil {
		r.countHeld(s, walk)
		start := time.Now()
		if s.OwnersErr == nil {
			r.readFDs(ctx, s, walk)
		}
		s.OwnersDuration += time.Since(start)
	}
	if r.Tracker != nil {
		r.Tracker.end(s.TableErr == nil)
		// Past its bound the tracker cannot remember the sockets left
		// out: each would be new, and looked up, at every reading, and
		// past maxDeferred have no age every other one. Dumped, every
		// one has its kernel age at every reading.
		_, untracked := r.Tracker.Tracked()
		r.NeedDumpAges = r.ageOverflow || queryErr != nil || untracked > 0
	}
	clear(r.deferred) // drop the copies' references
}

// queryAges looks up the kernel ages of the CLOSE_WAIT sockets set aside
// for them.
func (r *Reader) queryAges(ctx context.Context) error {
	if r.ager == nil {
		return nil
	}
	var socks []*tables.Socket
	for i := range r.deferred {
		if r.deferred[i].needsAge {
			socks = append(socks, &r.deferred[i].sk)
		}
	}
	return r.ager.QueryAges(ctx, socks)
}

// socket takes one socket as it streams: classifies it, finds its owner
// and age, and counts it, or sets it aside when its owner or its kernel
// age is to be looked up after the tables.
func (r *Reader) socket(s *Snapshot, walk *owners.OwnerWalk, sk *tables.Socket) {
	// One sockInfo, reused: handed to the views through an interface, a
	// fresh one would escape to the heap for every socket.
	in := &r.in
	*in = SockInfo{Dir: r.classifier.direction(sk), Owner: owners.NoOwner}
	needsOwner := false
	if walk != nil && sk.Inode != 0 {
		in.Owner, in.pid = walk.Lookup(sk.Inode)
		if in.Owner == owners.NoOwner {
			r.unowned = append(r.unowned, sk.Inode)
			needsOwner = true
		}
	}
	needsAge := false
	if sk.State == tables.StateCloseWait && r.Tracker != nil {
		if r.ager != nil && !r.agesInDump && sk.NetNS == 0 && !sk.HasAckAge {
			// Dumped without its age, in the namespace netlink reads: a
			// socket new to the tracker has its age looked up after the
			// tables; a known one needs none.
			needsAge = !r.Tracker.observeKnown(sk, in, s.Taken)
		} else {
			r.Tracker.observe(sk, in, s.Taken)
		}
	}
	if needsOwner || needsAge {
		if len(r.deferred) < maxDeferred {
			r.deferred = append(r.deferred, deferredSocket{sk: *sk, in: *in, needsAge: needsAge})
			return
		}
		if needsAge {
			// No room: no age this time, and the next reading dumps the
			// ages of every CLOSE_WAIT socket.
			r.Tracker.observeAs(sk, in, s.Taken, false)
			r.ageOverflow = true
		}
	}
	r.count(s, sk, in)
}

// count hands a socket to every view.
func (r *Reader) count(s *Snapshot, sk *tables.Socket, in *SockInfo) {
	for _, t := range s.Tallies {
		t.Add(sk, in)
	}
	r.remember(s, sk, in)
	if in.Owner != owners.NoOwner {
		r.fdPids.add(in.pid, ProcessKey{in.Owner, sk.NetNS})
	}
	if r.listCloseWait && (sk.State == tables.StateCloseWait || in.Held) {
		s.CloseWait = append(s.CloseWait, closeWaitSocketOf(sk, in))
	}
	if r.routePids != nil {
		r.routePids.add(sk, in)
	}
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
			if f[i] == "alloc" {
				v, _ := strconv.Atoi(f[i+1])
				n += v
			}
		}
		return min(max(n, 0), 1<<24)
	}
	return 0
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

// classifier tells inbound from outbound sockets as they stream. A socket
// is inbound when a listening socket holds its local port on its local
// address or on the wildcard address of either family (a dual-stack [::]
// listener accepts IPv4 too). The kernel lists each table's listeners
// first (both /proc/net/tcp and a sock_diag dump walk the listening hash
// before the established one), so every listener a socket could belong to
// has been seen when the socket arrives: IPv4 sockets are accepted by IPv4
// listeners, and the IPv6 table, read second, sees the listeners of both.
// The sources report a listener out of that order as an error.
//
// A socket no listener claims is still inbound when its local port lies
// outside the ephemeral port range and its remote port inside it: the
// peer picked its port with connect(), this host did not. That covers the
// sockets of a server that stopped listening (restarted, or closing its
// listener first), whose TIME_WAIT and CLOSE_WAIT remnants would otherwise
// count as outbound, one remote_port series per client port.
type classifier struct {
	listeners map[listenKey]struct{}
	ports     portSet
	// ephemeral, when known, applies the port-range rule.
	ephemeral *EphemeralPorts
}

func (c *classifier) reset() {
	if c.listeners == nil {
		c.listeners = make(map[listenKey]struct{})
	}
	clear(c.listeners)
	clear(c.ports[:])
}

func (c *classifier) direction(sk *tables.Socket) Direction {
	port := sk.Local.Port()
	switch {
	case sk.State == tables.StateListen:
		c.listeners[listenKey{sk.Local.Addr().Unmap(), port, sk.NetNS}] = struct{}{}
		c.ports.add(port)
		return Listening
	case !c.ports.has(port):
		// Most sockets: no listener on this port at all.
		return c.byPortRange(sk)
	}
	if _, ok := c.listeners[listenKey{sk.Local.Addr().Unmap(), port, sk.NetNS}]; ok {
		return Inbound
	}
	if _, ok := c.listeners[listenKey{netip.IPv4Unspecified(), port, sk.NetNS}]; ok {
		return Inbound
	}
	if _, ok := c.listeners[listenKey{netip.IPv6Unspecified(), port, sk.NetNS}]; ok {
		return Inbound
	}
	return c.byPortRange(sk)
}

// byPortRange classifies a socket no listener claims: inbound when its
// local port is outside the ephemeral range (or reserved) and its remote
// port inside it, outbound otherwise.
func (c *classifier) byPortRange(sk *tables.Socket) Direction {
	if e := c.ephemeral; e != nil && !e.Contains(sk.Local.Port()) && e.Contains(sk.Remote.Port()) {
		return Inbound
	}
	return Outbound
}

// View is one switchable group of metric families, a view of a
// reading: its tally counts the sockets as they stream, and emits what it
// can, returning an error when the reading was incomplete for it.
type View interface {
	// NewTally returns an empty tally for one reading of s.
	NewTally(s *Snapshot) Tally
}
