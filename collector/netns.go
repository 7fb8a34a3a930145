package collector

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// NamespaceTables reads the TCP tables of every network namespace that has
// a process in it: the exporter's own through <root>/net, each other one
// once, through <root>/<pid>/net of its lowest pid. Sockets of containers
// with their own network namespace are invisible in the host's tables; this
// source makes them count, and the fd walk attributes them to their
// processes (socket inodes are unique across namespaces).
type NamespaceTables struct {
	Root string
	own  TableSource
	// names of the namespaces of the last reading, by Socket.NetNS.
	names []string
}

// namespaceNamer is a table source that reads several network namespaces.
type namespaceNamer interface {
	Namespaces() []string
}

// NewNamespaceTables returns a source reading every namespace under root:
// the exporter's own through own (procfs or netlink), the others through
// their processes' procfs tables (sock_diag answers only for the namespace
// of the socket that asks).
func NewNamespaceTables(root string, own TableSource) *NamespaceTables {
	return &NamespaceTables{Root: root, own: own}
}

// Namespaces names the namespaces of the last reading: "host" for the
// exporter's own, then for each other one the container id found in its
// lowest pid's cgroup (12 hex digits), or else that process's name.
func (n *NamespaceTables) Namespaces() []string { return n.names }

type netNamespace struct {
	inode string
	pid   int
}

func (n *NamespaceTables) Stream(ctx context.Context, fn func(*Socket)) error {
	own, _ := os.Readlink(filepath.Join(n.Root, "self", "ns", "net"))
	others, err := n.discover(own)
	if err != nil {
		return err
	}
	n.names = append(n.names[:0], "host")
	var problems []error
	if err := n.own.Stream(ctx, fn); err != nil {
		if errors.Is(err, errRestartReading) {
			return err
		}
		problems = append(problems, err)
	}
	seen := map[string]int{"host": 1}
	var idx uint16
	streamed := 0
	tagged := func(s *Socket) {
		s.NetNS = idx
		streamed++
		fn(s)
	}
	for _, ns := range others {
		if len(n.names) > 1<<16-1 {
			break
		}
		idx, streamed = uint16(len(n.names)), 0
		pidRoot := filepath.Join(n.Root, strconv.Itoa(ns.pid))
		err := NewProcfsTables(pidRoot).Stream(ctx, tagged)
		if err != nil {
			if streamed == 0 && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)) {
				// The namespace's last process exited, or it is another
				// user's: its sockets cannot be listed.
				continue
			}
			if !errors.Is(err, fs.ErrNotExist) {
				problems = append(problems, err)
			}
		}
		name := namespaceName(pidRoot)
		if seen[name]++; seen[name] > 1 {
			name = fmt.Sprintf("%s-%d", name, seen[name])
		}
		n.names = append(n.names, name)
	}
	return errors.Join(problems...)
}

// discover lists the network namespaces other than own that have a
// process, each with its lowest pid, ordered by that pid.
func (n *NamespaceTables) discover(own string) ([]netNamespace, error) {
	dir, err := os.Open(n.Root)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return nil, fmt.Errorf("listing processes in %s: %w", n.Root, err)
	}
	lowest := map[string]int{}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		link, err := os.Readlink(filepath.Join(n.Root, name, "ns", "net"))
		if err != nil || link == own {
			continue // exited, not ours to read, or the exporter's own
		}
		if p, ok := lowest[link]; !ok || pid < p {
			lowest[link] = pid
		}
	}
	out := make([]netNamespace, 0, len(lowest))
	for inode, pid := range lowest {
		out = append(out, netNamespace{inode, pid})
	}
	slices.SortFunc(out, func(a, b netNamespace) int { return a.pid - b.pid })
	return out, nil
}

// namespaceName names a namespace after its lowest process: the container id
// in its cgroup path (a 64-hex-digit segment, as Docker, containerd and CRI-O
// name them, shortened to 12), or else its comm.
func namespaceName(pidRoot string) string {
	if f, err := os.Open(filepath.Join(pidRoot, "cgroup")); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if id := containerID(sc.Text()); id != "" {
				return id
			}
		}
	}
	comm, err := os.ReadFile(filepath.Join(pidRoot, "comm"))
	if err != nil {
		return "unknown"
	}
	return processName(comm)
}

// containerID finds a 64-hex-digit id in a cgroup line such as
// "0::/system.slice/docker-<id>.scope" or "/kubepods/.../cri-containerd-<id>.scope".
func containerID(line string) string {
	for _, seg := range strings.FieldsFunc(line, func(r rune) bool { return r == '/' || r == '-' || r == '.' || r == ':' }) {
		if len(seg) == 64 && strings.Trim(seg, "0123456789abcdef") == "" {
			return seg[:12]
		}
	}
	return ""
}
