package collector

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestEphemeralPortsPerDestination counts the ports of the range held
// toward each destination, from its busiest local address, and folds the
// rest into "other" holding the largest of them.
func TestEphemeralPortsPerDestination(t *testing.T) {
	t.Parallel()
	var e EphemeralPorts
	if err := ReadEphemeralPorts(writePortFiles(t, "40000 40999\n", "40500-40509\n"), &e); err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	type sock struct {
		local, remote string
		state         State
		dir           Direction
		netns         uint16
		n             int
	}
	socks := []sock{
		// 10.0.0.7:5432 from two local addresses: 5 and 3 ports; 5 counts.
		{"10.0.0.1:40000", "10.0.0.7:5432", StateTimeWait, Outbound, 0, 4},
		{"10.0.0.1:40100", "10.0.0.7:5432", StateEstablished, Outbound, 0, 1},
		{"10.0.0.2:40200", "10.0.0.7:5432", StateTimeWait, Outbound, 0, 3},
		// IPv4-mapped in the IPv6 table: the same destination as IPv4.
		{"[::ffff:10.0.0.1]:40300", "[::ffff:10.0.0.8]:443", StateSynSent, Outbound, 0, 2},
		{"[2001:db8::1]:40400", "[2001:db8::9]:443", StateCloseWait, Outbound, 0, 2},
		{"10.0.0.1:40600", "10.0.0.9:80", StateFinWait2, Outbound, 0, 1},
		{"10.0.0.1:40700", "10.0.0.10:80", StateTimeWait, Outbound, 0, 1},
		// Not counted: reserved, outside the range, inbound, another
		// namespace, a listener.
		{"10.0.0.1:40500", "10.0.0.7:5432", StateEstablished, Outbound, 0, 1},
		{"10.0.0.1:1023", "10.0.0.7:5432", StateEstablished, Outbound, 0, 1},
		{"10.0.0.1:40800", "10.0.0.50:41000", StateEstablished, Inbound, 0, 1},
		{"10.0.0.1:40900", "10.0.0.7:5432", StateEstablished, Outbound, 1, 1},
		{"0.0.0.0:40950", "0.0.0.0:0", StateListen, Listening, 0, 1},
	}
	run := func(maxSeries int) []string {
		c := newEphemeralCollector(Options{MaxSeries: maxSeries})
		s := &Snapshot{ephemeral: &e}
		tl := c.newTally(s)
		for _, k := range socks {
			for i := range k.n {
				l := ap(k.local)
				sk := Socket{Local: netip.AddrPortFrom(l.Addr(), l.Port()+uint16(i)), Remote: ap(k.remote), State: k.state, NetNS: k.netns}
				tl.add(&sk, &sockInfo{dir: k.dir})
			}
		}
		return render(t, func(ch chan<- prometheus.Metric) {
			if err := tl.emit(s, ch); err != nil {
				t.Fatal(err)
			}
		})
	}
	all := []string{
		" 990",
		"metric=tcpstate_ephemeral_ports_used 0",
		"remote_address=10.0.0.10,remote_port=80 1",
		"remote_address=10.0.0.7,remote_port=5432 5",
		"remote_address=10.0.0.8,remote_port=443 2",
		"remote_address=10.0.0.9,remote_port=80 1",
		"remote_address=2001:db8::9,remote_port=443 2",
	}
	if got := run(1000); !slices.Equal(got, all) {
		t.Errorf("got\n%q\nwant\n%q", got, all)
	}
	folded := []string{
		" 990",
		"metric=tcpstate_ephemeral_ports_used 3",
		"remote_address=10.0.0.7,remote_port=5432 5",
		"remote_address=10.0.0.8,remote_port=443 2",
		"remote_address=other,remote_port=other 2",
	}
	if got := run(2); !slices.Equal(got, folded) {
		t.Errorf("max-series 2: got\n%q\nwant\n%q", got, folded)
	}
}

// TestEphemeralPortsUnknownRange: without the sysctl files the families are
// missing and the collector fails, naming the file.
func TestEphemeralPortsUnknownRange(t *testing.T) {
	t.Parallel()
	var e EphemeralPorts
	err := ReadEphemeralPorts(t.TempDir(), &e)
	c := newEphemeralCollector(Options{MaxSeries: 10})
	s := &Snapshot{ephemeralErr: err}
	tl := c.newTally(s)
	tl.add(&Socket{Local: netip.MustParseAddrPort("10.0.0.1:40000"), Remote: netip.MustParseAddrPort("10.0.0.7:80"), State: StateEstablished}, &sockInfo{})
	var got error
	out := render(t, func(ch chan<- prometheus.Metric) { got = tl.emit(s, ch) })
	if got == nil || len(out) != 0 {
		t.Errorf("emit sent %q, error %v; want nothing and an error", out, got)
	}
}
