package collector

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Pool is one declared connection pool: the outbound sockets that match all
// of its given fields, and the most it may hold.
type Pool struct {
	Name string
	// Process matches the owning process name; nil matches any socket,
	// including those whose owner is unknown.
	Process *regexp.Regexp
	// RemoteAddress matches the remote address (IPv4-mapped addresses as
	// IPv4); invalid (zero) matches any.
	RemoteAddress netip.Prefix
	// RemotePort matches the remote port; 0 matches any.
	RemotePort uint16
	Max        int

	// The fields as written, for tcpstate_pool_info.
	processText, addressText string
}

// Matches reports whether an outbound socket, held by the process named
// owner (known or not), belongs to the pool.
func (p *Pool) Matches(remote netip.AddrPort, owner string, ownerKnown bool) bool {
	if !p.matchesRemote(remote) {
		return false
	}
	if p.Process != nil && (!ownerKnown || !p.Process.MatchString(owner)) {
		return false
	}
	return true
}

// matchesRemote tells whether remote matches the pool's address and port.
func (p *Pool) matchesRemote(remote netip.AddrPort) bool {
	if p.RemotePort != 0 && remote.Port() != p.RemotePort {
		return false
	}
	return !p.RemoteAddress.IsValid() || p.RemoteAddress.Contains(remote.Addr().Unmap())
}

// Config is the content of --config.file.
type Config struct {
	Pools []*Pool
}

// NeedsOwners reports whether matching the pools needs the process view.
func (c *Config) NeedsOwners() bool {
	for _, p := range c.Pools {
		if p.Process != nil {
			return true
		}
	}
	return false
}

// LoadConfig reads and validates a config file. Its errors name the file, the
// line, the pool and the field.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := ParseConfig(data)
	var list ConfigErrors
	if errors.As(err, &list) {
		named := make(ConfigErrors, len(list))
		for i, e := range list {
			named[i] = fmt.Errorf("%s:%w", path, e)
		}
		return nil, named
	}
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	return cfg, nil
}

// ConfigErrors lists every problem of a config document, so that one run
// reports every bad pool rather than the first. Each starts with its line
// number (with the file's name, from LoadConfig).
type ConfigErrors []error

func (e ConfigErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e ConfigErrors) Unwrap() []error { return e }

// ParseConfig parses a config document. Errors start with the line number;
// problems of the document's structure stop it at once, problems of pools
// are gathered, every pool checked, and returned together as ConfigErrors.
func ParseConfig(data []byte) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf(" %w", err)
	}
	cfg := &Config{}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return cfg, nil // an empty file declares no pools
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%d: the config must be a mapping with a \"pools\" key", root.Line)
	}
	var errs ConfigErrors
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		if key.Value != "pools" {
			errs = append(errs, fmt.Errorf("%d: unknown key %q (the only top-level key is \"pools\")", key.Line, key.Value))
			continue
		}
		if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
			continue
		}
		if val.Kind != yaml.SequenceNode {
			errs = append(errs, fmt.Errorf("%d: \"pools\" must be a list", val.Line))
			continue
		}
		seen := map[string]int{}
		for n, item := range val.Content {
			p, err := parsePool(item, n)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if first, dup := seen[p.Name]; dup {
				errs = append(errs, fmt.Errorf("%d: pool %q: name: duplicate of the pool on line %d", item.Line, p.Name, first))
				continue
			}
			seen[p.Name] = item.Line
			cfg.Pools = append(cfg.Pools, p)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

func parsePool(node *yaml.Node, index int) (*Pool, error) {
	label := fmt.Sprintf("pool #%d", index+1)
	if node.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%d: %s: must be a mapping of name, process, remote_address, remote_port, max", node.Line, label)
	}
	fieldsAt := map[string]*yaml.Node{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k := node.Content[i]
		fieldsAt[k.Value] = node.Content[i+1]
		if k.Value == "name" {
			label = fmt.Sprintf("pool %q", node.Content[i+1].Value)
		}
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k := node.Content[i]
		switch k.Value {
		case "name", "process", "remote_address", "remote_port", "max":
		default:
			return nil, fmt.Errorf("%d: %s: unknown field %q (known: name, process, remote_address, remote_port, max)", k.Line, label, k.Value)
		}
	}
	fail := func(n *yaml.Node, field, format string, args ...any) error {
		return fmt.Errorf("%d: %s: %s %q: %s", n.Line, label, field, n.Value, fmt.Sprintf(format, args...))
	}
	scalar := func(field string) (*yaml.Node, error) {
		n := fieldsAt[field]
		if n == nil || n.Tag == "!!null" {
			return nil, nil
		}
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%d: %s: %s: must be a single value", n.Line, label, field)
		}
		return n, nil
	}

	p := &Pool{}
	n, err := scalar("name")
	if err != nil {
		return nil, err
	}
	if n == nil || n.Value == "" {
		return nil, fmt.Errorf("%d: %s: name: missing (every pool needs a unique name)", node.Line, label)
	}
	p.Name = n.Value

	if n, err = scalar("process"); err != nil {
		return nil, err
	} else if n != nil {
		re, err := regexp.Compile(n.Value)
		if err != nil {
			var se *syntax.Error
			msg := err.Error()
			if errors.As(err, &se) {
				msg = fmt.Sprintf("%s in %q", se.Code, se.Expr)
			}
			return nil, fail(n, "process", "invalid regexp: %s", msg)
		}
		p.Process, p.processText = re, n.Value
	}

	if n, err = scalar("remote_address"); err != nil {
		return nil, err
	} else if n != nil {
		if pfx, err := netip.ParsePrefix(n.Value); err == nil {
			if pfx != pfx.Masked() {
				return nil, fail(n, "remote_address", "host bits set in CIDR (did you mean %s?)", pfx.Masked())
			}
			p.RemoteAddress = pfx
		} else if addr, aerr := netip.ParseAddr(n.Value); aerr == nil {
			addr = addr.Unmap()
			p.RemoteAddress = netip.PrefixFrom(addr, addr.BitLen())
		} else {
			return nil, fail(n, "remote_address", "not an IP address or CIDR")
		}
		if p.RemoteAddress.Addr().Is4In6() {
			return nil, fail(n, "remote_address", "write IPv4-mapped networks as IPv4")
		}
		p.addressText = n.Value
	}

	if n, err = scalar("remote_port"); err != nil {
		return nil, err
	} else if n != nil {
		port, err := strconv.ParseUint(n.Value, 10, 16)
		if err != nil || port == 0 {
			return nil, fail(n, "remote_port", "must be a port number from 1 to 65535")
		}
		p.RemotePort = uint16(port)
	}

	if n, err = scalar("max"); err != nil {
		return nil, err
	} else if n == nil {
		return nil, fmt.Errorf("%d: %s: max: missing (the pool's maximum number of connections, > 0)", node.Line, label)
	}
	maxConns, err := strconv.Atoi(n.Value)
	if err != nil || maxConns <= 0 {
		return nil, fail(n, "max", "must be a whole number greater than 0")
	}
	p.Max = maxConns
	return p, nil
}
