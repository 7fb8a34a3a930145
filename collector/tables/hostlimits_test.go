package tables

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSockstat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		want       HostTCP
		err        string // a substring of the error; "" for none
	}{
		{name: "kernel 6.18", text: "sockets: used 18\nTCP: inuse 2 orphan 3 tw 57 alloc 2 mem 7\nUDP: inuse 0 mem 0\n",
			want: HostTCP{MemPages: 7, Orphans: 3}},
		{name: "fields in another order", text: "TCP: mem 9 orphan 1 inuse 2\n", want: HostTCP{MemPages: 9, Orphans: 1}},
		{name: "malformed mem", text: "sockets: used 1\nTCP: inuse 2 orphan 0 tw 0 alloc 2 mem 12x\n",
			err: `sockstat:2: mem "12x" is not a number in line "TCP: inuse 2 orphan 0 tw 0 alloc 2 mem 12x"`},
		{name: "key without value", text: "TCP: inuse 2 orphan 0 mem\n", err: `sockstat:1: "mem" has no value`},
		{name: "no orphan", text: "TCP: inuse 2 mem 1\n", err: `sockstat:1: TCP line "TCP: inuse 2 mem 1" lacks "mem" or "orphan"`},
		{name: "no TCP line", text: "sockets: used 1\nUDP: inuse 0 mem 0\n", err: `sockstat: no "TCP:" line`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h HostTCP
			err := ParseSockstat([]byte(tc.text), "sockstat", &h)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h != tc.want {
				t.Errorf("got %+v, want %+v", h, tc.want)
			}
		})
	}
}

// hostTree writes the three host files under a temporary procfs root.
func hostTree(t *testing.T, sockstat, tcpMem, maxOrphans string) string {
	t.Helper()
	root := t.TempDir()
	for path, text := range map[string]string{
		"net/sockstat":                 sockstat,
		"sys/net/ipv4/tcp_mem":         tcpMem,
		"sys/net/ipv4/tcp_max_orphans": maxOrphans,
	} {
		if text == "" {
			continue
		}
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestReadHostTCP(t *testing.T) {
	t.Parallel()
	const sockstat = "TCP: inuse 2 orphan 3 tw 57 alloc 2 mem 7\n"
	root := hostTree(t, sockstat, "287907\t383877\t575814\n", "131072\n")
	h, err := ReadHostTCP(root)
	if err != nil {
		t.Fatal(err)
	}
	want := HostTCP{MemPages: 7, Orphans: 3, MemLimit: [3]uint64{287907, 383877, 575814}, MaxOrphans: 131072}
	if h != want {
		t.Errorf("got %+v, want %+v", h, want)
	}
	for _, tc := range []struct {
		name, tcpMem, maxOrphans, err string
	}{
		{"two numbers", "1000 2000\n", "8\n", `tcp_mem:1: want three numbers (min pressure max) in "1000 2000"`},
		{"not a number", "1000 2k 3000\n", "8\n", `tcp_mem:1: "2k" is not a number of pages`},
		{"four numbers", "1 2 3 4\n", "8\n", `tcp_mem:1: unexpected "4" after three numbers`},
		{"bad orphans", "1 2 3\n", "-1\n", `tcp_max_orphans:1: "-1" is not a number`},
		{"missing orphans", "1 2 3\n", "", `tcp_max_orphans: no such file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadHostTCP(hostTree(t, sockstat, tc.tcpMem, tc.maxOrphans))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestIsOrphan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sk   Socket
		want bool
	}{
		{"closed, unsent data", Socket{State: StateFinWait1}, true},
		{"closed, peer not closed", Socket{State: StateFinWait2, Timer: 2}, true},
		{"closed after the peer", Socket{State: StateLastAck}, true},
		{"simultaneous close", Socket{State: StateClosing}, true},
		{"still held", Socket{State: StateFinWait1, Inode: 7}, false},
		{"time-wait minisocket in FIN_WAIT2", Socket{State: StateFinWait2, Timer: TimerTimeWait}, false},
		{"TIME_WAIT", Socket{State: StateTimeWait, Timer: TimerTimeWait}, false},
		{"request socket", Socket{State: StateSynRecv}, false},
	} {
		if got := IsOrphan(&tc.sk); got != tc.want {
			t.Errorf("%s: IsOrphan = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestProcfsTimer: the "tr" column tells time-wait minisockets (3) apart.
func TestProcfsTimer(t *testing.T) {
	t.Parallel()
	line := []byte("   0: 0100007F:1F90 0100007F:C3B6 05 00000000:00000000 03:00000F5A 00000000     0        0 0 3 0000000000000000\n")
	var s Socket
	if err := parseLine(line, IPv4, &s); err != nil {
		t.Fatal(err)
	}
	if s.Timer != TimerTimeWait || IsOrphan(&s) {
		t.Errorf("timer %d, orphan %v: want a time-wait minisocket", s.Timer, IsOrphan(&s))
	}
}

// TestParseSkmeminfo: memory is r + w + f of INET_DIAG_SKMEMINFO, drops
// its ninth number; a negative forward allocation counts nothing.
func TestParseSkmeminfo(t *testing.T) {
	t.Parallel()
	attr := func(mi [9]int32) []byte {
		b := make([]byte, rtaHdrLen+4*len(mi))
		binary.NativeEndian.PutUint16(b[0:], uint16(len(b)))
		binary.NativeEndian.PutUint16(b[2:], inetDiagSkmeminfo)
		for i, v := range mi {
			binary.NativeEndian.PutUint32(b[rtaHdrLen+4*i:], uint32(v))
		}
		return b
	}
	//               r     rb      t     tb     f     w      o  bl d
	a := attr([9]int32{1000, 131072, 2304, 16384, 3072, 50000, 0, 0, 28})
	var s Socket
	parseAttrs(a, &s)
	if !s.HasMem || s.Mem != 1000+50000+3072 || s.Drops != 28 {
		t.Errorf("got mem %d drops %d (has %v), want 54072 and 28", s.Mem, s.Drops, s.HasMem)
	}
	s = Socket{}
	parseAttrs(attr([9]int32{10, 0, 0, 0, -4096, 20, 0, 0, 0}), &s)
	if s.Mem != 30 {
		t.Errorf("negative fwd_alloc: got mem %d, want 30", s.Mem)
	}
	s = Socket{}
	parseAttrs(a[:rtaHdrLen+16], &s) // cut short: no memory, no panic
	if s.HasMem {
		t.Errorf("a truncated attribute gave memory %d", s.Mem)
	}
}
