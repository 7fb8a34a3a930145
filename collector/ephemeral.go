package collector

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"

	"github.com/prometheus/client_golang/prometheus"
)

// ephemeralCollector reports how many local ports of the ephemeral range
// each destination holds. connect() needs a local port whose 4-tuple toward
// the destination is free: once every usable port of the range is held
// toward one remote address and port from one local address (in TIME_WAIT,
// mostly, with tcp_tw_reuse off), connect() fails with EADDRNOTAVAIL,
// "Cannot assign requested address". Other destinations are not affected.
//
// Only destinations holding at least 1% of the usable ports are reported:
// those are the ones a range can run out for, and a client host talking to
// a destination per socket would otherwise spend a hash-map update per
// socket, and a series per destination, on counts of one. The counting is
// in two stages. Every socket of the range increments one of sketchSize
// counters, picked by hashing its destination and local address: a
// counter is at least the count of every destination hashed to it. Only
// the sockets whose counter reached half the floor in the previous
// reading ("hot") are counted exactly, per destination; the first reading
// counts every one. So a destination's count is exact whenever reported,
// and one that crosses the floor between two readings shows from the next
// on.
type ephemeralCollector struct {
	usable, used, truncated *prometheus.Desc
	maxSeries               int

	// The sketches of the last two readings (readings never overlap): one
	// being filled, the other telling which counters are hot.
	sketches [2][sketchSize]uint32
	cur      int
	primed   bool
	hot      [sketchSize / 64]uint64
}

// sketchSize counters of 4 bytes: 64 KiB, which stays in a core's cache
// while the tables stream.
const (
	sketchBits = 14
	sketchSize = 1 << sketchBits
)

func newEphemeralCollector(o Options) snapshot.View {
	return &ephemeralCollector{
		usable: prometheus.NewDesc(namespace+"_ephemeral_ports_usable",
			"Local ports connect() can pick toward any one destination: net.ipv4.ip_local_port_range minus net.ipv4.ip_local_reserved_ports, in the exporter's network namespace.", nil, nil),
		used: prometheus.NewDesc(namespace+"_ephemeral_ports_used",
			"Local ports of the ephemeral range held by outbound TCP sockets in any state toward a remote address and port, from the local address that holds most, for destinations holding at least 1% of the usable ports (the exporter's network namespace only).", []string{"remote_address", "remote_port"}, nil),
		truncated: truncatedDesc,
		maxSeries: o.MaxSeries,
	}
}

// ephemeralFloor is the fewest ports a destination holds to be reported:
// 1% of the usable ports, at least 1.
func ephemeralFloor(usable int) uint32 {
	return uint32(max(1, (usable+99)/100))
}

func (c *ephemeralCollector) NewTally(s *snapshot.Snapshot) snapshot.Tally {
	t := &ephemeralTally{c: c, ports: s.Ephemeral, v4: map[uint64]uint32{}, wide: map[ephemeralKey]uint32{}}
	if s.Ephemeral == nil {
		return t
	}
	t.usable = s.Ephemeral.Usable
	t.floor = ephemeralFloor(t.usable)
	prev := &c.sketches[c.cur]
	hotAt := max(1, t.floor/2)
	for i := range c.hot {
		var w uint64
		for b, n := range prev[i*64 : i*64+64] {
			if !c.primed || n >= hotAt {
				w |= 1 << b
			}
		}
		c.hot[i] = w
	}
	c.primed = true
	c.cur ^= 1
	t.sketch = &c.sketches[c.cur]
	clear(t.sketch[:])
	return t
}

// ephemeralKey is a destination seen from one local address.
type ephemeralKey struct {
	remote netip.AddrPort
	local  netip.Addr
}

// ephemeralTally counts sockets per destination and local address. Most
// are IPv4 from one of a few local addresses: those are counted under a
// 64-bit key (remote address, remote port, index of the local address),
// which hashes several times faster than the full addresses; the rest
// under ephemeralKey.
type ephemeralTally struct {
	c      *ephemeralCollector
	ports  *snapshot.EphemeralPorts // the reading's; nil: not known
	usable int
	floor  uint32
	sketch *[sketchSize]uint32
	v4     map[uint64]uint32
	wide   map[ephemeralKey]uint32

	locals    []netip.Addr // by index in v4's keys
	lastLocal netip.Addr
	lastIdx   uint64
}

// maxLocals bounds the local addresses given an index; sockets from
// others are counted under ephemeralKey.
const maxLocals = 1 << 16

func (t *ephemeralTally) Add(sk *tables.Socket, in *snapshot.SockInfo) {
	if in.Dir != snapshot.Outbound || t.ports == nil || sk.NetNS != 0 || !sk.State.Valid() || sk.State == tables.StateListen ||
		!t.ports.Contains(sk.Local.Port()) {
		return
	}
	remote, local := sk.Remote.Addr().Unmap(), sk.Local.Addr().Unmap()
	port := sk.Remote.Port()
	v4 := remote.Is4() && local.Is4()
	var bucket uint64
	if v4 {
		r, l := remote.As4(), local.As4()
		bucket = mix(uint64(binary.BigEndian.Uint32(r[:]))<<32|uint64(binary.BigEndian.Uint32(l[:])), uint64(port))
	} else {
		r, l := remote.As16(), local.As16()
		ne := binary.NativeEndian
		bucket = mix(ne.Uint64(r[:8])^ne.Uint64(l[8:])*0x2545f4914f6cdd1d, ne.Uint64(r[8:])^ne.Uint64(l[:8])<<1^uint64(port))
	}
	t.sketch[bucket]++
	if t.c.hot[bucket>>6]&(1<<(bucket&63)) == 0 {
		return
	}
	if v4 {
		if idx, ok := t.localIndex(local); ok {
			a := remote.As4()
			t.v4[uint64(binary.BigEndian.Uint32(a[:]))<<32|uint64(port)<<16|idx]++
			return
		}
	}
	t.wide[ephemeralKey{netip.AddrPortFrom(remote, port), local}]++
}

// mix hashes two words into a sketch counter's index.
func mix(a, b uint64) uint64 {
	h := (a ^ b*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
	return h >> (64 - sketchBits)
}

func (t *ephemeralTally) localIndex(a netip.Addr) (uint64, bool) {
	if a == t.lastLocal && len(t.locals) > 0 {
		return t.lastIdx, true
	}
	for i, l := range t.locals {
		if l == a {
			t.lastLocal, t.lastIdx = a, uint64(i)
			return t.lastIdx, true
		}
	}
	if len(t.locals) >= maxLocals {
		return 0, false
	}
	t.locals = append(t.locals, a)
	t.lastLocal, t.lastIdx = a, uint64(len(t.locals)-1)
	return t.lastIdx, true
}

// Emit sends the usable ports and, per destination, the ports its busiest
// local address holds: the maxSeries destinations holding most (ties by
// address), the others folded into one series whose labels read "other"
// and whose value is the largest of them (a sum of ports of different
// destinations would measure nothing connect() is limited by). A busy
// client host has a destination per socket or so: the top ones are picked
// with a bounded heap and only they get label strings.
func (t *ephemeralTally) Emit(s *snapshot.Snapshot, ch chan<- prometheus.Metric) error {
	if t.ports == nil {
		return s.EphemeralErr
	}
	c := t.c
	ch <- prometheus.MustNewConstMetric(c.usable, prometheus.GaugeValue, float64(t.usable))
	top := destHeap{max: c.maxSeries, floor: t.floor}
	if len(t.locals) <= 1 {
		// One local address: every key is a destination already.
		for k, n := range t.v4 {
			top.offer(destCount{n: n, v4: k >> 16})
		}
	} else {
		busiest := make(map[uint64]uint32, len(t.v4))
		for k, n := range t.v4 {
			busiest[k>>16] = max(busiest[k>>16], n)
		}
		for k, n := range busiest {
			top.offer(destCount{n: n, v4: k})
		}
	}
	if len(t.wide) > 0 {
		busiest := make(map[netip.AddrPort]uint32, len(t.wide))
		for k, n := range t.wide {
			busiest[k.remote] = max(busiest[k.remote], n)
		}
		for d, n := range busiest {
			top.offer(destCount{n: n, wide: d, isWide: true})
		}
	}
	slices.SortFunc(top.h, func(a, b destCount) int {
		if a.better(b) {
			return -1
		}
		return 1
	})
	for _, d := range top.h {
		ap := d.addrPort()
		ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(d.n), ap.Addr().String(), strconv.Itoa(int(ap.Port())))
	}
	if top.folded > 0 {
		ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(top.otherMax), otherLabel, otherLabel)
	}
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(top.folded), namespace+"_ephemeral_ports_used")
	return s.TableErr
}

// destCount is one destination's ports: an IPv4 one as address<<16|port,
// any other as wide.
type destCount struct {
	n      uint32
	isWide bool
	v4     uint64
	wide   netip.AddrPort
}

// better orders destinations: most ports first, then IPv4 before the
// others, then by address and port.
func (a destCount) better(b destCount) bool {
	switch {
	case a.n != b.n:
		return a.n > b.n
	case a.isWide != b.isWide:
		return !a.isWide
	case a.isWide:
		return a.wide.Compare(b.wide) < 0
	}
	return a.v4 < b.v4
}

func (a destCount) addrPort() netip.AddrPort {
	if a.isWide {
		return a.wide
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(a.v4>>16))
	return netip.AddrPortFrom(netip.AddrFrom4(b), uint16(a.v4))
}

// destHeap keeps the max best destinations offered, in a heap whose root
// is the worst of them, and counts the rest and their largest count.
type destHeap struct {
	max      int
	floor    uint32 // fewer ports: not offered at all
	h        []destCount
	folded   int
	otherMax uint32
}

func (h *destHeap) offer(d destCount) {
	if d.n < h.floor {
		return
	}
	if len(h.h) < h.max {
		h.h = append(h.h, d)
		h.up(len(h.h) - 1)
		return
	}
	h.folded++
	if !d.better(h.h[0]) {
		h.otherMax = max(h.otherMax, d.n)
		return
	}
	h.otherMax = max(h.otherMax, h.h[0].n)
	h.h[0] = d
	h.down(0)
}

// worse is the heap order: the root is the worst kept.
func (h *destHeap) worse(i, j int) bool { return h.h[j].better(h.h[i]) }

func (h *destHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.worse(i, p) {
			return
		}
		h.h[i], h.h[p] = h.h[p], h.h[i]
		i = p
	}
}

func (h *destHeap) down(i int) {
	for {
		l, w := 2*i+1, i
		if l < len(h.h) && h.worse(l, w) {
			w = l
		}
		if r := l + 1; r < len(h.h) && h.worse(r, w) {
			w = r
		}
		if w == i {
			return
		}
		h.h[i], h.h[w] = h.h[w], h.h[i]
		i = w
	}
}
