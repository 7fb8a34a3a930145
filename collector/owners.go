package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// noOwner marks a socket whose owning process is not known.
const noOwner = -1

// OwnerWalk is the outcome of one walk of /proc/PID/fd: which process holds
// each wanted socket inode.
type OwnerWalk struct {
	// Names are the process names (comm) of the owners, each once.
	Names []string
	// owner maps a socket inode to its owner's index in Names and the pid
	// that won it (the lowest pid holding the socket).
	owner map[uint64]socketOwner
	// Denied counts processes whose fd folder could not be read for lack of
	// privileges; their sockets stay unresolved.
	Denied int
	// Processes counts the processes whose fd folder was read.
	Processes int
}

type socketOwner struct {
	name int32
	pid  int32
}

// Lookup returns the index in Names of the process holding inode, or noOwner.
func (w *OwnerWalk) Lookup(inode uint64) int32 {
	if o, ok := w.owner[inode]; ok && o.name != noOwner {
		return o.name
	}
	return noOwner
}

// SocketOwners maps socket inodes to processes through /proc/PID/fd links.
type SocketOwners struct {
	Root string
	// Workers bounds how many processes are read at once.
	Workers int
}

// Walk finds the owners of the given inodes. Processes that exit during the
// walk are skipped silently; only a failure to list the PID folders is an
// error.
func (o *SocketOwners) Walk(ctx context.Context, wanted map[uint64]socketOwner) (*OwnerWalk, error) {
	dir, err := os.Open(o.Root)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return nil, fmt.Errorf("listing processes in %s: %w", o.Root, err)
	}
	pids := make([]int32, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.ParseInt(n, 10, 32); err == nil && pid > 0 {
			pids = append(pids, int32(pid))
		}
	}

	w := &OwnerWalk{owner: wanted}
	workers := max(o.Workers, 1)
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		next    = make(chan int32)
		nameIdx = map[string]int32{}
	)
	claim := func(pid int32, comm string, inodes []uint64) {
		mu.Lock()
		defer mu.Unlock()
		w.Processes++
		idx := int32(noOwner)
		for _, ino := range inodes {
			cur, ok := wanted[ino]
			if !ok || (cur.name != noOwner && cur.pid < pid) {
				continue
			}
			if idx == noOwner {
				var seen bool
				if idx, seen = nameIdx[comm]; !seen {
					idx = int32(len(w.Names))
					nameIdx[comm] = idx
					w.Names = append(w.Names, comm)
				}
			}
			wanted[ino] = socketOwner{name: idx, pid: pid}
		}
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r fdReader
			for pid := range next {
				comm, inodes, err := r.read(o.Root, pid)
				switch {
				case err == nil:
					claim(pid, comm, inodes)
				case errors.Is(err, fs.ErrPermission):
					mu.Lock()
					w.Denied++
					mu.Unlock()
				}
				// Any other error means the process went away mid-walk.
			}
		}()
	}
	var cerr error
	for _, pid := range pids {
		if cerr = ctx.Err(); cerr != nil {
			break
		}
		next <- pid
	}
	close(next)
	wg.Wait()
	if cerr != nil {
		return nil, fmt.Errorf("walking /proc/PID/fd: %w", cerr)
	}
	return w, nil
}

// fdReader reads one process's comm and socket links, reusing its buffers.
type fdReader struct {
	link   []byte
	inodes []uint64
}

func (r *fdReader) read(root string, pid int32) (string, []uint64, error) {
	base := filepath.Join(root, strconv.Itoa(int(pid)))
	fdDir, err := os.Open(filepath.Join(base, "fd"))
	if err != nil {
		return "", nil, err
	}
	defer fdDir.Close()
	fds, err := fdDir.Readdirnames(-1)
	if err != nil {
		return "", nil, err
	}
	if r.link == nil {
		r.link = make([]byte, 64)
	}
	r.inodes = r.inodes[:0]
	dfd := int(fdDir.Fd())
	for _, fd := range fds {
		n, err := unix.Readlinkat(dfd, fd, r.link)
		if err != nil {
			if errors.Is(err, unix.EACCES) {
				return "", nil, fs.ErrPermission
			}
			continue // the fd was closed since the listing
		}
		if ino, ok := parseSocketLink(r.link[:n]); ok {
			r.inodes = append(r.inodes, ino)
		}
	}
	if len(r.inodes) == 0 {
		return "", nil, nil
	}
	comm, err := os.ReadFile(filepath.Join(base, "comm"))
	if err != nil {
		return "", nil, err
	}
	return processName(comm), r.inodes, nil
}

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
