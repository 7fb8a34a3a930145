package owners

import (
	"math/bits"
	"slices"
)

// ownerIndex maps socket inodes to the pids that hold them, for one reading:
// every socket fd the walk found as one 8-byte key, the inode in the high
// half and the pid in the low half, sorted, so that an inode's first key
// holds its lowest pid. Socket inodes are 32-bit (the kernel's
// get_next_ino); a wider one, which no kernel hands out for a socket, is
// kept in wide. The index costs 8 bytes an fd, a byte for the buckets and a
// bit for the marks, where a Go map costs about 50; a lookup is a bucket and
// a short binary search.
type ownerIndex struct {
	keys []uint64
	wide map[uint64]int32 // inode → lowest pid, for inodes past 32 bits
	// buckets[b] is the first key whose inode falls into bucket b or a
	// later one; an inode's bucket is (inode-min)>>shift.
	buckets []int32
	min     uint64
	shift   uint8
	// listed marks, by key, the sockets the tables listed (markRun).
	listed []uint64
}

func indexKey(inode uint64, pid int32) uint64 { return inode<<32 | uint64(uint32(pid)) }

// add records that pid holds inode. Called before build.
func (x *ownerIndex) add(keys []uint64, inode uint64, pid int32) []uint64 {
	if inode>>32 != 0 {
		if x.wide == nil {
			x.wide = map[uint64]int32{}
		}
		if cur, ok := x.wide[inode]; !ok || pid < cur {
			x.wide[inode] = pid
		}
		return keys
	}
	return append(keys, indexKey(inode, pid))
}

// build sorts keys and indexes them; the index keeps the slice.
func (x *ownerIndex) build(keys []uint64) {
	slices.Sort(keys)
	x.keys = keys
	n := len(keys)
	x.listed = slices.Grow(x.listed[:0], n/64+1)[:n/64+1]
	clear(x.listed)
	if n == 0 {
		x.buckets = x.buckets[:0]
		return
	}
	// About four keys a bucket: the inode range split in a power of two.
	x.min = keys[0] >> 32
	span := keys[n-1]>>32 - x.min
	want := max(n/4, 1)
	x.shift = 0
	if l := bits.Len64(span); l > bits.Len(uint(want)) {
		x.shift = uint8(l - bits.Len(uint(want)))
	}
	nb := int(span>>x.shift) + 1
	x.buckets = slices.Grow(x.buckets[:0], nb+1)[:nb+1]
	k := 0
	for b := range nb + 1 {
		for k < n && int((keys[k]>>32-x.min)>>x.shift) < b {
			k++
		}
		x.buckets[b] = int32(k)
	}
}

// find returns the position of inode's first key (its lowest pid).
func (x *ownerIndex) find(inode uint64) (int, bool) {
	if len(x.keys) == 0 || inode < x.min || inode>>32 != 0 {
		return 0, false
	}
	b := (inode - x.min) >> x.shift
	if b >= uint64(len(x.buckets)-1) {
		return 0, false
	}
	lo, hi := int(x.buckets[b]), int(x.buckets[b+1])
	i, _ := slices.BinarySearch(x.keys[lo:hi], inode<<32)
	i += lo
	return i, i < len(x.keys) && x.keys[i]>>32 == inode
}

// pidAt returns the pid of the key at position i.
func (x *ownerIndex) pidAt(i int) int32 { return int32(uint32(x.keys[i])) }

// inodeAt returns the inode of the key at position i.
func (x *ownerIndex) inodeAt(i int) uint64 { return x.keys[i] >> 32 }

// markRun marks as listed the keys of the inode at position i: every
// process that holds the socket.
func (x *ownerIndex) markRun(i int) {
	ino := x.keys[i] >> 32
	for ; i < len(x.keys) && x.keys[i]>>32 == ino; i++ {
		x.listed[i/64] |= 1 << (i % 64)
	}
}

// isListedAt tells whether the key at position i was marked.
func (x *ownerIndex) isListedAt(i int) bool { return x.listed[i/64]&(1<<(i%64)) != 0 }

// isListed tells whether the tables listed inode (a marked key). Inodes
// past 32 bits are never marked: they count as listed.
func (x *ownerIndex) isListed(inode uint64) bool {
	if inode>>32 != 0 {
		return true
	}
	i, ok := x.find(inode)
	return ok && x.isListedAt(i)
}
