package main

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// capabilityNumbers mirrors the CAP_* numbers of include/uapi/linux/capability.h,
// named as libcap's setcap and getcap name them.
var capabilityNumbers = map[string]uint{
	"cap_chown":              0,
	"cap_dac_override":       1,
	"cap_dac_read_search":    2,
	"cap_fowner":             3,
	"cap_fsetid":             4,
	"cap_kill":               5,
	"cap_setgid":             6,
	"cap_setuid":             7,
	"cap_setpcap":            8,
	"cap_linux_immutable":    9,
	"cap_net_bind_service":   10,
	"cap_net_broadcast":      11,
	"cap_net_admin":          12,
	"cap_net_raw":            13,
	"cap_ipc_lock":           14,
	"cap_ipc_owner":          15,
	"cap_sys_module":         16,
	"cap_sys_rawio":          17,
	"cap_sys_chroot":         18,
	"cap_sys_ptrace":         19,
	"cap_sys_pacct":          20,
	"cap_sys_admin":          21,
	"cap_sys_boot":           22,
	"cap_sys_nice":           23,
	"cap_sys_resource":       24,
	"cap_sys_time":           25,
	"cap_sys_tty_config":     26,
	"cap_mknod":              27,
	"cap_lease":              28,
	"cap_audit_write":        29,
	"cap_audit_control":      30,
	"cap_setfcap":            31,
	"cap_mac_override":       32,
	"cap_mac_admin":          33,
	"cap_syslog":             34,
	"cap_wake_alarm":         35,
	"cap_block_suspend":      36,
	"cap_audit_read":         37,
	"cap_perfmon":            38,
	"cap_bpf":                39,
	"cap_checkpoint_restore": 40,
}

// The on-disk format of security.capability, struct vfs_cap_data in
// include/uapi/linux/capability.h: a little-endian magic word (revision
// and flags), then permitted and inheritable sets as two 32-bit halves
// each. Revision 2 has no root uid (that is revision 3, for user
// namespaces), so the capabilities hold whichever user namespace the
// container runs in.
const (
	vfsCapRevision2      = 0x02000000
	vfsCapFlagsEffective = 0x000001
	vfsCapDataSize       = 4 + 2*8
)

// fileCapabilities encodes "cap_a,cap_b" as the value of the
// security.capability extended attribute that `setcap cap_a,cap_b=ep`
// writes: permitted and effective, nothing inheritable.
func fileCapabilities(names string) ([]byte, error) {
	var permitted uint64
	for _, name := range strings.Split(names, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		n, ok := capabilityNumbers[name]
		if !ok {
			return nil, fmt.Errorf("unknown capability %q", name)
		}
		permitted |= 1 << n
	}
	b := make([]byte, vfsCapDataSize)
	binary.LittleEndian.PutUint32(b[0:], vfsCapRevision2|vfsCapFlagsEffective)
	binary.LittleEndian.PutUint32(b[4:], uint32(permitted))      // data[0].permitted
	binary.LittleEndian.PutUint32(b[8:], 0)                      // data[0].inheritable
	binary.LittleEndian.PutUint32(b[12:], uint32(permitted>>32)) // data[1].permitted
	binary.LittleEndian.PutUint32(b[16:], 0)                     // data[1].inheritable
	return b, nil
}
