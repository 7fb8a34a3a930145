package collector

import (
	"fmt"
	"strconv"
	"strings"

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

// effectiveCapabilities returns the exporter's effective capability set,
// as /proc/self/status prints it in CapEff, from capget(2).
func effectiveCapabilities() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return uint64(data[1].Effective)<<32 | uint64(data[0].Effective), nil
}

// missingFdCapabilities names the capabilities of fdCapabilities absent
// from an effective set.
func missingFdCapabilities(effective uint64) []string {
	var out []string
	for _, c := range fdCapabilities {
		if effective&(1<<c.bit) == 0 {
			out = append(out, c.name)
		}
	}
	return out
}

// deniedMessage says which processes' sockets could not be read and why,
// as far as the exporter knows: the capability hint only when capabilities
// are missing (capsKnown false: the set could not be read). It lists at
// most ten pids.
func deniedMessage(pids []int32, firstErr error, missing []string, capsKnown bool) string {
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
		fmt.Fprintf(&b, "The exporter lacks %s: run it as root or grant CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE (the packaged systemd unit grants both).", strings.Join(missing, " and "))
	default:
		b.WriteString("The exporter has CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, so something else denies it: a security module (AppArmor, SELinux), a sandbox, or a user namespace that does not own those processes.")
	}
	b.WriteString(" This is logged once.")
	return b.String()
}
