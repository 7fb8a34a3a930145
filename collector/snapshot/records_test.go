package snapshot

import (
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// TestRecordStore: records set, read, changed in place, removed and their
// slots reused, across chunks, and the store given back once empty.
func TestRecordStore(t *testing.T) {
	s := newRecordStore()
	const n = 3*recordChunk + 7
	for i := range uint64(n) {
		s.set(i+1, socketRecord{lport: uint16(i), generation: 1})
	}
	if s.len() != n || len(s.chunks) != 4 || s.slots != n {
		t.Fatalf("%d records in %d chunks, %d slots; want %d in 4, %d", s.len(), len(s.chunks), s.slots, n, n)
	}
	for i := range uint64(n) {
		if r, ok := s.get(i + 1); !ok || r.lport != uint16(i) {
			t.Fatalf("inode %d: %+v, %v; want lport %d", i+1, r, ok, i)
		}
	}
	if _, ok := s.get(n + 1); ok {
		t.Fatal("an inode never set was found")
	}
	// Overwriting keeps the slot.
	s.set(5, socketRecord{lport: 999})
	if r, _ := s.get(5); r.lport != 999 || s.slots != n {
		t.Fatalf("after overwrite: %+v, %d slots", r, s.slots)
	}
	// Every even inode removed, the odd ones changed in place.
	s.each(func(ino uint64, r *socketRecord) bool {
		r.generation = 2
		return ino%2 == 1
	})
	if want := (n + 1) / 2; s.len() != want || len(s.free) != n-want {
		t.Fatalf("after removing the even inodes: %d records, %d free slots; want %d, %d", s.len(), len(s.free), want, n-want)
	}
	for i := uint64(1); i <= n; i++ {
		r, ok := s.get(i)
		if ok != (i%2 == 1) || (ok && r.generation != 2) {
			t.Fatalf("inode %d: %+v, %v", i, r, ok)
		}
	}
	// New records take the freed slots: no new slot, no new chunk.
	for i := range uint64(n / 2) {
		s.set(1_000_000+i, socketRecord{rport: uint16(i)})
	}
	if s.slots != n || len(s.chunks) != 4 || len(s.free) != 0 {
		t.Fatalf("after refilling: %d slots, %d chunks, %d free; want %d, 4, 0", s.slots, len(s.chunks), len(s.free), n)
	}
	if r, ok := s.get(1_000_000 + 17); !ok || r.rport != 17 {
		t.Fatalf("a record in a reused slot: %+v, %v", r, ok)
	}
	s.remove(1) // and once more: nothing to do
	s.remove(1)
	if _, ok := s.get(1); ok || len(s.free) != 1 {
		t.Fatalf("removed twice: found %v, %d free slots; want false, 1", ok, len(s.free))
	}
	s.reset()
	if s.len() != 0 || s.chunks != nil || s.slots != 0 || s.free != nil {
		t.Fatalf("after reset: %d records, %d chunks, %d slots", s.len(), len(s.chunks), s.slots)
	}
}

// TestTrackerGivesBackRecords: once a complete reading finds no dead
// socket, the tracker's record store starts afresh.
func TestTrackerGivesBackRecords(t *testing.T) {
	tr := NewCloseWaitTracker(10_000)
	tr.begin()
	for i := range 2000 {
		s := cwSocket(uint64(i+1), uint16(1+i), tables.StateCloseWait)
		in := SockInfo{Dir: Outbound}
		tr.observe(&s, &in, time.Unix(1, 0))
	}
	tr.end(true)
	if tr.records.len() != 2000 || len(tr.records.chunks) != 2 {
		t.Fatalf("%d records in %d chunks, want 2000 in 2", tr.records.len(), len(tr.records.chunks))
	}
	tr.begin()
	tr.end(false) // incomplete: nothing forgotten
	if tr.records.len() != 2000 {
		t.Fatalf("an incomplete reading forgot records: %d left", tr.records.len())
	}
	tr.begin()
	tr.end(true)
	if tr.records.len() != 0 || tr.records.chunks != nil {
		t.Fatalf("after a complete reading of no dead socket: %d records, %d chunks kept", tr.records.len(), len(tr.records.chunks))
	}
}
