package tables

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// HostTCP is what the kernel says of the host's shared TCP limits: the
// memory every TCP socket of the host draws from and the orphans it
// tolerates, against their limits. Memory and orphans are host-wide in the
// kernel (one counter for every network namespace); the limits exist only
// in the host's namespace.
type HostTCP struct {
	// MemPages is net/sockstat's TCP "mem": pages charged to TCP sockets.
	MemPages uint64
	// Orphans is net/sockstat's TCP "orphan": sockets closed by their
	// process whose connection is not finished.
	Orphans uint64
	// MemLimit is net.ipv4.tcp_mem in pages: min, pressure, max.
	MemLimit [3]uint64
	// MaxOrphans is net.ipv4.tcp_max_orphans.
	MaxOrphans uint64
}

// ReadHostTCP reads net/sockstat, sys/net/ipv4/tcp_mem and
// sys/net/ipv4/tcp_max_orphans under procRoot. Each file is read even when
// another fails; the error names every file that could not be read.
func ReadHostTCP(procRoot string) (HostTCP, error) {
	var h HostTCP
	var problems []error
	path := filepath.Join(procRoot, "net", "sockstat")
	if data, err := os.ReadFile(path); err != nil {
		problems = append(problems, err)
	} else if err := ParseSockstat(data, path, &h); err != nil {
		problems = append(problems, err)
	}
	path = filepath.Join(procRoot, "sys", "net", "ipv4", "tcp_mem")
	if data, err := os.ReadFile(path); err != nil {
		problems = append(problems, err)
	} else {
		var f Fields
		f.Rest = data
		for i := range h.MemLimit {
			tok, ok := f.Next()
			if !ok {
				problems = append(problems, fmt.Errorf("%s:1: want three numbers (min pressure max) in %q", path, bytes.TrimSpace(data)))
				break
			}
			v, ok := ParseDec(tok)
			if !ok {
				problems = append(problems, fmt.Errorf("%s:1: %q is not a number of pages", path, tok))
				break
			}
			h.MemLimit[i] = v
		}
		if tok, ok := f.Next(); ok {
			problems = append(problems, fmt.Errorf("%s:1: unexpected %q after three numbers", path, tok))
		}
	}
	path = filepath.Join(procRoot, "sys", "net", "ipv4", "tcp_max_orphans")
	if data, err := os.ReadFile(path); err != nil {
		problems = append(problems, err)
	} else {
		tok := bytes.TrimSpace(data)
		v, ok := ParseDec(tok)
		if !ok {
			problems = append(problems, fmt.Errorf("%s:1: %q is not a number", path, tok))
		}
		h.MaxOrphans = v
	}
	return h, errors.Join(problems...)
}

// ParseSockstat reads the "TCP:" line of net/sockstat:
//
//	TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1
//
// into h's MemPages and Orphans. name is the file, for errors, which quote
// the raw token and give the line. A file without the TCP line, or a TCP
// line without "mem" or "orphan", is an error.
func ParseSockstat(data []byte, name string, h *HostTCP) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		var f Fields
		f.Rest = line
		if tok, _ := f.Next(); !bytes.Equal(tok, []byte("TCP:")) {
			continue
		}
		var haveMem, haveOrphan bool
		for {
			key, ok := f.Next()
			if !ok {
				break
			}
			val, ok := f.Next()
			if !ok {
				return fmt.Errorf("%s:%d: %q has no value in line %q", name, n, key, line)
			}
			v, ok := ParseDec(val)
			if !ok {
				return fmt.Errorf("%s:%d: %s %q is not a number in line %q", name, n, key, val, line)
			}
			switch string(key) {
			case "mem":
				h.MemPages, haveMem = v, true
			case "orphan":
				h.Orphans, haveOrphan = v, true
			}
		}
		if !haveMem || !haveOrphan {
			return fmt.Errorf("%s:%d: TCP line %q lacks \"mem\" or \"orphan\"", name, n, line)
		}
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return fmt.Errorf("%s: no \"TCP:\" line", name)
}
