package snapshot

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

func TestReadEphemeralPorts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, rangeText, reserved string
		low, high                 uint16
		usable                    int
		err                       string
	}{
		{name: "kernel default", rangeText: "32768\t60999\n", reserved: "\n", low: 32768, high: 60999, usable: 28232},
		{name: "reserved ports and ranges", rangeText: "50000\t50239\n", reserved: "50000-50019,50100,50200-50218,8080\n", low: 50000, high: 50239, usable: 200},
		{name: "no reserved file", rangeText: "1024 65535", reserved: "-", low: 1024, high: 65535, usable: 64512},
		{name: "missing range", rangeText: "", reserved: "\n", err: "reading the ephemeral port range"},
		{name: "one number", rangeText: "32768\n", reserved: "\n", err: `ip_local_port_range: want two port numbers, got "32768"`},
		{name: "not a port", rangeText: "32768 70000\n", reserved: "\n", err: `ip_local_port_range: bad port "70000"`},
		{name: "empty range", rangeText: "60000 50000\n", reserved: "\n", err: `range "60000 50000" is empty`},
		{name: "bad reserved", rangeText: "32768 60999\n", reserved: "80,9x\n", err: `ip_local_reserved_ports: bad port "9x"`},
		{name: "reversed reserved", rangeText: "32768 60999\n", reserved: "90-80\n", err: `reserved range "90-80" ends before it starts`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var e EphemeralPorts
			err := ReadEphemeralPorts(testutil.WritePortFiles(t, tc.rangeText, tc.reserved), &e)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Low != tc.low || e.High != tc.high || e.Usable != tc.usable {
				t.Errorf("got %d-%d usable %d, want %d-%d usable %d", e.Low, e.High, e.Usable, tc.low, tc.high, tc.usable)
			}
		})
	}
}

// TestClassifierPortRange: without a listener, a socket whose local port
// is outside the ephemeral range and whose remote port is inside it is
// inbound (a server's remnants); everything else keeps the listener rule.
func TestClassifierPortRange(t *testing.T) {
	t.Parallel()
	var e EphemeralPorts
	if err := ReadEphemeralPorts(testutil.WritePortFiles(t, "32768 60999\n", "40000\n"), &e); err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name          string
		local, remote string
		withRange     bool
		want          Direction
	}{
		{"server remnant, range known", "127.0.0.9:8099", "127.0.0.1:45000", true, Inbound},
		{"server remnant, range unknown", "127.0.0.9:8099", "127.0.0.1:45000", false, Outbound},
		{"client to a low port", "127.0.0.1:45000", "127.0.0.9:8099", true, Outbound},
		{"client to a port in the range", "127.0.0.1:45000", "127.0.0.9:50051", true, Outbound},
		{"both outside the range", "10.0.0.1:1022", "10.0.0.2:2049", true, Outbound},
		{"local port reserved (a service's)", "127.0.0.9:40000", "127.0.0.1:45000", true, Inbound},
		{"remote port reserved", "127.0.0.9:8099", "127.0.0.1:40000", true, Outbound},
	} {
		var c classifier
		c.reset()
		if tc.withRange {
			c.ephemeral = &e
		}
		sk := tables.Socket{Local: ap(tc.local), Remote: ap(tc.remote), State: tables.StateTimeWait, Family: tables.IPv4}
		if got := c.direction(&sk); got != tc.want {
			t.Errorf("%s: direction %d, want %d", tc.name, got, tc.want)
		}
	}
}
