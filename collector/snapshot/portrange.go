package snapshot

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// The sysctls that decide which local ports connect() picks from, read
// under --path.procfs. Both belong to the network namespace of the process
// that opens them: the exporter's own.
const (
	portRangeFile     = "sys/net/ipv4/ip_local_port_range"
	reservedPortsFile = "sys/net/ipv4/ip_local_reserved_ports"
)

// EphemeralPorts is the local port range connect() and bind(port 0) pick
// from: net.ipv4.ip_local_port_range minus net.ipv4.ip_local_reserved_ports.
type EphemeralPorts struct {
	Low, High uint16
	reserved  portSet
	// Usable counts the ports of the range that are not reserved.
	Usable int
}

// Contains tells whether port is one connect() may pick.
func (e *EphemeralPorts) Contains(port uint16) bool {
	return port >= e.Low && port <= e.High && !e.reserved.has(port)
}

// inRange tells whether port lies in ip_local_port_range, reserved or not.
func (e *EphemeralPorts) inRange(port uint16) bool {
	return port >= e.Low && port <= e.High
}

// ReadEphemeralPorts reads the port range and the reserved ports under
// procRoot into e. A missing ip_local_reserved_ports (kernels before 2.6.35)
// reserves nothing; a missing range is an error.
func ReadEphemeralPorts(procRoot string, e *EphemeralPorts) error {
	path := filepath.Join(procRoot, portRangeFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the ephemeral port range: %w", err)
	}
	if e.Low, e.High, err = parsePortRange(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	clear(e.reserved[:])
	path = filepath.Join(procRoot, reservedPortsFile)
	data, err = os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return fmt.Errorf("reading the reserved ports: %w", err)
	default:
		if err := parseReservedPorts(data, &e.reserved); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	e.Usable = 0
	for p := int(e.Low); p <= int(e.High); p++ {
		if !e.reserved.has(uint16(p)) {
			e.Usable++
		}
	}
	return nil
}

// parsePortRange reads "LOW<tab>HIGH\n".
func parsePortRange(data []byte) (low, high uint16, err error) {
	f := bytes.Fields(data)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("want two port numbers, got %q", bytes.TrimSpace(data))
	}
	l, err := parsePort(f[0])
	if err != nil {
		return 0, 0, err
	}
	h, err := parsePort(f[1])
	if err != nil {
		return 0, 0, err
	}
	if l > h || l == 0 {
		return 0, 0, fmt.Errorf("range %q is empty", bytes.TrimSpace(data))
	}
	return l, h, nil
}

// parseReservedPorts reads a comma-separated list of ports and LOW-HIGH
// ranges, as the kernel prints it ("8080,9000-9100"); empty is none.
func parseReservedPorts(data []byte, set *portSet) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil
	}
	for _, item := range bytes.Split(data, []byte(",")) {
		lo, hi, isRange := bytes.Cut(item, []byte("-"))
		l, err := parsePort(lo)
		if err != nil {
			return err
		}
		h := l
		if isRange {
			if h, err = parsePort(hi); err != nil {
				return err
			}
			if h < l {
				return fmt.Errorf("reserved range %q ends before it starts", item)
			}
		}
		for p := int(l); p <= int(h); p++ {
			set.add(uint16(p))
		}
	}
	return nil
}

func parsePort(b []byte) (uint16, error) {
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", b)
	}
	return uint16(v), nil
}
