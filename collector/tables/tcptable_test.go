package tables

import (
	"bufio"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures encode addresses as a little-endian kernel prints them.

// appendTable streams one table into dst.
func appendTable(ctx context.Context, r *bufio.Reader, name string, family Family, dst []Socket) ([]Socket, error) {
	err := streamTable(ctx, r, name, family, func(s *Socket) { dst = append(dst, *s) })
	return dst, err
}

func readFixture(t *testing.T, path string, family Family) ([]Socket, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return appendTable(context.Background(), bufio.NewReader(f), path, family, nil)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestParseIPv4Table(t *testing.T) {
	t.Parallel()
	socks, err := readFixture(t, "../../testdata/proc/net/tcp", IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 19 {
		t.Fatalf("got %d sockets, want 19", len(socks))
	}
	want := map[int]Socket{
		0:  {Local: ap("0.0.0.0:22"), Remote: ap("0.0.0.0:0"), State: StateListen, Inode: 1001, Family: IPv4},
		1:  {Local: ap("127.0.0.1:8080"), Remote: ap("0.0.0.0:0"), State: StateListen, RxQueue: 3, UID: 1000, Inode: 1002, Family: IPv4},
		2:  {Local: ap("10.0.0.5:22"), Remote: ap("10.0.0.9:51000"), State: StateEstablished, TxQueue: 0x24, Inode: 1003, Family: IPv4},
		3:  {Local: ap("10.0.0.5:40001"), Remote: ap("10.1.2.3:9000"), State: StateCloseWait, RxQueue: 0x10, UID: 1000, Inode: 1004, Family: IPv4},
		8:  {Local: ap("10.0.0.5:40006"), Remote: ap("10.1.2.3:9000"), State: StateTimeWait, Family: IPv4},
		18: {Local: ap("10.0.0.5:40011"), Remote: ap("10.1.2.3:9000"), State: State(12), UID: 1000, Family: IPv4},
	}
	for i, w := range want {
		if socks[i] != w {
			t.Errorf("socket %d:\n got %+v\nwant %+v", i, socks[i], w)
		}
	}
	// Every one of the eleven states appears in the fixture.
	seen := map[State]bool{}
	for _, s := range socks {
		seen[s.State] = true
	}
	for _, st := range AllStates {
		if !seen[st] {
			t.Errorf("state %s not parsed from the fixture", st)
		}
	}
}

func TestParseIPv6TableWithMappedAddresses(t *testing.T) {
	t.Parallel()
	socks, err := readFixture(t, "../../testdata/proc/net/tcp6", IPv6)
	if err != nil {
		t.Fatal(err)
	}
	want := []Socket{
		{Local: ap("[::]:8443"), Remote: ap("[::]:0"), State: StateListen, UID: 1000, Inode: 2001, Family: IPv6},
		{Local: ap("[::ffff:10.0.0.5]:8443"), Remote: ap("[::ffff:10.0.0.77]:60000"), State: StateEstablished, RxQueue: 0x100, UID: 1000, Inode: 2002, Family: IPv6},
		{Local: ap("[2001:db8::5]:41000"), Remote: ap("[2001:db8::10]:9000"), State: StateCloseWait, UID: 1000, Inode: 2003, Family: IPv6},
		{Local: ap("[::ffff:10.0.0.5]:41001"), Remote: ap("[::ffff:10.1.2.3]:9000"), State: StateCloseWait, RxQueue: 0x40, UID: 1000, Inode: 2004, Family: IPv6},
	}
	if len(socks) != len(want) {
		t.Fatalf("got %d sockets, want %d", len(socks), len(want))
	}
	for i := range want {
		if socks[i] != want[i] {
			t.Errorf("socket %d:\n got %+v\nwant %+v", i, socks[i], want[i])
		}
	}
}

func TestMalformedLinesAreSkippedAndReported(t *testing.T) {
	t.Parallel()
	socks, err := readFixture(t, "../../testdata/parser/tcp_malformed.txt", IPv4)
	// The two good lines, first and last, are kept.
	if len(socks) != 2 || socks[0].Inode != 1001 || socks[1].Inode != 1004 || socks[1].RxQueue != 0x10 {
		t.Fatalf("good lines not kept: %+v", socks)
	}
	var te *TableError
	if !errors.As(err, &te) {
		t.Fatalf("want a *TableError, got %v", err)
	}
	if te.Count != 7 || te.Line != 3 {
		t.Errorf("got %d malformed lines, first at line %d; want 7, first at line 3", te.Count, te.Line)
	}
	msg := err.Error()
	for _, part := range []string{"tcp_malformed.txt:3", `local address "0500000Z:9C41"`, "0500000Z:9C41 0302010A:2328", "and 6 more malformed lines"} {
		if !strings.Contains(msg, part) {
			t.Errorf("error %q does not contain %q", msg, part)
		}
	}
}

func TestParseLineErrorsQuoteTheBadToken(t *testing.T) {
	t.Parallel()
	good := "   3: 0500000A:9C41 0302010A:2328 08 00000000:00000010 00:00000000 00000000  1000        0 1004 1 0000000000000000 100 0 0 10 0"
	cases := []struct {
		name, line, want string
	}{
		{"bad hex in address", strings.Replace(good, "0500000A:9C41", "0500000Z:9C41", 1), `local address "0500000Z:9C41": address is not hex`},
		{"short address", strings.Replace(good, "0302010A:2328", "302010A:2328", 1), `remote address "302010A:2328": address is not 8 hex digits`},
		{"no port", strings.Replace(good, "0500000A:9C41", "0500000A", 1), `local address "0500000A": want address:port`},
		{"long port", strings.Replace(good, ":2328", ":23281", 1), `remote address "0302010A:23281": port is not four hex digits`},
		{"garbage state", strings.Replace(good, " 08 ", " XY ", 1), `state "XY": not a two-digit hex code`},
		{"three-digit state", strings.Replace(good, " 08 ", " 008 ", 1), `state "008"`},
		{"queues without colon", strings.Replace(good, "00000000:00000010", "00000000-00000010", 1), `queues "00000000-00000010": want tx:rx`},
		{"queues not hex", strings.Replace(good, "00000000:00000010", "00000000:0000001G", 1), `queues "00000000:0000001G": not hex`},
		{"negative inode", strings.Replace(good, " 1004 ", " -7 ", 1), `inode "-7": not a number`},
		{"huge uid", strings.Replace(good, " 1000 ", " 99999999999 ", 1), `uid "99999999999": not a number`},
		{"cut after state", good[:35], "missing queues"},
		{"cut before inode", good[:87], "missing inode"},
		{"only the slot", "   3:", "missing local address"},
		{"blank", "   \n", "empty line"},
	}
	for _, c := range cases {
		var s Socket
		err := parseLine([]byte(c.line), IPv4, &s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got error %v, want it to contain %q", c.name, err, c.want)
		}
	}
	var s Socket
	if err := parseLine([]byte(good), IPv4, &s); err != nil {
		t.Fatalf("good line: %v", err)
	}
}

func TestTruncatedTableKeepsCompleteLines(t *testing.T) {
	t.Parallel()
	socks, err := readFixture(t, "../../testdata/parser/tcp_truncated.txt", IPv4)
	if len(socks) != 1 || socks[0].Inode != 1001 {
		t.Fatalf("got %+v, want the one complete line", socks)
	}
	var te *TableError
	if !errors.As(err, &te) || te.Line != 3 || !strings.Contains(te.Error(), "missing") {
		t.Fatalf("want a TableError for line 3, got %v", err)
	}
}

func TestHeaderOnlyAndEmptyTables(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"../../testdata/parser/tcp_header_only.txt", os.DevNull} {
		socks, err := readFixture(t, path, IPv4)
		if err != nil || len(socks) != 0 {
			t.Errorf("%s: got %d sockets, err %v; want none and no error", path, len(socks), err)
		}
	}
}

func TestOverlongLineIsAnErrorNotAPanic(t *testing.T) {
	t.Parallel()
	text := "header\n" + strings.Repeat("B", 9000) + "\n" + strings.Repeat("A", 100) + "\n"
	r := bufio.NewReaderSize(strings.NewReader(text), 4096)
	socks, err := appendTable(context.Background(), r, "tcp", IPv4, nil)
	var te *TableError
	if len(socks) != 0 || !errors.As(err, &te) || te.Count != 2 || !strings.Contains(err.Error(), "line too long") {
		t.Fatalf("got %d sockets, err %v", len(socks), err)
	}
}

// TestListenerAfterConnectedSockets: the classifier relies on the kernel
// listing listeners first; a table that does not is reported, naming the
// line, and still read whole.
func TestListenerAfterConnectedSockets(t *testing.T) {
	t.Parallel()
	text := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0500000A:9C41 0302010A:2328 01 00000000:00000000 00:00000000 00000000  1000        0 1004 1 0000000000000000 100 0 0 10 0\n" +
		"   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0\n"
	socks, err := appendTable(context.Background(), bufio.NewReader(strings.NewReader(text)), "tcp", IPv4, nil)
	var te *TableError
	if len(socks) != 2 || !errors.As(err, &te) || te.Line != 3 || !errors.Is(err, errListenerOrder) {
		t.Fatalf("got %d sockets, err %v; want both and line 3 reported", len(socks), err)
	}
}

func TestMissingTCP6IsNormal(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../testdata/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "net", "tcp"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	socks, err := AppendSockets(context.Background(), NewProcfsTables(root), nil)
	if err != nil || len(socks) != 19 {
		t.Fatalf("without tcp6: %d sockets, err %v; want 19 and no error", len(socks), err)
	}
	// Without the IPv4 table, though, nothing can be counted.
	_, err = AppendSockets(context.Background(), NewProcfsTables(t.TempDir()), nil)
	if err == nil || !strings.Contains(err.Error(), "net/tcp") {
		t.Fatalf("missing tcp: got %v, want an error naming the file", err)
	}
}

func TestParseLineDoesNotAllocate(t *testing.T) {
	line4 := []byte("   3: 0500000A:9C41 0302010A:2328 08 00000000:00000010 00:00000000 00000000  1000        0 1004 1 0000000000000000 100 0 0 10 0\n")
	line6 := []byte("   3: 0000000000000000FFFF00000500000A:A029 0000000000000000FFFF00000302010A:2328 08 00000000:00000040 00:00000000 00000000  1000        0 2004 1 0000000000000000 100 0 0 10 0\n")
	var s Socket
	allocs := testing.AllocsPerRun(100, func() {
		_ = parseLine(line4, IPv4, &s)
		_ = parseLine(line6, IPv6, &s)
	})
	if allocs != 0 {
		t.Fatalf("parseLine allocates %.1f times per pair of lines, want 0", allocs)
	}
}

func TestStateNames(t *testing.T) {
	t.Parallel()
	if len(AllStates) != 11 {
		t.Fatalf("%d states, want 11", len(AllStates))
	}
	for _, st := range AllStates {
		got, ok := ParseState(st.String())
		if !ok || got != st {
			t.Errorf("ParseState(%q) = %v, %v", st.String(), got, ok)
		}
	}
	if State(12).String() != "unknown" || State(0).Valid() {
		t.Error("codes outside 1..11 must read unknown")
	}
}
