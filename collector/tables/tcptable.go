package tables

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
)

// Family is the address family of the table a socket was listed in.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// Socket is one row of the kernel's TCP tables.
type Socket struct {
	Local, Remote    netip.AddrPort
	TxQueue, RxQueue uint64
	Inode            uint64
	UID              uint32
	State            State
	Family           Family
	// NetNS numbers the network namespace the socket was listed in: 0 for
	// the exporter's own, others as NamespaceTables found them.
	NetNS uint16
	// AckAge, when HasAckAge, is the kernel's tcpi_last_ack_recv in
	// milliseconds: how long ago the socket last received an ACK. For a
	// CLOSE_WAIT socket whose process sends nothing that is the time since
	// the peer's FIN, unless the peer acknowledged something later (a
	// keepalive probe): a lower bound of its age in CLOSE_WAIT either way.
	// Only the netlink source reads it, and only for CLOSE_WAIT sockets.
	AckAge    uint32
	HasAckAge bool
	// HasBacklog tells that Backlog holds a listening socket's accept
	// queue limit, min(backlog, somaxconn): only the netlink source reads
	// it (/proc/net/tcp has no column for it).
	HasBacklog bool
	Backlog    uint32
	// Timer is the kernel's timer code (the "tr" column, idiag_timer):
	// TimerTimeWait marks a time-wait minisocket, which lists the state it
	// was closed in (TIME_WAIT, or FIN_WAIT2 after tcp_fin_timeout's
	// hand-over) but is no full socket: no orphan, no memory.
	Timer uint8
	// Mem, when HasMem, is the memory the kernel charges the socket: its
	// receive queue, send queue and forward allocation (SK_MEMINFO
	// rmem_alloc + wmem_queued + fwd_alloc, what `ss -m` prints as r, w
	// and f); Drops is its sk_drops (for a listener: the SYNs and
	// connections it dropped, ListenDrops). Only the netlink source reads
	// them (INET_DIAG_SKMEMINFO), and only when asked (MemInfoReader).
	Mem    uint64
	Drops  uint32
	HasMem bool
}

// TimerTimeWait is the timer code of time-wait minisockets (the kernel's
// get_timewait4_sock and inet_twsk_diag_fill print 3).
const TimerTimeWait = 3

// IsOrphan tells whether a socket is an orphan as the kernel counts them
// (net/sockstat "orphan", net.ipv4.tcp_max_orphans): a full socket its
// process closed (no fd, so inode 0) whose connection is not finished:
// FIN_WAIT1, FIN_WAIT2, LAST_ACK or CLOSING. Time-wait minisockets (also
// inode 0, some in FIN_WAIT2) are not.
func IsOrphan(sk *Socket) bool {
	if sk.Inode != 0 || sk.Timer == TimerTimeWait {
		return false
	}
	switch sk.State {
	case StateFinWait1, StateFinWait2, StateLastAck, StateClosing:
		return true
	}
	return false
}

// QueueMemory is what the procfs tables can say of a socket's memory: the
// bytes in its queues (unsent or unacknowledged, and received but not
// read), payload only: not the buffers' overhead nor the forward
// allocation the kernel charges (netlink's Mem), so it reads lower.
// A listener's receive queue counts connections, not bytes: 0.
func QueueMemory(sk *Socket) uint64 {
	if sk.State == StateListen {
		return 0
	}
	return sk.TxQueue + sk.RxQueue
}

// MemInfoReader is a table source that can read each socket's memory
// (INET_DIAG_SKMEMINFO), of every socket or of the listening ones only
// (their drops); the wrappers pass it on.
type MemInfoReader interface {
	SetMemInfo(all, listeners bool)
}

// SetMemInfo asks src to read the memory of every socket (all) or of the
// listening sockets (listeners), when it can; it tells whether it can
// (netlink, now).
func SetMemInfo(src TableSource, all, listeners bool) bool {
	switch s := src.(type) {
	case *fallbackTables:
		SetMemInfo(s.fallback, all, listeners)
		return SetMemInfo(s.primary, all, listeners) && !s.failed.Load()
	case *NamespaceTables:
		return SetMemInfo(s.own, all, listeners)
	case MemInfoReader:
		s.SetMemInfo(all, listeners)
		return true
	}
	return false
}

// TableSource lists the TCP sockets of both address families. The procfs text
// tables are one source; a netlink source can stand beside it.
type TableSource interface {
	// Stream calls fn for every socket as it is read, and keeps none: a
	// reading costs the same memory whatever the number of sockets. fn
	// must not keep the pointer. Within each table (a family of one network
	// namespace) the listening sockets come first, as the kernel lists
	// them, so that a reader can tell inbound from outbound sockets as they
	// arrive. An error means the listing is incomplete (a table could not
	// be read, or a *TableError for lines that could not be parsed); the
	// sockets streamed are still true.
	Stream(ctx context.Context, fn func(*Socket)) error
}

// AppendSockets collects every socket of src into dst: for tests and tools
// that want the list; the exporter streams.
func AppendSockets(ctx context.Context, src TableSource, dst []Socket) ([]Socket, error) {
	err := src.Stream(ctx, func(s *Socket) { dst = append(dst, *s) })
	return dst, err
}

// errListenerOrder reports a listening socket after connected ones in one
// table: the kernel never lists them so, and a reader that classifies
// sockets as they stream would have called the earlier ones outbound.
var errListenerOrder = errors.New("listening socket after connected ones (the kernel lists listeners first; sockets before it may be counted as outbound)")

// TableError reports malformed lines in a TCP table: the first one, quoted,
// and how many there were in all.
type TableError struct {
	File  string
	Line  int
	Text  string
	Cause error
	Count int
}

func (e *TableError) Error() string {
	more := ""
	if e.Count > 1 {
		more = fmt.Sprintf(" (and %d more malformed lines)", e.Count-1)
	}
	return fmt.Sprintf("%s:%d: %v in line %q%s", e.File, e.Line, e.Cause, e.Text, more)
}

func (e *TableError) Unwrap() error { return e.Cause }

// ProcfsTables reads /proc/net/tcp and /proc/net/tcp6 under a procfs root.
type ProcfsTables struct {
	// Root is the procfs mount point, /proc on a host.
	Root string
	bufs sync.Pool
}

// NewProcfsTables returns a source reading the tables under root.
func NewProcfsTables(root string) *ProcfsTables {
	return &ProcfsTables{Root: root}
}

func (p *ProcfsTables) Stream(ctx context.Context, fn func(*Socket)) error {
	var problems []error
	for _, t := range []struct {
		name   string
		family Family
	}{{"tcp", IPv4}, {"tcp6", IPv6}} {
		path := filepath.Join(p.Root, "net", t.name)
		err := p.readFile(ctx, path, t.family, fn)
		if err == nil {
			continue
		}
		// A host with IPv6 disabled has no tcp6 table: that is no error.
		if t.family == IPv6 && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		// Read the other table anyway: its counts are still true.
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}

func (p *ProcfsTables) readFile(ctx context.Context, path string, family Family, fn func(*Socket)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, _ := p.bufs.Get().(*bufio.Reader)
	if r == nil {
		// The kernel hands out /proc/net/tcp in page-sized reads; a larger
		// buffer only costs memory.
		r = bufio.NewReaderSize(f, 64<<10)
	} else {
		r.Reset(f)
	}
	defer func() {
		r.Reset(nil)
		p.bufs.Put(r)
	}()
	return streamTable(ctx, r, path, family, fn)
}

// streamTable streams one table from r, calling fn for each socket. Lines
// are parsed in place in the reader's buffer into one reused Socket:
// nothing is allocated per line.
func streamTable(ctx context.Context, r *bufio.Reader, name string, family Family, fn func(*Socket)) error {
	var bad *TableError
	var s Socket
	connected := false // a socket other than a listener was seen
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// No real table line comes near the buffer size: keep a prefix
			// for the error, skip the rest of the line.
			text := string(line[:min(len(line), 120)])
			for err == bufio.ErrBufferFull {
				_, err = r.ReadSlice('\n')
			}
			bad = addProblem(bad, name, n, text, errors.New("line too long"))
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", name, err)
			}
			continue
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if n == 1 {
			// The first line is the column header.
			if err == io.EOF {
				break
			}
			continue
		}
		if len(line) > 0 {
			s = Socket{}
			if perr := parseLine(line, family, &s); perr != nil {
				bad = addProblem(bad, name, n, string(trimSpace(line)), perr)
			} else {
				if s.State != StateListen {
					connected = true
				} else if connected {
					bad = addProblem(bad, name, n, string(trimSpace(line)), errListenerOrder)
				}
				fn(&s)
			}
		}
		if err == io.EOF {
			break
		}
		if n&4095 == 0 {
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("reading %s: %w", name, cerr)
			}
		}
	}
	if bad != nil {
		return bad
	}
	return nil
}

func addProblem(bad *TableError, file string, line int, text string, cause error) *TableError {
	if bad == nil {
		return &TableError{File: file, Line: line, Text: text, Cause: cause, Count: 1}
	}
	bad.Count++
	return bad
}

// parseLine parses one row of /proc/net/tcp or /proc/net/tcp6:
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
//
// It returns an error that quotes the first token it could not read.
func parseLine(line []byte, family Family, s *Socket) error {
	var f Fields
	f.Rest = line
	if _, ok := f.Next(); !ok { // "sl", e.g. "0:"
		return errors.New("empty line")
	}
	local, ok := f.Next()
	if !ok {
		return errors.New("missing local address")
	}
	remote, ok := f.Next()
	if !ok {
		return errors.New("missing remote address")
	}
	st, ok := f.Next()
	if !ok {
		return errors.New("missing state")
	}
	queues, ok := f.Next()
	if !ok {
		return errors.New("missing queues")
	}
	timer, _ := f.Next() // tr:tm->when
	f.Next()             // retrnsmt
	uid, ok := f.Next()
	if !ok {
		return errors.New("missing uid")
	}
	f.Next() // timeout
	inode, ok := f.Next()
	if !ok {
		return errors.New("missing inode")
	}

	var err error
	if s.Local, err = parseEndpoint(local, family); err != nil {
		return fmt.Errorf("local address %q: %w", local, err)
	}
	if s.Remote, err = parseEndpoint(remote, family); err != nil {
		return fmt.Errorf("remote address %q: %w", remote, err)
	}
	code, ok := parseHex(st)
	if !ok || len(st) != 2 {
		return fmt.Errorf("state %q: not a two-digit hex code", st)
	}
	s.State = State(code)
	colon := indexByte(queues, ':')
	if colon < 0 {
		return fmt.Errorf("queues %q: want tx:rx", queues)
	}
	tx, ok1 := parseHex(queues[:colon])
	rx, ok2 := parseHex(queues[colon+1:])
	if !ok1 || !ok2 {
		return fmt.Errorf("queues %q: not hex", queues)
	}
	s.TxQueue, s.RxQueue = tx, rx
	// tr:tm->when, as the kernel prints it ("%02X:%08lX"): the timer code
	// tells a time-wait minisocket from an orphan.
	t, ok := uint64(0), false
	if len(timer) >= 3 && timer[2] == ':' {
		t, ok = parseHex(timer[:2])
	}
	if !ok {
		return fmt.Errorf("timer %q: want a two-digit hex code, a colon and the expiry", timer)
	}
	s.Timer = uint8(t)
	u, ok := ParseDec(uid)
	if !ok || u > 1<<32-1 {
		return fmt.Errorf("uid %q: not a number", uid)
	}
	s.UID = uint32(u)
	if s.Inode, ok = ParseDec(inode); !ok {
		return fmt.Errorf("inode %q: not a number", inode)
	}
	s.Family = family
	return nil
}

// parseEndpoint reads "0100007F:1F90" (IPv4) or a 32-digit IPv6 address and
// port. The kernel prints each 32-bit word of the address as a number in host
// byte order, so the word's bytes are put back in native order.
func parseEndpoint(b []byte, family Family) (netip.AddrPort, error) {
	colon := indexByte(b, ':')
	if colon < 0 {
		return netip.AddrPort{}, errors.New("want address:port")
	}
	addr, port := b[:colon], b[colon+1:]
	p, ok := parseHex(port)
	if !ok || len(port) != 4 {
		return netip.AddrPort{}, errors.New("port is not four hex digits")
	}
	words := 1
	if family == IPv6 {
		words = 4
	}
	if len(addr) != 8*words {
		return netip.AddrPort{}, fmt.Errorf("address is not %d hex digits", 8*words)
	}
	var raw [16]byte
	for i := range words {
		w, ok := parseHex(addr[8*i : 8*i+8])
		if !ok {
			return netip.AddrPort{}, errors.New("address is not hex")
		}
		binary.NativeEndian.PutUint32(raw[4*i:], uint32(w))
	}
	if family == IPv4 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[:4])), uint16(p)), nil
	}
	return netip.AddrPortFrom(netip.AddrFrom16(raw), uint16(p)), nil
}

// Fields splits a line on spaces without allocating.
type Fields struct{ Rest []byte }

func (f *Fields) Next() ([]byte, bool) {
	i := 0
	for i < len(f.Rest) && isSpace(f.Rest[i]) {
		i++
	}
	j := i
	for j < len(f.Rest) && !isSpace(f.Rest[j]) {
		j++
	}
	tok := f.Rest[i:j]
	f.Rest = f.Rest[j:]
	return tok, len(tok) > 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return b
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// parseHex reads up to 16 hex digits.
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

// ParseDec reads an unsigned decimal number that fits in 64 bits.
func ParseDec(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// UnreadData returns the data bytes a socket received and its process has
// not read. Both sources report the kernel's rcv_nxt - copied_seq, in which
// a FIN takes one sequence number until the process reads the end of
// stream; reads are in order, so in a state where the peer's FIN has
// arrived (CLOSE_WAIT, LAST_ACK, CLOSING) a non-empty queue always ends
// with that FIN. Measured on real sockets, on both sources, by
// TestKernelReceiveQueueAccounting: an idle CLOSE_WAIT socket reads 1, one
// holding an unread 100-byte response 101, one read to the end of stream 0.
func UnreadData(sk *Socket) uint64 {
	switch sk.State {
	case StateCloseWait, StateLastAck, StateClosing:
		if sk.RxQueue > 0 {
			return sk.RxQueue - 1
		}
	}
	return sk.RxQueue
}
