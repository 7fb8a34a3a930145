package tables

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// CgroupInfo is what a process's /proc/PID/cgroup tells of the container
// and the Kubernetes pod it runs in.
type CgroupInfo struct {
	// ContainerID is the container's id (64 hex digits) as Docker,
	// containerd and CRI-O name its cgroup, or "".
	ContainerID string
	// PodUID is the pod's UID as the API server writes it (kube-state-
	// metrics' kube_pod_info{uid}), or "". Static pods have their config
	// hash (32 hex digits) instead.
	PodUID string
}

// maxCgroupErrors bounds the malformed lines one file reports.
const maxCgroupErrors = 3

// ParseCgroup reads the text of /proc/PID/cgroup, one line per hierarchy:
// "ID:controllers:path" for cgroup v1 (several lines, such as
// "4:memory:/kubepods/burstable/pod<uid>/<id>"), "0::/path" for cgroup v2.
// The kubelet names a pod's cgroup in one of two ways, by its cgroup driver:
//
//   - cgroupfs: /kubepods[/burstable|/besteffort]/pod<uid>/<container id>
//   - systemd: /kubepods.slice/kubepods-burstable.slice/
//     kubepods-burstable-pod<uid with _ for ->.slice/<runtime>-<container id>.scope,
//     where runtime is cri-containerd, crio or docker (a kind node's
//     kubelet writes kubelet-kubepods-…-pod<uid>.slice).
//
// The innermost pod and container segments of a path count (a kind node
// nests the kubelet's cgroups under its own container's). The first line
// naming a pod gives both; without one, the first naming a container.
// A malformed line is skipped and reported in the error (name is the
// file, for the message), while the lines that parse still count: the
// result is usable whatever the error.
func ParseCgroup(r io.Reader, name string) (CgroupInfo, error) {
	var out, firstContainer CgroupInfo
	var problems []error
	malformed := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		path, err := cgroupPath(line)
		if err != nil {
			if malformed++; malformed <= maxCgroupErrors {
				problems = append(problems, fmt.Errorf("%s:%d: %w", name, n, err))
			}
			continue
		}
		info := cgroupInfoOf(path)
		if info.PodUID != "" && out.PodUID == "" {
			out = info
		}
		if info.ContainerID != "" && firstContainer.ContainerID == "" {
			firstContainer.ContainerID = info.ContainerID
		}
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, fmt.Errorf("%s: %w", name, err))
	}
	if malformed > maxCgroupErrors {
		problems = append(problems, fmt.Errorf("%s: %d more malformed lines", name, malformed-maxCgroupErrors))
	}
	if out.ContainerID == "" {
		out.ContainerID = firstContainer.ContainerID
	}
	return out, errors.Join(problems...)
}

// cgroupPath returns the path of one line of /proc/PID/cgroup, checking
// the line's form: a decimal hierarchy id, the controllers (none for v2,
// whose id is 0), and an absolute path (which may hold colons, and
// starts with /.. for a cgroup outside the reader's cgroup namespace).
func cgroupPath(line string) (string, error) {
	id, rest, ok := strings.Cut(line, ":")
	if !ok {
		return "", fmt.Errorf("want hierarchy-id:controllers:path, got %q", line)
	}
	controllers, path, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("want hierarchy-id:controllers:path, got %q", line)
	}
	if _, err := strconv.ParseUint(id, 10, 32); err != nil {
		return "", fmt.Errorf("hierarchy id %q is not a number in %q", id, line)
	}
	if id == "0" && controllers != "" {
		return "", fmt.Errorf("hierarchy 0 (cgroup v2) with controllers %q in %q", controllers, line)
	}
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("path %q is not absolute in %q", path, line)
	}
	return path, nil
}

// cgroupInfoOf finds the innermost pod and container segments of a path.
func cgroupInfoOf(path string) CgroupInfo {
	var info CgroupInfo
	for seg := range strings.SplitSeq(path, "/") {
		if uid := podUIDOf(seg); uid != "" {
			info.PodUID = uid
			info.ContainerID = "" // a container above the pod is not its own
		} else if id := containerIDOf(seg); id != "" {
			info.ContainerID = id
		}
	}
	return info
}

// podUIDOf reads a pod's UID from a cgroup segment: "pod<uid>" (cgroupfs
// driver) or "kubepods-<qos>-pod<uid_with_underscores>.slice" (systemd).
func podUIDOf(seg string) string {
	var uid string
	if slice, ok := strings.CutSuffix(seg, ".slice"); ok {
		i := strings.LastIndex(slice, "-pod")
		if i < 0 || !strings.Contains(slice[:i], "kubepods") {
			return ""
		}
		uid = strings.ReplaceAll(slice[i+len("-pod"):], "_", "-")
	} else if rest, ok := strings.CutPrefix(seg, "pod"); ok {
		uid = rest
	} else {
		return ""
	}
	if !isPodUID(uid) {
		return ""
	}
	return uid
}

// isPodUID accepts a UUID in lower-case hex with dashes (8-4-4-4-12), as
// the API server assigns them, or 32 hex digits (a static pod's config hash).
func isPodUID(s string) bool {
	switch len(s) {
	case 32:
		return isLowerHex(s)
	case 36:
		for i, c := range []byte(s) {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if c != '-' {
					return false
				}
			} else if !isLowerHexByte(c) {
				return false
			}
		}
		return true
	}
	return false
}

// containerIDOf reads a container id from a cgroup segment: the id alone
// (cgroupfs driver, Docker's /docker/<id>) or "<runtime>-<id>.scope"
// (systemd: cri-containerd-, crio-, docker-, libpod-). CRI-O's monitor
// (crio-conmon-<id>.scope) is not the container.
func containerIDOf(seg string) string {
	seg = strings.TrimSuffix(seg, ".scope")
	if strings.HasPrefix(seg, "crio-conmon-") {
		return ""
	}
	if i := strings.LastIndexByte(seg, '-'); i >= 0 {
		seg = seg[i+1:]
	}
	if len(seg) != 64 || !isLowerHex(seg) {
		return ""
	}
	return seg
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLowerHexByte(s[i]) {
			return false
		}
	}
	return s != ""
}

func isLowerHexByte(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
