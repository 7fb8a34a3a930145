package owners

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"golang.org/x/sys/unix"
)

// fdCapabilities are what reading another user's /proc/PID/fd takes: the
// bit numbers of include/uapi/linux/capability.h and their names.
var fdCapabilities = []struct {
	bit  uint
	name string
}{
	{unix.CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"},
	{unix.CAP_SYS_PTRACE, "CAP_SYS_PTRACE"},
}

// EffectiveCapabilities returns the exporter's effective capability set,
// as /proc/self/status prints it in CapEff, from capget(2).
func EffectiveCapabilities() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return uint64(data[1].Effective)<<32 | uint64(data[0].Effective), nil
}

// RaiseFdCapabilities makes CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE
// effective when the exporter holds them only in its permitted set, and
// logs once what it did or why it could not. That is how the image's
// binary gets them: its file capabilities are permitted-only, because a
// non-root container has no ambient capabilities, and a binary whose file
// capabilities carry the effective bit is not executed at all when the
// runtime withholds them (EPERM from execve). Run as root, or with
// ambient capabilities as the systemd unit grants them, both are already
// effective and this does nothing; without them in the permitted set it
// does nothing either, and the first scrape that cannot read a process's
// fds says which capabilities are missing.
func RaiseFdCapabilities(logger log.Logger) {
	raised, err := raiseFdCapabilities()
	switch {
	case err != nil && len(raised) > 0:
		level.Warn(logger).Log("msg", "cannot make the permitted "+strings.Join(raised, " and ")+
			" effective, so other users' /proc/PID/fd stay unreadable", "err", err)
	case err != nil:
		level.Warn(logger).Log("msg", "cannot read the exporter's capabilities to make CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE effective", "err", err)
	case len(raised) > 0:
		level.Info(logger).Log("msg", "made the permitted "+strings.Join(raised, " and ")+" effective (the binary's file capabilities)")
	}
}

// raiseFdCapabilities does RaiseFdCapabilities' work and names the
// capabilities it raised, or tried to.
func raiseFdCapabilities() ([]string, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("capget: %w", err)
	}
	permitted := uint64(data[1].Permitted)<<32 | uint64(data[0].Permitted)
	effective := uint64(data[1].Effective)<<32 | uint64(data[0].Effective)
	names, raised := raisableFdCapabilities(permitted, effective)
	if len(names) == 0 {
		return nil, nil
	}
	data[0].Effective, data[1].Effective = uint32(raised), uint32(raised>>32)
	if err := capsetAllThreads(&hdr, &data); err != nil {
		return names, err
	}
	return names, nil
}

// errCgo explains capsetAllThreads' ENOTSUP.
var errCgo = errors.New("this binary links cgo, whose threads Go cannot reach: build it with CGO_ENABLED=0, as the packages and the image are")

// capsetAllThreads sets the capabilities of every thread of the process.
// capset(2) changes only the calling thread, and the fd walk's workers run
// on whichever threads the Go scheduler picks: each needs the same set.
// AllThreadsSyscall runs capset on every thread with the world stopped;
// threads started later are cloned from one of those and inherit it. It
// refuses (ENOTSUP) in a binary linking cgo, as `go test -race` builds.
func capsetAllThreads(hdr *unix.CapUserHeader, data *[2]unix.CapUserData) error {
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	switch errno {
	case 0:
		return nil
	case unix.ENOTSUP:
		return fmt.Errorf("capset on every thread: %w: %w", errno, errCgo)
	default:
		return fmt.Errorf("capset on every thread: %w", errnoErr(errno))
	}
}

// raisableFdCapabilities names those of fdCapabilities in the permitted
// set but not in the effective one, and returns the effective set with
// them added.
func raisableFdCapabilities(permitted, effective uint64) ([]string, uint64) {
	var names []string
	for _, c := range fdCapabilities {
		if bit := uint64(1) << c.bit; permitted&bit != 0 && effective&bit == 0 {
			names = append(names, c.name)
			effective |= bit
		}
	}
	return names, effective
}

// MissingFdCapabilities names the capabilities of fdCapabilities absent
// from an effective set.
func MissingFdCapabilities(effective uint64) []string {
	var out []string
	for _, c := range fdCapabilities {
		if effective&(1<<c.bit) == 0 {
			out = append(out, c.name)
		}
	}
	return out
}

// DeniedMessage says which processes' sockets could not be read and why,
// as far as the exporter knows: the capability hint only when capabilities
// are missing (capsKnown false: the set could not be read). It lists at
// most ten pids.
func DeniedMessage(pids []int32, firstErr error, missing []string, capsKnown bool) string {
	const shown = 10
	list := make([]string, 0, min(len(pids), shown))
	for i, p := range pids {
		if i == shown {
			break
		}
		list = append(list, strconv.Itoa(int(p)))
	}
	more := ""
	if len(pids) > shown {
		more = fmt.Sprintf(" and %d more", len(pids)-shown)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cannot read /proc/PID/fd of %d processes (pids %s%s; first error: %v); their sockets are counted in tcpstate_unresolved_sockets instead of under their process. ",
		len(pids), strings.Join(list, ", "), more, firstErr)
	switch {
	case !capsKnown:
		b.WriteString("The exporter could not read its own capabilities: it needs CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE (or root) to read other users' processes.")
	case len(missing) > 0:
		fmt.Fprintf(&b, "The exporter lacks %s: run it as root or grant CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE (the packaged systemd unit grants both; in a container, add both to its capabilities).", strings.Join(missing, " and "))
	default:
		b.WriteString("The exporter has CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, so something else denies it: a security module (AppArmor, SELinux), a sandbox, or a user namespace that does not own those processes.")
	}
	b.WriteString(" This is logged once.")
	return b.String()
}
