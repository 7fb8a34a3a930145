package collector

import (
	"cmp"
	"math/bits"
	"slices"
)

// ownerIndex maps socket inodes to their owners for one reading: every
// socket fd the walk found, as entries sorted by inode and then pid, so
// that the first entry of an inode is its lowest pid. It costs 16 bytes an
// fd, plus a byte for the buckets and a bit for the marks, where a Go map
// costs about 50; a lookup is a bucket and a short binary search.
type ownerIndex struct {
	entries []ownerEntry
	// buckets[b] is the first entry whose inode falls into bucket b or a
	// later one; an inode's bucket is (inode-min)>>shift.
	buckets []int32
	min     uint64
	shift   uint8
	// listed marks, by entry, the sockets the tables listed (markRun).
	listed []uint64
}

// build sorts entries and indexes them; the index keeps the slice.
func (x *ownerIndex) build(entries []ownerEntry) {
	slices.SortFunc(entries, func(a, b ownerEntry) int {
		if c := cmp.Compare(a.inode, b.inode); c != 0 {
			return c
		}
		return cmp.Compare(a.owner.pid, b.owner.pid)
	})
	x.entries = entries
	n := len(entries)
	x.listed = slices.Grow(x.listed[:0], n/64+1)[:n/64+1]
	clear(x.listed)
	if n == 0 {
		x.buckets = x.buckets[:0]
		return
	}
	// About four entries a bucket: the inode range split in a power of two.
	x.min = entries[0].inode
	span := entries[n-1].inode - x.min
	want := max(n/4, 1)
	x.shift = 0
	if l := bits.Len64(span); l > bits.Len(uint(want)) {
		x.shift = uint8(l - bits.Len(uint(want)))
	}
	nb := int(span>>x.shift) + 1
	x.buckets = slices.Grow(x.buckets[:0], nb+1)[:nb+1]
	e := 0
	for b := range nb + 1 {
		for e < n && int((entries[e].inode-x.min)>>x.shift) < b {
			e++
		}
		x.buckets[b] = int32(e)
	}
}

// find returns the position of inode's first entry.
func (x *ownerIndex) find(inode uint64) (int, bool) {
	if len(x.entries) == 0 || inode < x.min {
		return 0, false
	}
	b := (inode - x.min) >> x.shift
	if b >= uint64(len(x.buckets)-1) {
		return 0, false
	}
	lo, hi := int(x.buckets[b]), int(x.buckets[b+1])
	i, ok := slices.BinarySearchFunc(x.entries[lo:hi], inode, func(e ownerEntry, t uint64) int { return cmp.Compare(e.inode, t) })
	return lo + i, ok
}

// markRun marks as listed the entries of the inode at position i: every
// process that holds the socket.
func (x *ownerIndex) markRun(i int) {
	ino := x.entries[i].inode
	for ; i < len(x.entries) && x.entries[i].inode == ino; i++ {
		x.listed[i/64] |= 1 << (i % 64)
	}
}

// isListed tells whether the tables listed inode (a marked entry).
func (x *ownerIndex) isListed(inode uint64) bool {
	i, ok := x.find(inode)
	return ok && x.listed[i/64]&(1<<(i%64)) != 0
}
