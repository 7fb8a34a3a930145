package tables

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// Seeds come from the fixture files in testdata/; `make fuzz` runs each
// target for a bounded time, and `go test` runs the seeds every time.

func seedLines(f *testing.F, paths ...string) {
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f.Add(sc.Text(), strings.HasSuffix(p, "6"))
		}
	}
}

// formatLine prints a socket the way the kernel does, so that what the
// parser accepts can be checked to parse back to the same socket.
func formatLine(s *Socket) string {
	addr := func(ap [16]byte, words int) string {
		var b strings.Builder
		for i := range words {
			w := uint32(ap[4*i]) | uint32(ap[4*i+1])<<8 | uint32(ap[4*i+2])<<16 | uint32(ap[4*i+3])<<24
			fmt.Fprintf(&b, "%08X", w)
		}
		return b.String()
	}
	words := 1
	if s.Family == IPv6 {
		words = 4
	}
	l, r := s.Local.Addr().As16(), s.Remote.Addr().As16()
	if s.Family == IPv4 {
		l4, r4 := s.Local.Addr().As4(), s.Remote.Addr().As4()
		copy(l[:], l4[:])
		copy(r[:], r4[:])
	}
	return fmt.Sprintf("   0: %s:%04X %s:%04X %02X %08X:%08X %02X:00000000 00000000 %5d        0 %d 1 0000000000000000 100 0 0 10 0",
		addr(l, words), s.Local.Port(), addr(r, words), s.Remote.Port(), uint8(s.State), s.TxQueue, s.RxQueue, s.Timer, s.UID, s.Inode)
}

func FuzzParseLine(f *testing.F) {
	seedLines(f, "../../testdata/proc/net/tcp", "../../testdata/proc/net/tcp6", "../../testdata/parser/tcp_malformed.txt", "../../testdata/parser/tcp_truncated.txt")
	f.Fuzz(func(t *testing.T, line string, v6 bool) {
		family := IPv4
		if v6 {
			family = IPv6
		}
		var s Socket
		if err := parseLine([]byte(line), family, &s); err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// What parses must mean what it says: print it back and parse again.
		if s.Family != family {
			t.Fatalf("family %v, want %v", s.Family, family)
		}
		if s.TxQueue > 0xFFFFFFFF || s.RxQueue > 0xFFFFFFFF {
			return // wider than the kernel prints: cannot round-trip through %08X
		}
		again := formatLine(&s)
		var s2 Socket
		if err := parseLine([]byte(again), family, &s2); err != nil {
			t.Fatalf("re-parsing %q (from %q): %v", again, line, err)
		}
		if s2 != s {
			t.Fatalf("round trip changed the socket:\n%q\n%+v\n%+v", line, s, s2)
		}
	})
}
