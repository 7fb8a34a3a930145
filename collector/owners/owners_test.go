package owners

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// inodeOf returns the socket inode of a connection, from its fd link.
func inodeOf(t *testing.T, c net.Conn) uint64 {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ino uint64
	var ok bool
	_ = rc.Control(func(fd uintptr) {
		link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fd)))
		if err == nil {
			ino, ok = parseSocketLink([]byte(link))
		}
	})
	if !ok {
		t.Fatal("no socket inode")
	}
	return ino
}

// walkOwners resolves inodes as a reading does, the inodes standing for the
// tables: a walk, each socket looked up as it streams, then Settle for the
// ones without an owner. It returns each one's process name ("" when
// unresolved) and the walk.
func walkOwners(t *testing.T, o *SocketOwners, inodes ...uint64) ([]string, *OwnerWalk) {
	t.Helper()
	w, err := o.Walk(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var unowned []uint64
	for _, ino := range inodes {
		if idx, _ := w.Lookup(ino); idx == NoOwner {
			unowned = append(unowned, ino)
		}
	}
	if err := o.Settle(context.Background(), w, unowned); err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(inodes))
	for i, ino := range inodes {
		if idx, _ := w.Lookup(ino); idx != NoOwner {
			names[i] = w.Names[idx]
		}
	}
	return names, w
}

// TestOwnerCacheFollowsChanges walks the real /proc while sockets move
// between this process and a child: the cached walk must name the same
// owners as a walk without cache.
func TestOwnerCacheFollowsChanges(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dial := func() (net.Conn, net.Conn) {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	}
	c1, s1 := dial()
	defer s1.Close()
	// A child holds a copy of c1: the socket is shared, and counts for the
	// lower pid, this process.
	f1, err := c1.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "30")
	child.ExtraFiles = []*os.File{f1}
	if err := child.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	ino1, inoS := inodeOf(t, c1), inodeOf(t, s1)
	self := processNameOfSelf(t)
	parentWins := os.Getpid() < child.Process.Pid

	// A procfs root that shows only this process and the child, so that
	// the walks cost the same however busy the host is.
	root := t.TempDir()
	for _, pid := range []int{os.Getpid(), child.Process.Pid} {
		if err := os.Symlink(fmt.Sprintf("/proc/%d", pid), filepath.Join(root, strconv.Itoa(pid))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(fmt.Sprintf("/proc/%d", os.Getpid()), filepath.Join(root, "self")); err != nil {
		t.Fatal(err)
	}
	cached := &SocketOwners{Root: root, Workers: 2}
	plain := &SocketOwners{Root: root, Workers: 2, NoCache: true}
	check := func(step string, want ...string) *OwnerWalk {
		t.Helper()
		got, w := walkOwners(t, cached, ino1, inoS)
		ref, _ := walkOwners(t, plain, ino1, inoS)
		for i := range want {
			if got[i] != want[i] || ref[i] != want[i] {
				t.Errorf("%s: socket %d owned by %q (cached walk), %q (plain walk), want %q", step, i, got[i], ref[i], want[i])
			}
		}
		return w
	}
	first := "sleep"
	if parentWins {
		first = self
	}
	check("shared", first, self)
	// A process whose fds are still changing (the child finishing its start,
	// this binary's other tests on a busy host) is read again, rightly: walk
	// until one unchanged walk takes a process from the cache, a few times
	// at most.
	w := check("unchanged", first, self)
	for try := 1; try < 10 && cached.counts > 0 && w.Cached == 0; try++ {
		w = check("unchanged", first, self)
	}
	if cached.counts > 0 && w.Cached == 0 {
		t.Errorf("ten unchanged walks took no process from the cache (read %d)", w.Processes)
	}
	// This process lets go of its copies: only the child holds c1 now.
	c1.Close()
	f1.Close()
	check("handed over", "sleep", self)
	// A new socket in a process whose fd count does not change: one closed,
	// one opened.
	c2, s2 := dial()
	defer c2.Close()
	defer s2.Close()
	_, _ = walkOwners(t, cached, ino1, inoS)
	s1.Close()
	c3, s3 := dial()
	defer c3.Close()
	defer s3.Close()
	c2.Close()
	got, _ := walkOwners(t, cached, ino1, inodeOf(t, s3))
	if got[0] != "sleep" || got[1] != self {
		t.Errorf("after swapping sockets: owners %q, want sleep and %q", got, self)
	}
}

func processNameOfSelf(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return tables.ProcessName(b)
}

// procTree is a fixture procfs tree for the cache: processes with a start
// time, a name and fd links. A directory's size on disk does not follow
// its entries, so every fd count reads the same: only the start time and
// the sockets in the tables tell the cache something changed.
type procTree struct {
	t    *testing.T
	root string
}

func newProcTree(t *testing.T) *procTree {
	p := &procTree{t: t, root: t.TempDir()}
	// A non-empty self/fd tells the walk that fd counts are reported.
	p.mkdir("self/fd")
	return p
}

func (p *procTree) mkdir(rel string) {
	if err := os.MkdirAll(filepath.Join(p.root, rel), 0o755); err != nil {
		p.t.Fatal(err)
	}
}

func (p *procTree) process(pid int, comm string, start int) {
	dir := strconv.Itoa(pid)
	p.mkdir(dir + "/fd")
	stat := fmt.Sprintf("%d (%s) S 1 1 1 0 -1 4194304 100 0 0 0 1 1 0 0 20 0 1 0 %d 1000 100\n", pid, comm, start)
	for name, data := range map[string]string{"stat": stat, "comm": comm + "\n"} {
		if err := os.WriteFile(filepath.Join(p.root, dir, name), []byte(data), 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
}

func (p *procTree) fd(pid, fd int, target string) {
	link := filepath.Join(p.root, strconv.Itoa(pid), "fd", strconv.Itoa(fd))
	os.Remove(link)
	if target != "" {
		if err := os.Symlink(target, link); err != nil {
			p.t.Fatal(err)
		}
	}
}

func TestOwnerCacheOnFixtureTree(t *testing.T) {
	t.Parallel()
	tree := newProcTree(t)
	tree.process(100, "client", 5000)
	tree.process(200, "server", 6000)
	tree.fd(100, 0, "/dev/null")
	tree.fd(100, 3, "socket:[1]")
	tree.fd(100, 4, "socket:[2]")
	tree.fd(200, 3, "socket:[3]")
	tree.fd(200, 4, "socket:[2]") // shared: counts for pid 100
	o := &SocketOwners{Root: tree.root, Workers: 2}

	step := func(name string, inodes []uint64, want []string, read, cached int) {
		t.Helper()
		got, w := walkOwners(t, o, inodes...)
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: socket %d owned by %q, want %q", name, inodes[i], got[i], want[i])
			}
		}
		if w.Processes != read || w.Cached != cached {
			t.Errorf("%s: read %d processes, %d from the cache; want %d and %d", name, w.Processes, w.Cached, read, cached)
		}
	}
	// Each walk asks for every socket in the (imagined) tables, as a
	// scrape does.
	step("first walk reads everything", []uint64{1, 2, 3}, []string{"client", "client", "server"}, 2, 0)
	step("nothing changed", []uint64{1, 2, 3}, []string{"client", "client", "server"}, 0, 2)

	// The server closes socket 3 and accepts socket 4 on the same fd: the
	// walk takes both from the cache, the tables no longer list socket 3,
	// so the server is read again after them and socket 4 found.
	tree.fd(200, 3, "socket:[4]")
	step("a socket closed", []uint64{1, 2, 4}, []string{"client", "client", "server"}, 1, 2)

	// The client gains socket 5 while closing a file: same fd count, all
	// its sockets still there. Socket 5 waits one walk, then every
	// process is read.
	tree.fd(100, 0, "")
	tree.fd(100, 5, "socket:[5]")
	step("new socket, first seen", []uint64{1, 2, 4, 5}, []string{"client", "client", "server", ""}, 0, 2)
	step("new socket, still there", []uint64{1, 2, 4, 5}, []string{"client", "client", "server", "client"}, 2, 2)
	step("settled", []uint64{1, 2, 4, 5}, []string{"client", "client", "server", "client"}, 0, 2)

	// A socket no process holds (a kernel socket) costs one complete walk,
	// then none.
	all := []uint64{1, 2, 4, 5, 6}
	owners := []string{"client", "client", "server", "client", ""}
	step("orphan, first seen", all, owners, 0, 2)
	step("orphan, still there", all, owners, 2, 2)
	step("orphan, known", all, owners, 0, 2)

	// Pid 200 now names another process (a new start time) with a new name.
	tree.process(200, "worker", 7000)
	step("pid reused", all, []string{"client", "client", "worker", "client", ""}, 1, 1)

	// A process renamed itself (exec, prctl): the name is read every time.
	tree.process(100, "client2", 5000)
	step("renamed", all, []string{"client2", "client2", "worker", "client2", ""}, 0, 2)

	// Without the cache every walk reads every process, with the same
	// answers.
	plain := &SocketOwners{Root: tree.root, Workers: 2, NoCache: true}
	for range 2 {
		got, w := walkOwners(t, plain, 1, 2, 4, 5)
		if strings.Join(got, ",") != "client2,client2,worker,client2" || w.Cached != 0 || w.Processes != 2 {
			t.Errorf("without cache: %q, read %d, cached %d", got, w.Processes, w.Cached)
		}
	}
}
