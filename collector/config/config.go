package config

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"regexp/syntax"
	"slices"
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
	ProcessText, AddressText string
}

// Matches reports whether an outbound socket, held by the process named
// owner (known or not), belongs to the pool.
func (p *Pool) Matches(remote netip.AddrPort, owner string, ownerKnown bool) bool {
	if !p.MatchesRemote(remote) {
		return false
	}
	if p.Process != nil && (!ownerKnown || !p.Process.MatchString(owner)) {
		return false
	}
	return true
}

// MatchesRemote tells whether remote matches the pool's address and port.
func (p *Pool) MatchesRemote(remote netip.AddrPort) bool {
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
		return nil, yamlSyntaxError(data, err)
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
	poolsLine := 0
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		if key.Value != "pools" {
			errs = append(errs, fmt.Errorf("%d: unknown key %q (the only top-level key is \"pools\")", key.Line, key.Value))
			continue
		}
		if poolsLine != 0 {
			errs = append(errs, fmt.Errorf("%d: \"pools\" written twice, on lines %d and %d (one list holds every pool)", key.Line, poolsLine, key.Line))
			continue
		}
		poolsLine = key.Line
		if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
			continue
		}
		if val.Kind != yaml.SequenceNode {
			errs = append(errs, fmt.Errorf("%d: \"pools\" must be a list", val.Line))
			continue
		}
		seen := map[string]int{}
		for n, item := range val.Content {
			// A pool with other problems still has its name checked, so
			// that one run reports every problem.
			p, perrs := parsePool(item, n)
			errs = append(errs, perrs...)
			if p.Name != "" {
				if first, dup := seen[p.Name]; dup {
					errs = append(errs, fmt.Errorf("%d: pool %q: name: duplicate of the pool on line %d", item.Line, p.Name, first))
					continue
				}
				seen[p.Name] = item.Line
			}
			if len(perrs) == 0 {
				cfg.Pools = append(cfg.Pools, p)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// parsePool reads one pool, reporting every problem it has, not only the
// first. With problems, the pool returned holds only its name (if it has a
// single one), for the check of duplicate names.
func parsePool(node *yaml.Node, index int) (*Pool, []error) {
	label := fmt.Sprintf("pool #%d", index+1)
	if node.Kind != yaml.MappingNode {
		return &Pool{}, []error{fmt.Errorf("%d: %s: must be a mapping of name, process, remote_address, remote_port, max", node.Line, label)}
	}
	fieldsAt := map[string]*yaml.Node{}
	keyLine := map[string]int{}
	twice := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k := node.Content[i]
		if _, dup := fieldsAt[k.Value]; dup {
			twice[k.Value] = true
			continue // the first stays, for the label
		}
		fieldsAt[k.Value], keyLine[k.Value] = node.Content[i+1], k.Line
		if k.Value == "name" {
			label = fmt.Sprintf("pool %q", node.Content[i+1].Value)
		}
	}
	var errs []error
	for i := 0; i+1 < len(node.Content); i += 2 {
		k := node.Content[i]
		switch k.Value {
		case "name", "process", "remote_address", "remote_port", "max":
		default:
			errs = append(errs, fmt.Errorf("%d: %s: unknown field %q (known: name, process, remote_address, remote_port, max)", k.Line, label, k.Value))
			continue
		}
		// A field written twice is refused rather than the last one
		// winning: which value was meant is the writer's call.
		if first := keyLine[k.Value]; twice[k.Value] && first != k.Line {
			errs = append(errs, fmt.Errorf("%d: %s: %s written twice, on lines %d and %d", k.Line, label, k.Value, first, k.Line))
		}
	}
	fail := func(n *yaml.Node, field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%d: %s: %s %q: %s", n.Line, label, field, n.Value, fmt.Sprintf(format, args...)))
	}
	// scalar returns a field's value node, nil when absent or null (or not
	// a single value, which it reports).
	scalar := func(field string) *yaml.Node {
		n := fieldsAt[field]
		if n == nil || n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.ScalarNode {
			errs = append(errs, fmt.Errorf("%d: %s: %s: must be a single value", n.Line, label, field))
			return nil
		}
		return n
	}

	p := &Pool{}
	if n := scalar("name"); n == nil || n.Value == "" {
		if fieldsAt["name"] == nil || fieldsAt["name"].Kind == yaml.ScalarNode {
			errs = append(errs, fmt.Errorf("%d: %s: name: missing (every pool needs a unique name)", node.Line, label))
		}
	} else {
		p.Name = n.Value
	}

	if n := scalar("process"); n != nil {
		re, err := regexp.Compile(n.Value)
		if err != nil {
			var se *syntax.Error
			msg := err.Error()
			if errors.As(err, &se) {
				msg = fmt.Sprintf("%s in %q", se.Code, se.Expr)
			}
			fail(n, "process", "invalid regexp: %s", msg)
		} else {
			p.Process, p.ProcessText = re, n.Value
		}
	}

	if n := scalar("remote_address"); n != nil {
		var prefix netip.Prefix
		if pfx, err := netip.ParsePrefix(n.Value); err == nil {
			if pfx != pfx.Masked() {
				fail(n, "remote_address", "host bits set in CIDR (did you mean %s?)", pfx.Masked())
			}
			prefix = pfx
		} else if addr, aerr := netip.ParseAddr(n.Value); aerr == nil {
			addr = addr.Unmap()
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		} else {
			fail(n, "remote_address", "not an IP address or CIDR")
		}
		if prefix.Addr().Is4In6() {
			fail(n, "remote_address", "write IPv4-mapped networks as IPv4")
		}
		p.RemoteAddress, p.AddressText = prefix, n.Value
	}

	if n := scalar("remote_port"); n != nil {
		port, err := strconv.ParseUint(n.Value, 10, 16)
		if err != nil || port == 0 {
			fail(n, "remote_port", "must be a port number from 1 to 65535")
		}
		p.RemotePort = uint16(port)
	}

	if n := scalar("max"); n == nil {
		if fieldsAt["max"] == nil || fieldsAt["max"].Kind == yaml.ScalarNode {
			errs = append(errs, fmt.Errorf("%d: %s: max: missing (the pool's maximum number of connections, > 0)", node.Line, label))
		}
	} else if maxConns, err := strconv.Atoi(n.Value); err != nil || maxConns <= 0 {
		fail(n, "max", "must be a whole number greater than 0")
	} else {
		p.Max = maxConns
	}
	if len(errs) > 0 {
		// In the order of the file's lines.
		slices.SortStableFunc(errs, func(a, b error) int { return cmp.Compare(lineOf(a), lineOf(b)) })
		if twice["name"] {
			return &Pool{}, errs
		}
		return &Pool{Name: p.Name}, errs
	}
	return p, nil
}

// lineOf reads the line number a pool's problem starts with.
func lineOf(err error) int {
	n, _ := strconv.Atoi(strings.SplitN(err.Error(), ":", 2)[0])
	return n
}

// yamlLine matches the position the YAML parser puts in its messages.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlSyntaxError starts a syntax error with the line that has the
// problem. The parser names the line where the enclosing block began (for
// a line indented too little or too much in a list of pools, the line of
// "pools:" or of the first pool): the problem is on the first line whose
// addition to the document gives the same error. The lines before it form
// a document that parses, or fails otherwise.
func yamlSyntaxError(data []byte, err error) error {
	msg := yamlLine.ReplaceAllString(err.Error(), "yaml: ")
	lines := strings.SplitAfter(string(data), "\n")
	line := 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	sameError := func(n int) bool {
		var doc yaml.Node
		perr := yaml.Unmarshal([]byte(strings.Join(lines[:n], "")), &doc)
		return perr != nil && yamlLine.ReplaceAllString(perr.Error(), "yaml: ") == msg
	}
	// The parser stops at the first problem, so every longer prefix fails
	// the same way: a binary search finds the first, checked on both sides.
	if len(lines) > 0 {
		lo, hi := 1, len(lines)
		for lo < hi {
			mid := (lo + hi) / 2
			if sameError(mid) {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		if sameError(lo) && (lo == 1 || !sameError(lo-1)) {
			line = lo
		}
	}
	hint := ""
	switch {
	case strings.Contains(msg, "did not find expected '-' indicator"),
		strings.Contains(msg, "did not find expected key"),
		strings.Contains(msg, "mapping values are not allowed in this context"):
		hint = " (is this line indented like the fields of its pool?)"
	case strings.Contains(msg, "found a tab character"):
		hint = " (indent with spaces)"
	}
	if line == 0 {
		return fmt.Errorf(" %s%s", msg, hint)
	}
	return fmt.Errorf("%d: %s%s", line, msg, hint)
}
