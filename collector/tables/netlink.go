package tables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// NetlinkTables lists TCP sockets through the kernel's sock_diag interface:
// one INET_DIAG dump per address family on a NETLINK_SOCK_DIAG socket. The
// kernel sends fixed-size binary records, so a reading costs a fraction of
// formatting and parsing /proc/net/tcp, and nothing is allocated per socket.
//
// It speaks the protocol with golang.org/x/sys/unix directly: the request is
// one fixed struct and the answer a stream of fixed records, and the netlink
// libraries measured against it (docs/performance.md) allocate per message
// or per socket where this reads in place from one reused buffer.
type NetlinkTables struct {
	// AgesInDump lists the CLOSE_WAIT sockets in a dump of their own, which
	// asks for struct tcp_info, so that each comes with its kernel age.
	// That second dump walks the kernel's whole socket hash again (about
	// 15 % more time), so the reader asks for it only when it needs the
	// ages of many CLOSE_WAIT sockets at once (the first reading after a
	// start); otherwise one dump lists every state and QueryAges looks up
	// the few new CLOSE_WAIT sockets one by one.
	AgesInDump bool
	// MemInfo asks every dump for INET_DIAG_SKMEMINFO, so that each full
	// socket comes with its memory and drops (40 more bytes per socket).
	MemInfo bool
	// ListenMemInfo asks it of the listening sockets only, for their
	// drops: they come first, in a dump of their own (the kernel walks
	// only its table of listeners for it), the rest without it.
	ListenMemInfo bool

	bufs sync.Pool // *[]byte receive buffers
	seq  atomic.Uint32
}

// NewNetlinkTables returns a source that dumps the TCP sockets of the
// network namespace the exporter runs in.
func NewNetlinkTables() *NetlinkTables {
	return &NetlinkTables{}
}

// Layout of the kernel's messages (include/uapi/linux/netlink.h,
// include/uapi/linux/inet_diag.h, include/uapi/linux/sock_diag.h).
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	nlmsgHdrLen      = 16 // struct nlmsghdr
	inetDiagReqLen   = 56 // struct inet_diag_req_v2
	inetDiagMsgLen   = 72 // struct inet_diag_msg
	// allStatesMask asks for sockets in every state, including the
	// TIME_WAIT and SYN_RECV (request) minisockets /proc/net/tcp lists too.
	allStatesMask = 0xffffffff
	// closeWaitMask selects CLOSE_WAIT sockets: they are dumped on their
	// own, with struct tcp_info, so that only they pay for it.
	closeWaitMask = 1 << StateCloseWait
	// inetDiagInfo is the INET_DIAG_INFO attribute (struct tcp_info); the
	// request's idiag_ext asks for attribute N with bit N-1.
	inetDiagInfo = 2
	extTCPInfo   = 1 << (inetDiagInfo - 1)
	// inetDiagSkmeminfo is INET_DIAG_SKMEMINFO (7): u32 sk_meminfo[] indexed
	// by SK_MEMINFO_* (include/uapi/linux/sock_diag.h).
	inetDiagSkmeminfo   = 7
	extSkmeminfo        = 1 << (inetDiagSkmeminfo - 1)
	skMeminfoRmemAlloc  = 0
	skMeminfoFwdAlloc   = 4
	skMeminfoWmemQueued = 5
	skMeminfoDrops      = 8
	rtaHdrLen           = 4  // struct rtattr
	lastAckRecvOff      = 56 // tcpi_last_ack_recv in struct tcp_info (include/uapi/linux/tcp.h)
	lastAckRecvSize     = 4
	// recvBufSize bounds one read. The kernel fills at most 32 KiB of dump
	// messages per read (less than a page for the first); the margin keeps
	// a larger datagram from being cut short.
	recvBufSize = 64 << 10
)

// Stream dumps every TCP socket. CLOSE_WAIT sockets come from a second,
// small dump per family that asks for struct tcp_info, whose
// tcpi_last_ack_recv gives their age in CLOSE_WAIT from the kernel's own
// clock (see Socket.AckAge); the common path stays a plain dump.
func (n *NetlinkTables) Stream(ctx context.Context, fn func(*Socket)) error {
	var ext uint8
	states := uint32(allStatesMask)
	switch {
	case n.MemInfo:
		ext = extSkmeminfo
	case n.ListenMemInfo:
		// Listeners first, as every table lists them, with their drops.
		const listen = 1 << StateListen
		if err := n.dump(ctx, fn, listen, extSkmeminfo, unix.AF_INET, unix.AF_INET6); err != nil {
			return err
		}
		states &^= listen
	}
	if !n.AgesInDump {
		return n.dump(ctx, fn, states, ext, unix.AF_INET, unix.AF_INET6)
	}
	if err := n.dump(ctx, fn, states&^closeWaitMask, ext, unix.AF_INET, unix.AF_INET6); err != nil {
		return err
	}
	return n.dump(ctx, fn, closeWaitMask, ext|extTCPInfo, unix.AF_INET, unix.AF_INET6)
}

func (n *NetlinkTables) SetAgesInDump(on bool) { n.AgesInDump = on }

func (n *NetlinkTables) SetMemInfo(all, listeners bool) { n.MemInfo, n.ListenMemInfo = all, listeners }

// queryBatch bounds the lookups sent at once: their answers (about 340
// bytes each, with tcp_info) must fit the socket's receive buffer.
const queryBatch = 128

// QueryAges looks up each of socks (CLOSE_WAIT sockets of the exporter's
// own network namespace) by its addresses and ports, asking for struct
// tcp_info, and fills in its kernel age. A lookup is a hash lookup in the
// kernel, not a walk of every socket. A socket closed since, or bound to a
// device, is not found and keeps no age.
func (n *NetlinkTables) QueryAges(ctx context.Context, socks []*Socket) error {
	if len(socks) == 0 {
		return nil
	}
	fd, bp, done, err := n.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	req := make([]byte, 0, queryBatch*(nlmsgHdrLen+inetDiagReqLen))
	for start := 0; start < len(socks); start += queryBatch {
		batch := socks[start:min(start+queryBatch, len(socks))]
		base := n.seq.Add(uint32(len(batch))) - uint32(len(batch)) + 1
		req = req[:0]
		for i, s := range batch {
			req = appendQuery(req, base+uint32(i), s)
		}
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return fmt.Errorf("sending sock_diag lookups: %w", err)
		}
		if err := readAnswers(ctx, fd, *bp, base, batch); err != nil {
			return err
		}
	}
	return nil
}

// appendQuery appends the lookup of one socket: struct inet_diag_req_v2
// without NLM_F_DUMP, the socket's id as a dump reports it (src is the
// local end), no cookie.
func appendQuery(b []byte, seq uint32, s *Socket) []byte {
	ne := binary.NativeEndian
	var m [nlmsgHdrLen + inetDiagReqLen]byte
	ne.PutUint32(m[0:], uint32(len(m)))
	ne.PutUint16(m[4:], sockDiagByFamily)
	ne.PutUint16(m[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(m[8:], seq)
	r := m[nlmsgHdrLen:]
	r[0] = unix.AF_INET
	if s.Family == IPv6 {
		r[0] = unix.AF_INET6
	}
	r[1] = unix.IPPROTO_TCP
	r[2] = extTCPInfo
	ne.PutUint32(r[4:], closeWaitMask)
	binary.BigEndian.PutUint16(r[8:], s.Local.Port())
	binary.BigEndian.PutUint16(r[10:], s.Remote.Port())
	if s.Family == IPv6 {
		l, rm := s.Local.Addr().As16(), s.Remote.Addr().As16()
		copy(r[12:28], l[:])
		copy(r[28:44], rm[:])
	} else {
		l, rm := s.Local.Addr().As4(), s.Remote.Addr().As4()
		copy(r[12:16], l[:])
		copy(r[28:32], rm[:])
	}
	ne.PutUint32(r[48:], ^uint32(0)) // INET_DIAG_NOCOOKIE
	ne.PutUint32(r[52:], ^uint32(0))
	return append(b, m[:]...)
}

// readAnswers reads one answer (a socket, or an error such as ENOENT for a
// socket gone) per lookup of batch, numbered from base.
func readAnswers(ctx context.Context, fd int, buf []byte, base uint32, batch []*Socket) error {
	ne := binary.NativeEndian
	for left := len(batch); left > 0; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading sock_diag answers: %w", err)
		}
		m, err := unix.Read(fd, buf)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				err = context.DeadlineExceeded
			}
			return fmt.Errorf("reading sock_diag answers: %w", err)
		}
		for b := buf[:m]; len(b) >= nlmsgHdrLen; {
			l := int(ne.Uint32(b[0:]))
			if l < nlmsgHdrLen || l > len(b) {
				return fmt.Errorf("sock_diag answers: malformed message of %d bytes in a read of %d", l, len(b))
			}
			typ, seq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
			msg := b[nlmsgHdrLen:l]
			b = b[min((l+3)&^3, len(b)):]
			i := int(seq - base)
			if seq < base || i >= len(batch) {
				continue // not ours
			}
			switch typ {
			case unix.NLMSG_ERROR:
				left-- // not found (closed since) or refused: no age
			case sockDiagByFamily:
				left--
				if len(msg) >= inetDiagMsgLen {
					if ms, ok := lastAckRecv(msg[inetDiagMsgLen:]); ok {
						batch[i].AckAge, batch[i].HasAckAge = ms, true
					}
				}
			}
		}
	}
	return nil
}

// probe checks that sock_diag answers for TCP, asking only for listening
// sockets so that it stays cheap on a host with many connections.
func (n *NetlinkTables) probe(ctx context.Context) error {
	return n.dump(ctx, func(*Socket) {}, 1<<StateListen, 0, unix.AF_INET)
}

// open opens a NETLINK_SOCK_DIAG socket whose reads end with ctx's
// deadline, and takes a receive buffer; done closes and hands it back.
func (n *NetlinkTables) open(ctx context.Context) (fd int, buf *[]byte, done func(), err error) {
	fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, nil, nil, fmt.Errorf("opening a NETLINK_SOCK_DIAG socket: %w", err)
	}
	if d, ok := ctx.Deadline(); ok {
		// A dump never waits on the network, but a reading must not outlive
		// its scrape whatever happens.
		tv := unix.NsecToTimeval(max(int64(time.Until(d)), int64(time.Millisecond)))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return -1, nil, nil, fmt.Errorf("setting the netlink receive timeout: %w", err)
		}
	}
	bp, _ := n.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, recvBufSize)
		bp = &b
	}
	return fd, bp, func() { unix.Close(fd); n.bufs.Put(bp) }, nil
}

func (n *NetlinkTables) dump(ctx context.Context, fn func(*Socket), states uint32, ext uint8, families ...uint8) error {
	fd, bp, done, err := n.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	var problems []error
	for _, family := range families {
		ds := diagStream{fn: fn, family: FamilyOf(family), name: "sock_diag " + familyName(family) + " dump"}
		if err := n.dumpFamily(ctx, fd, *bp, family, states, ext, &ds); err != nil {
			return errors.Join(append(problems, err)...)
		}
		if ds.bad != nil {
			problems = append(problems, ds.bad)
		}
	}
	return errors.Join(problems...)
}

func familyName(family uint8) string {
	if family == unix.AF_INET6 {
		return "AF_INET6"
	}
	return "AF_INET"
}

// dumpFamily sends one INET_DIAG dump request and streams its answer.
func (n *NetlinkTables) dumpFamily(ctx context.Context, fd int, buf []byte, family uint8, states uint32, ext uint8, ds *diagStream) error {
	seq := n.seq.Add(1)
	var req [nlmsgHdrLen + inetDiagReqLen]byte
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))                   // nlmsg_len
	ne.PutUint16(req[4:], sockDiagByFamily)                   // nlmsg_type
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP) // nlmsg_flags
	ne.PutUint32(req[8:], seq)                                // nlmsg_seq
	req[nlmsgHdrLen+0] = family                               // sdiag_family
	req[nlmsgHdrLen+1] = unix.IPPROTO_TCP                     // sdiag_protocol
	req[nlmsgHdrLen+2] = ext                                  // idiag_ext
	ne.PutUint32(req[nlmsgHdrLen+4:], states)                 // idiag_states
	if err := unix.Sendto(fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sending the sock_diag %s dump request: %w", familyName(family), err)
	}
	for reads := 0; ; reads++ {
		if reads&63 == 63 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("reading the sock_diag %s dump: %w", familyName(family), err)
			}
		}
		m, err := unix.Read(fd, buf)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				err = context.DeadlineExceeded
			}
			return fmt.Errorf("reading the sock_diag %s dump: %w", familyName(family), err)
		}
		done, err := ds.messages(buf[:m], seq)
		if err != nil {
			return fmt.Errorf("sock_diag %s dump: %w", familyName(family), err)
		}
		if done {
			return nil
		}
	}
}

// diagStream turns the messages of one dump into sockets, one reused Socket
// at a time.
type diagStream struct {
	fn     func(*Socket)
	family Family
	name   string // for errors
	s      Socket
	// listenerUID holds the uid of each listener, for the request sockets
	// (SYN_RECV) that follow them; connected and count check the order.
	listenerUID map[netip.AddrPort]uint32
	connected   bool
	count       int
	bad         *TableError
}

// messages streams the sockets in one read of a dump answer, and tells
// whether the dump is done. Messages of other sequence numbers (from an
// abandoned dump) are skipped.
func (ds *diagStream) messages(b []byte, seq uint32) (bool, error) {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		l := int(ne.Uint32(b[0:]))
		if l < nlmsgHdrLen || l > len(b) {
			return false, fmt.Errorf("malformed message of %d bytes in a read of %d", l, len(b))
		}
		typ, msgSeq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
		msg := b[nlmsgHdrLen:l]
		// Messages are aligned to four bytes.
		b = b[min((l+3)&^3, len(b)):]
		if msgSeq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_DONE, unix.NLMSG_ERROR:
			// An error ends the dump; NLMSG_ERROR with 0 is an
			// acknowledgement, DONE carries an error since Linux 4.x.
			if len(msg) >= 4 {
				if e := int32(ne.Uint32(msg)); e < 0 {
					return true, unix.Errno(-e)
				}
			}
			if typ == unix.NLMSG_DONE {
				return true, nil
			}
		case sockDiagByFamily:
			if len(msg) < inetDiagMsgLen {
				return false, fmt.Errorf("short inet_diag_msg of %d bytes", len(msg))
			}
			ds.socket(msg)
		}
	}
	return false, nil
}

// socket parses one message and hands the socket on.
func (ds *diagStream) socket(msg []byte) {
	s := &ds.s
	*s = Socket{}
	parseDiagMsg(msg, ds.family, s)
	ds.count++
	switch {
	case s.State == StateListen:
		if ds.connected {
			ds.bad = addProblem(ds.bad, ds.name, ds.count, s.Local.String(), errListenerOrder)
		}
		if ds.listenerUID == nil {
			ds.listenerUID = make(map[netip.AddrPort]uint32)
		}
		ds.listenerUID[s.Local] = s.UID
	default:
		ds.connected = true
		if s.State == StateSynRecv && s.Inode == 0 {
			ds.fixRequestUID(s)
		}
	}
	ds.fn(s)
}

// FamilyOf maps AF_INET and AF_INET6 to the table family.
func FamilyOf(af uint8) Family {
	if af == unix.AF_INET6 {
		return IPv6
	}
	return IPv4
}

// parseDiagMsg reads one struct inet_diag_msg into s, so that s equals what
// the same socket's line in /proc/net/tcp or /proc/net/tcp6 reads.
//
//	u8 family, state, timer, retrans
//	inet_diag_sockid: be16 sport, dport; be32 src[4], dst[4]; u32 if; u32 cookie[2]
//	u32 expires, rqueue, wqueue, uid, inode
//
// followed by attributes, of which only INET_DIAG_INFO is read.
func parseDiagMsg(m []byte, family Family, s *Socket) {
	ne := binary.NativeEndian
	s.Family = family
	s.State = State(m[1])
	sport := binary.BigEndian.Uint16(m[4:])
	dport := binary.BigEndian.Uint16(m[6:])
	if family == IPv4 {
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m[8:12])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m[24:28])), dport)
	} else {
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(m[8:24])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(m[24:40])), dport)
	}
	s.RxQueue = uint64(ne.Uint32(m[56:]))
	s.TxQueue = uint64(ne.Uint32(m[60:]))
	s.Backlog, s.HasBacklog = 0, false
	if s.State == StateListen {
		// For a listener sock_diag reports the backlog limit as its write
		// queue; /proc/net/tcp prints write_seq - snd_una, which is 0.
		s.Backlog, s.HasBacklog = uint32(s.TxQueue), true
		s.TxQueue = 0
	}
	s.UID = ne.Uint32(m[64:])
	s.Inode = uint64(ne.Uint32(m[68:]))
	s.Timer = m[2]
	parseAttrs(m[inetDiagMsgLen:], s)
}

// parseAttrs reads the attributes a dump asked for: tcpi_last_ack_recv from
// struct tcp_info, and the socket's memory from INET_DIAG_SKMEMINFO
// (time-wait and request minisockets carry neither).
func parseAttrs(attrs []byte, s *Socket) {
	ne := binary.NativeEndian
	for len(attrs) >= rtaHdrLen {
		l, typ := int(ne.Uint16(attrs[0:])), ne.Uint16(attrs[2:])
		if l < rtaHdrLen || l > len(attrs) {
			return
		}
		switch {
		case typ == inetDiagInfo && l >= rtaHdrLen+lastAckRecvOff+lastAckRecvSize:
			s.AckAge, s.HasAckAge = ne.Uint32(attrs[rtaHdrLen+lastAckRecvOff:]), true
		case typ == inetDiagSkmeminfo && l >= rtaHdrLen+4*(skMeminfoDrops+1):
			mi := attrs[rtaHdrLen:]
			s.Mem = uint64(ne.Uint32(mi[4*skMeminfoRmemAlloc:])) +
				uint64(ne.Uint32(mi[4*skMeminfoWmemQueued:]))
			// sk_forward_alloc is an int the kernel keeps non-negative;
			// a negative one would not be memory held.
			if fwd := int32(ne.Uint32(mi[4*skMeminfoFwdAlloc:])); fwd > 0 {
				s.Mem += uint64(fwd)
			}
			s.Drops = ne.Uint32(mi[4*skMeminfoDrops:])
			s.HasMem = true
		}
		attrs = attrs[min((l+3)&^3, len(attrs)):]
	}
}

// lastAckRecv finds tcpi_last_ack_recv, in milliseconds, in a message's
// attributes, when they carry struct tcp_info.
func lastAckRecv(attrs []byte) (uint32, bool) {
	ne := binary.NativeEndian
	for len(attrs) >= rtaHdrLen {
		l, typ := int(ne.Uint16(attrs[0:])), ne.Uint16(attrs[2:])
		if l < rtaHdrLen || l > len(attrs) {
			return 0, false
		}
		if typ == inetDiagInfo && l >= rtaHdrLen+lastAckRecvOff+lastAckRecvSize {
			return ne.Uint32(attrs[rtaHdrLen+lastAckRecvOff:]), true
		}
		attrs = attrs[min((l+3)&^3, len(attrs)):]
	}
	return 0, false
}

// fixRequestUID gives a request socket (SYN_RECV) the uid of its listener,
// as /proc/net/tcp prints it; sock_diag reports 0 for them.
func (ds *diagStream) fixRequestUID(s *Socket) {
	uid, ok := ds.listenerUID[s.Local]
	if !ok {
		any := netip.IPv4Unspecified()
		if s.Family == IPv6 {
			any = netip.IPv6Unspecified()
		}
		uid, ok = ds.listenerUID[netip.AddrPortFrom(any, s.Local.Port())]
	}
	if ok {
		s.UID = uid
	}
}
