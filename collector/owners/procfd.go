package owners

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"unsafe"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"golang.org/x/sys/unix"
)

// procReader reads one process's files at a time with reused buffers and
// raw system calls, so that reading an fd link allocates nothing.
type procReader struct {
	root   int
	path   []byte
	dirent []byte
	link   [64]byte
	small  [512]byte
	inodes []uint64
	// nfds is the number of fds the last sockets call listed.
	nfds int64
	// limits holds a /proc/PID/limits file (about 1.3 KB).
	limits []byte
	// rootPath and protos tell TCP sockets from the others; without
	// protos every socket fd is kept. classifyInos, when set (sorted), are
	// the inodes whose protocol to ask (readKind) as they are met: their
	// kinds go to classifyKinds and, for a TCP socket, the fd it was found
	// at to classifyFDs, both in classifyInos' order.
	rootPath      string
	protos        *sockProtos
	classifyInos  []uint64
	classifyKinds []sockKind
	classifyFDs   []int32
	xpath         []byte
	xattr         [16]byte
}

// socket keeps one socket fd of the process, unless it is known not to be
// plain TCP (a unix, UDP, netlink... socket is in no TCP table).
func (r *procReader) socket(pid int32, name []byte, ino uint64) {
	if r.protos != nil && r.protos.get(ino) == kindOther {
		return
	}
	if r.classifyInos != nil {
		if i, ask := slices.BinarySearch(r.classifyInos, ino); ask {
			k := r.readKind(pid, name, ino)
			r.classifyKinds[i] = k
			// Only a TCP socket is confirmed held, and its fd kept.
			if fd, ok := fdNumber(name); ok && k == kindTCP {
				r.classifyFDs[i] = fd
			}
		}
	}
	r.inodes = append(r.inodes, ino)
}

// fdNumber parses an fd folder entry's name.
func fdNumber(name []byte) (int32, bool) {
	if len(name) == 0 || len(name) > 9 {
		return 0, false
	}
	var n int32
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int32(c-'0')
	}
	return n, true
}

// at returns "PID/name\x00" for the *at system calls.
func (r *procReader) at(pid int32, name string) []byte {
	r.path = strconv.AppendInt(r.path[:0], int64(pid), 10)
	r.path = append(r.path, '/')
	r.path = append(r.path, name...)
	return append(r.path, 0)
}

// sockets returns the inodes of the process's socket fds, in r's buffer:
// its TCP sockets, and those whose protocol could not be read.
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
	r.nfds = 0
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
				r.nfds++
				// The name is NUL-terminated in the buffer: hand it to
				// readlinkat as it is.
				m, err := readlinkat(dfd, &b[direntNameOffset], r.link[:])
				if err == unix.EACCES || err == unix.EPERM {
					return nil, errnoErr(err)
				}
				if err == nil {
					if ino, ok := parseSocketLink(r.link[:m]); ok {
						r.socket(pid, name, ino)
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
	f := tables.Fields{Rest: b[i+1:]}
	var tok []byte
	for range 20 { // fields 3 (state) to 22 (starttime)
		tok, _ = f.Next()
	}
	v, ok := tables.ParseDec(tok)
	if !ok {
		return 0, errors.New("malformed stat")
	}
	return v, nil
}

// maxOpenFiles reads the process's soft limit on open files from
// /proc/PID/limits.
func (r *procReader) maxOpenFiles(pid int32) (int64, error) {
	fd, err := openat(r.root, r.at(pid, "limits"), unix.O_RDONLY)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if r.limits == nil {
		r.limits = make([]byte, 4096)
	}
	n := 0
	for n < len(r.limits) {
		m, err := unix.Read(fd, r.limits[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, errnoErr(err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	v, err := parseMaxOpenFiles(r.limits[:n])
	if err != nil {
		return 0, fmt.Errorf("%s/%d/limits: %w", r.rootPath, pid, err)
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
	return tables.ProcessName(b), nil
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
	return tables.ParseDec(link[len(prefix) : len(link)-1])
}
