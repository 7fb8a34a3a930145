package tables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
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
	// names of the namespaces of the last reading, by Socket.NetNS, and
	// what their processes' cgroups say of them.
	names   []string
	cgroups []CgroupInfo
	// cgroupErr: the malformed cgroup files of the last reading.
	cgroupErr error
}

// NamespaceNamer is a table source that reads several network namespaces.
type NamespaceNamer interface {
	Namespaces() []string
	// NamespaceCgroups tells, by Socket.NetNS, the container and pod of
	// each namespace; CgroupErr names the cgroup files that were malformed.
	NamespaceCgroups() []CgroupInfo
	CgroupErr() error
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

// NamespaceCgroups tells, for each namespace of the last reading, the
// container and Kubernetes pod its processes' cgroups name: those of its
// lowest pid (a pod's sandbox, the "pause" process, under Kubernetes), or
// of the next ones when that one names no pod. The host's is empty.
func (n *NamespaceTables) NamespaceCgroups() []CgroupInfo { return n.cgroups }

// CgroupErr names the malformed lines of the cgroup files read in the last
// reading, or is nil.
func (n *NamespaceTables) CgroupErr() error { return n.cgroupErr }

// cgroupPids bounds the processes of a namespace whose cgroup is read.
const cgroupPids = 3

type netNamespace struct {
	inode string
	pids  []int // the lowest, in order, at most cgroupPids
}

func (n *NamespaceTables) Stream(ctx context.Context, fn func(*Socket)) error {
	own, _ := os.Readlink(filepath.Join(n.Root, "self", "ns", "net"))
	others, err := n.discover(own)
	if err != nil {
		return err
	}
	n.names = append(n.names[:0], HostNetns)
	n.cgroups = append(n.cgroups[:0], CgroupInfo{})
	n.cgroupErr = nil
	var problems, cgroupProblems []error
	if err := n.own.Stream(ctx, fn); err != nil {
		if errors.Is(err, ErrRestartReading) {
			return err
		}
		problems = append(problems, err)
	}
	seen := map[string]int{HostNetns: 1}
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
		pidRoot := filepath.Join(n.Root, strconv.Itoa(ns.pids[0]))
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
		cg, err := n.namespaceCgroup(ns.pids)
		if err != nil && len(cgroupProblems) < maxCgroupErrors {
			cgroupProblems = append(cgroupProblems, err)
		}
		name := namespaceName(pidRoot, cg)
		if seen[name]++; seen[name] > 1 {
			name = fmt.Sprintf("%s-%d", name, seen[name])
		}
		n.names = append(n.names, name)
		n.cgroups = append(n.cgroups, cg)
	}
	n.cgroupErr = errors.Join(cgroupProblems...)
	return errors.Join(problems...)
}

// namespaceCgroup reads the cgroups of a namespace's lowest pids until one
// names a pod. The container is the lowest pid's, which names the
// namespace. A process that exited meanwhile is skipped.
func (n *NamespaceTables) namespaceCgroup(pids []int) (CgroupInfo, error) {
	var out CgroupInfo
	var problems []error
	for i, pid := range pids {
		path := filepath.Join(n.Root, strconv.Itoa(pid), "cgroup")
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		cg, err := ParseCgroup(f, path)
		f.Close()
		if err != nil {
			problems = append(problems, err)
		}
		if i == 0 {
			out.ContainerID = cg.ContainerID
		}
		if cg.PodUID != "" {
			out.PodUID = cg.PodUID
			break
		}
	}
	return out, errors.Join(problems...)
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
	lowest := map[string][]int{}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		link, err := os.Readlink(filepath.Join(n.Root, name, "ns", "net"))
		if err != nil || link == own {
			continue // exited, not ours to read, or the exporter's own
		}
		lowest[link] = keepLowest(lowest[link], pid)
	}
	out := make([]netNamespace, 0, len(lowest))
	for inode, pids := range lowest {
		out = append(out, netNamespace{inode, pids})
	}
	slices.SortFunc(out, func(a, b netNamespace) int { return a.pids[0] - b.pids[0] })
	return out, nil
}

// keepLowest adds pid to pids, sorted, keeping the cgroupPids lowest.
func keepLowest(pids []int, pid int) []int {
	i, _ := slices.BinarySearch(pids, pid)
	if i >= cgroupPids {
		return pids
	}
	pids = slices.Insert(pids, i, pid)
	if len(pids) > cgroupPids {
		pids = pids[:cgroupPids]
	}
	return pids
}

// namespaceName names a namespace after its lowest process: the container id
// in its cgroup path (as Docker, containerd and CRI-O name them, shortened
// to 12 hex digits), or else its comm.
func namespaceName(pidRoot string, cg CgroupInfo) string {
	if cg.ContainerID != "" {
		return cg.ContainerID[:12]
	}
	comm, err := os.ReadFile(filepath.Join(pidRoot, "comm"))
	if err != nil {
		return "unknown"
	}
	return ProcessName(comm)
}

// ProcessName turns the content of /proc/PID/comm into a label value: without
// its newline, and valid UTF-8 (comm is whatever bytes the program set).
func ProcessName(comm []byte) string {
	comm = bytes.TrimSuffix(comm, []byte("\n"))
	if len(comm) == 0 {
		return "unknown"
	}
	if utf8.Valid(comm) {
		return string(comm)
	}
	return strings.ToValidUTF8(string(comm), "?")
}

// HostNetns is the netns label of the exporter's own network namespace.
const HostNetns = "host"
