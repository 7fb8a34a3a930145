package collector

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/snapshot"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"

	"github.com/prometheus/client_golang/prometheus"
)

// TestEphemeralPortsPerDestination counts the ports of the range held
// toward each destination, from its busiest local address, and folds the
// rest into "other" holding the largest of them.
func TestEphemeralPortsPerDestination(t *testing.T) {
	t.Parallel()
	var e snapshot.EphemeralPorts
	if err := snapshot.ReadEphemeralPorts(testutil.WritePortFiles(t, "40000 40099\n", "40090-40099\n"), &e); err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	type sock struct {
		local, remote string
		state         tables.State
		dir           snapshot.Direction
		netns         uint16
		n             int
	}
	socks := []sock{
		// 10.0.0.7:5432 from two local addresses: 5 and 3 ports; 5 counts.
		{"10.0.0.1:40000", "10.0.0.7:5432", tables.StateTimeWait, snapshot.Outbound, 0, 4},
		{"10.0.0.1:40010", "10.0.0.7:5432", tables.StateEstablished, snapshot.Outbound, 0, 1},
		{"10.0.0.2:40020", "10.0.0.7:5432", tables.StateTimeWait, snapshot.Outbound, 0, 3},
		// IPv4-mapped in the IPv6 table: the same destination as IPv4.
		{"[::ffff:10.0.0.1]:40030", "[::ffff:10.0.0.8]:443", tables.StateSynSent, snapshot.Outbound, 0, 2},
		{"[2001:db8::1]:40040", "[2001:db8::9]:443", tables.StateCloseWait, snapshot.Outbound, 0, 2},
		{"10.0.0.1:40050", "10.0.0.9:80", tables.StateFinWait2, snapshot.Outbound, 0, 1},
		{"10.0.0.1:40060", "10.0.0.10:80", tables.StateTimeWait, snapshot.Outbound, 0, 1},
		// Not counted: reserved, outside the range, inbound, another
		// namespace, a listener.
		{"10.0.0.1:40090", "10.0.0.7:5432", tables.StateEstablished, snapshot.Outbound, 0, 1},
		{"10.0.0.1:1023", "10.0.0.7:5432", tables.StateEstablished, snapshot.Outbound, 0, 1},
		{"10.0.0.1:40070", "10.0.0.50:41000", tables.StateEstablished, snapshot.Inbound, 0, 1},
		{"10.0.0.1:40080", "10.0.0.7:5432", tables.StateEstablished, snapshot.Outbound, 1, 1},
		{"0.0.0.0:40085", "0.0.0.0:0", tables.StateListen, snapshot.Listening, 0, 1},
	}
	run := func(maxSeries int) []string {
		c := newEphemeralCollector(Options{MaxSeries: maxSeries})
		s := &snapshot.Snapshot{Ephemeral: &e}
		tl := c.NewTally(s)
		for _, k := range socks {
			for i := range k.n {
				l := ap(k.local)
				sk := tables.Socket{Local: netip.AddrPortFrom(l.Addr(), l.Port()+uint16(i)), Remote: ap(k.remote), State: k.state, NetNS: k.netns}
				tl.Add(&sk, &snapshot.SockInfo{Dir: k.dir})
			}
		}
		return render(t, func(ch chan<- prometheus.Metric) {
			if err := tl.Emit(s, ch); err != nil {
				t.Fatal(err)
			}
		})
	}
	all := []string{
		" 90",
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
		" 90",
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
	var e snapshot.EphemeralPorts
	err := snapshot.ReadEphemeralPorts(t.TempDir(), &e)
	c := newEphemeralCollector(Options{MaxSeries: 10})
	s := &snapshot.Snapshot{EphemeralErr: err}
	tl := c.NewTally(s)
	tl.Add(&tables.Socket{Local: netip.MustParseAddrPort("10.0.0.1:40000"), Remote: netip.MustParseAddrPort("10.0.0.7:80"), State: tables.StateEstablished}, &snapshot.SockInfo{})
	var got error
	out := render(t, func(ch chan<- prometheus.Metric) { got = tl.Emit(s, ch) })
	if got == nil || len(out) != 0 {
		t.Errorf("emit sent %q, error %v; want nothing and an error", out, got)
	}
}

// TestEphemeralPortsFloorAndSketch: destinations under 1% of the usable
// ports are not reported; one that appears between two readings is counted
// exactly from the reading after (its sketch counter was cold), and stays.
func TestEphemeralPortsFloorAndSketch(t *testing.T) {
	t.Parallel()
	var e snapshot.EphemeralPorts
	if err := snapshot.ReadEphemeralPorts(testutil.WritePortFiles(t, "40000 44999\n", "\n"), &e); err != nil {
		t.Fatal(err)
	}
	if f := ephemeralFloor(e.Usable); f != 50 {
		t.Fatalf("floor %d for 5000 usable ports, want 50", f)
	}
	c := newEphemeralCollector(Options{MaxSeries: 100})
	reading := func(big int) []string {
		s := &snapshot.Snapshot{Ephemeral: &e}
		tl := c.NewTally(s)
		add := func(remote string, n, from int) {
			for i := range n {
				sk := tables.Socket{Local: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(from+i)), Remote: netip.MustParseAddrPort(remote), State: tables.StateTimeWait}
				tl.Add(&sk, &snapshot.SockInfo{Dir: snapshot.Outbound})
			}
		}
		add("10.0.0.7:5432", 60, 40000) // above the floor
		add("10.0.0.8:443", 49, 41000)  // below it
		add("10.0.0.9:80", big, 42000)  // appears in the second reading
		return render(t, func(ch chan<- prometheus.Metric) {
			if err := tl.Emit(s, ch); err != nil {
				t.Fatal(err)
			}
		})
	}
	first := []string{" 5000", "metric=tcpstate_ephemeral_ports_used 0", "remote_address=10.0.0.7,remote_port=5432 60"}
	if got := reading(0); !slices.Equal(got, first) {
		t.Errorf("first reading: got %q, want %q", got, first)
	}
	if got := reading(300); !slices.Equal(got, first) {
		t.Errorf("second reading (10.0.0.9:80 new, its counter cold): got %q, want %q", got, first)
	}
	third := []string{" 5000", "metric=tcpstate_ephemeral_ports_used 0", "remote_address=10.0.0.7,remote_port=5432 60", "remote_address=10.0.0.9,remote_port=80 300"}
	for i := range 2 {
		if got := reading(300); !slices.Equal(got, third) {
			t.Errorf("reading %d: got %q, want %q", 3+i, got, third)
		}
	}
}
