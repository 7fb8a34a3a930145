package owners

import (
	"context"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"golang.org/x/sys/unix"
)

// heldReading runs what a reading does with the owners: a walk, the real
// tables (src) streamed through Lookup, FindHeld, Settle. It returns the
// inodes of the walk's held sockets.
func heldReading(t *testing.T, o *SocketOwners, src tables.TableSource) []uint64 {
	t.Helper()
	ctx := context.Background()
	w, err := o.Walk(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var unowned []uint64
	if err := src.Stream(ctx, func(sk *tables.Socket) {
		if idx, _ := w.Lookup(sk.Inode); idx == NoOwner {
			unowned = append(unowned, sk.Inode)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := o.FindHeld(ctx, w, false); err != nil {
		t.Fatal(err)
	}
	if err := o.Settle(ctx, w, unowned); err != nil {
		t.Fatal(err)
	}
	var held []uint64
	for _, h := range w.Held {
		held = append(held, h.Inode)
	}
	return held
}

// resetHeldSocket returns the fd of a TCP socket this process holds that
// the kernel dropped (reset by its peer), after it left the tables.
func resetHeldSocket(t *testing.T, src tables.TableSource) (fd int, ino uint64) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{KeepAlive: -1}
	c, err := d.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ino = inodeOf(t, c)
	// A plain fd of the socket, out of Go's poller; the Conn's own fd is
	// closed, the socket lives on through the copy.
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	fd, err = unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	c.Close()
	t.Cleanup(func() { unix.Close(fd) })
	s.(*net.TCPConn).SetLinger(0) // RST: the kernel drops the client's socket
	s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		listed := false
		if err := src.Stream(context.Background(), func(sk *tables.Socket) {
			listed = listed || sk.Inode == ino
		}); err != nil {
			t.Fatal(err)
		}
		if !listed {
			return fd, ino
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %d still in the tables 10 s after its peer's reset", ino)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHeldSocketConfirmedAtItsFD: a held socket found once by reading the
// process's fd folder is confirmed at the next readings at its fd, without
// reading the folder again; once that fd names another socket, the folder
// is read again and the dropped socket is no longer held.
func TestHeldSocketConfirmedAtItsFD(t *testing.T) {
	// One source for the whole test: it keeps its table files open between
	// readings, and so the same count of fds of this process.
	src := tables.NewProcfsTables("/proc")
	fd, ino := resetHeldSocket(t, src)
	self := int32(os.Getpid())
	// A connection's second fd, made now so that the fd count stays the
	// same when it replaces the held socket's fd below.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A plain TCP connection (Go's listeners are MPTCP ones: its own
	// protocol, which would fail the check for another reason).
	other, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	f, err := other.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// One worker: with more, the fd count read of this process may include
	// another worker's open fd folder, and the walk would read this process
	// again for that.
	o := &SocketOwners{Root: "/proc", Workers: 1}

	if held := heldReading(t, o, src); !slices.Contains(held, ino) {
		t.Fatalf("first reading: socket %d not held; held %v", ino, held)
	}
	if !slices.Contains(o.reread, self) {
		t.Fatalf("first reading: this process's fd folder was not read to confirm; read again: %v", o.reread)
	}
	for i := range 2 {
		if held := heldReading(t, o, src); !slices.Contains(held, ino) {
			t.Fatalf("reading %d: socket %d no longer held; held %v", i+2, ino, held)
		}
		if slices.Contains(o.reread, self) {
			t.Errorf("reading %d: this process's fd folder was read again (%v): the socket was not confirmed at fd %d", i+2, o.reread, fd)
		}
	}

	// The fd now names a socket the tables list: the process's fd count
	// is unchanged (so the walk keeps its cached sockets and the dropped
	// one is a candidate again), the dropped socket freed.
	if err := unix.Dup2(int(f.Fd()), fd); err != nil {
		t.Fatal(err)
	}
	if held := heldReading(t, o, src); slices.Contains(held, ino) {
		t.Errorf("after its fd was reused: socket %d still held", ino)
	}
	// Closed: not held, whatever the cache says.
	unix.Close(fd)
	if held := heldReading(t, o, src); slices.Contains(held, ino) {
		t.Errorf("after close: socket %d still held", ino)
	}
}

// TestSockProtosCache: a socket's protocol is kept until a second renew
// passes without it being asked; an inode past 32 bits is never cached.
func TestSockProtosCache(t *testing.T) {
	var p sockProtos
	p.put(5, kindOther)
	p.put(6, kindMPTCP)
	p.put(1<<33+5, kindOther)
	if p.get(5) != kindOther || p.get(6) != kindMPTCP || p.get(7) != kindUnknown {
		t.Fatalf("got %v %v %v, want other, MPTCP, unknown", p.get(5), p.get(6), p.get(7))
	}
	if k := p.get(1<<33 + 5); k != kindUnknown {
		t.Errorf("a 33-bit inode was cached (%v), or aliased to inode 5", k)
	}
	p.renew()
	if p.get(5) != kindOther { // asked again: kept at the next renew
		t.Fatal("forgotten after one renew")
	}
	p.renew()
	if p.get(5) != kindOther || p.get(6) != kindUnknown {
		t.Fatalf("after two renews: %v %v, want other (asked since), unknown (not asked)", p.get(5), p.get(6))
	}
}
