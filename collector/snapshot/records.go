package snapshot

// recordChunk is how many records one chunk of a recordStore holds: 40 KiB.
const recordChunk = 1024

// recordStore holds the CloseWaitTracker's records by socket inode: an
// index from inode to a slot (an 8-byte key and a 4-byte slot, 16 bytes a
// map entry), and the records themselves packed in fixed chunks, their
// freed slots reused. A map of whole records would cost its 48-byte entry
// at the map's load, which falls to about half each time the map grows;
// here only the 16-byte index entry does, and no chunk is ever copied as
// the store grows, so growing leaves no large garbage behind either.
//
// The chunks are kept once allocated (as a map keeps its buckets) until
// the store is empty at the end of a reading: then it starts afresh, so
// the memory of a passed incident's thousands of records is given back.
type recordStore struct {
	index  map[uint64]uint32
	chunks [][]socketRecord
	free   []uint32 // slots of removed records
	slots  uint32   // slots handed out so far, free ones included
}

func newRecordStore() recordStore {
	return recordStore{index: map[uint64]uint32{}}
}

func (s *recordStore) len() int { return len(s.index) }

func (s *recordStore) at(slot uint32) *socketRecord {
	return &s.chunks[slot/recordChunk][slot%recordChunk]
}

// get returns a copy of inode's record.
func (s *recordStore) get(ino uint64) (socketRecord, bool) {
	slot, ok := s.index[ino]
	if !ok {
		return socketRecord{}, false
	}
	return *s.at(slot), true
}

// set stores inode's record, in its slot or in a new one.
func (s *recordStore) set(ino uint64, r socketRecord) {
	slot, ok := s.index[ino]
	if !ok {
		if n := len(s.free); n > 0 {
			slot = s.free[n-1]
			s.free = s.free[:n-1]
		} else {
			slot = s.slots
			s.slots++
			if int(slot/recordChunk) == len(s.chunks) {
				s.chunks = append(s.chunks, make([]socketRecord, recordChunk))
			}
		}
		s.index[ino] = slot
	}
	*s.at(slot) = r
}

// remove forgets inode's record.
func (s *recordStore) remove(ino uint64) {
	slot, ok := s.index[ino]
	if !ok {
		return
	}
	delete(s.index, ino)
	*s.at(slot) = socketRecord{}
	s.free = append(s.free, slot)
}

// each calls f with every record, which f may change in place; a record
// f answers false for is removed.
func (s *recordStore) each(f func(ino uint64, r *socketRecord) (keep bool)) {
	for ino, slot := range s.index {
		if !f(ino, s.at(slot)) {
			s.remove(ino)
		}
	}
}

// reset starts an empty store afresh, its memory given back.
func (s *recordStore) reset() { *s = newRecordStore() }
