package collector

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// ephemeralCollector reports how many local ports of the ephemeral range
// each destination holds. connect() needs a local port whose 4-tuple toward
// the destination is free: once every usable port of the range is held
// toward one remote address and port from one local address (in TIME_WAIT,
// mostly, with tcp_tw_reuse off), connect() fails with EADDRNOTAVAIL,
// "Cannot assign requested address". Other destinations are not affected.
type ephemeralCollector struct {
	usable, used, truncated *prometheus.Desc
	maxSeries               int
}

func newEphemeralCollector(o Options) familyCollector {
	return &ephemeralCollector{
		usable: prometheus.NewDesc(namespace+"_ephemeral_ports_usable",
			"Local ports connect() can pick toward any one destination: net.ipv4.ip_local_port_range minus net.ipv4.ip_local_reserved_ports, in the exporter's network namespace.", nil, nil),
		used: prometheus.NewDesc(namespace+"_ephemeral_ports_used",
			"Local ports of the ephemeral range held by outbound TCP sockets in any state toward a remote address and port, from the local address that holds most (the exporter's network namespace only).", []string{"remote_address", "remote_port"}, nil),
		truncated: truncatedDesc,
		maxSeries: o.MaxSeries,
	}
}

func (c *ephemeralCollector) newTally(s *Snapshot) tally {
	t := &ephemeralTally{c: c, ports: s.ephemeral, v4: map[uint64]uint32{}, wide: map[ephemeralKey]uint32{}}
	if s.ephemeral != nil {
		t.usable = s.ephemeral.Usable
	}
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
	ports  *EphemeralPorts // the reading's; nil: not known
	usable int
	v4     map[uint64]uint32
	wide   map[ephemeralKey]uint32

	locals    []netip.Addr // by index in v4's keys
	lastLocal netip.Addr
	lastIdx   uint64
}

// maxLocals bounds the local addresses given an index; sockets from
// others are counted under ephemeralKey.
const maxLocals = 1 << 16

func (t *ephemeralTally) add(sk *Socket, in *sockInfo) {
	if in.dir != Outbound || t.ports == nil || sk.NetNS != 0 || !sk.State.Valid() || sk.State == StateListen ||
		!t.ports.Contains(sk.Local.Port()) {
		return
	}
	remote, local := sk.Remote.Addr().Unmap(), sk.Local.Addr().Unmap()
	if remote.Is4() && local.Is4() {
		if idx, ok := t.localIndex(local); ok {
			a := remote.As4()
			t.v4[uint64(binary.BigEndian.Uint32(a[:]))<<32|uint64(sk.Remote.Port())<<16|idx]++
			return
		}
	}
	t.wide[ephemeralKey{netip.AddrPortFrom(remote, sk.Remote.Port()), local}]++
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

// emit sends the usable ports and, per destination, the ports its busiest
// local address holds: the destinations holding most first, the others
// folded into one series whose labels read "other" and whose value is the
// largest of them (a sum of ports of different destinations would measure
// nothing connect() is limited by).
func (t *ephemeralTally) emit(s *Snapshot, ch chan<- prometheus.Metric) error {
	if t.ports == nil {
		return s.ephemeralErr
	}
	c := t.c
	ch <- prometheus.MustNewConstMetric(c.usable, prometheus.GaugeValue, float64(t.usable))
	dest := make(map[netip.AddrPort]*float64, len(t.v4)+len(t.wide))
	note := func(d netip.AddrPort, n uint32) {
		if v := dest[d]; v == nil {
			f := float64(n)
			dest[d] = &f
		} else if float64(n) > *v {
			*v = float64(n)
		}
	}
	for k, n := range t.v4 {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(k>>32))
		note(netip.AddrPortFrom(netip.AddrFrom4(a), uint16(k>>16)), n)
	}
	for k, n := range t.wide {
		note(k.remote, n)
	}
	folded := emitFolded(dest, c.maxSeries,
		func(d netip.AddrPort) []string { return []string{d.Addr().String(), strconv.Itoa(int(d.Port()))} },
		func(v *float64) float64 { return *v },
		func(dst, src *float64) { *dst = max(*dst, *src) },
		func(labels []string, v *float64) {
			ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, *v, labels...)
		})
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.GaugeValue, float64(folded), namespace+"_ephemeral_ports_used")
	return s.TableErr
}
