package main

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/alecthomas/kingpin/v2"
)

// Every value on the command line is checked before anything starts, and a
// bad one stops the program with exit 2 and an error naming the flag: the
// HTTP mux panics on a bad pattern, and an empty string where a path, an
// address or a filter is expected would otherwise quietly mean something
// else (the working directory, every interface, no filter).

// textValue is a string flag whose value check names the flag.
type textValue struct {
	name  string
	p     *string
	check func(string) error
}

// textFlag makes f a string flag stored in p; check (if not nil) refuses
// bad values as the command line is parsed.
func textFlag(f *kingpin.FlagClause, p *string, check func(string) error) {
	m := f.Model()
	if len(m.Default) == 1 {
		// --help quotes a string's default; kingpin does so only for its own.
		f.PlaceHolder(strconv.Quote(m.Default[0]))
	}
	f.SetValue(&textValue{name: m.Name, p: p, check: check})
}

func (v *textValue) Set(s string) error {
	if v.check != nil {
		if err := v.check(s); err != nil {
			return fmt.Errorf("--%s=%q: %w", v.name, s, err)
		}
	}
	*v.p = s
	return nil
}

func (v *textValue) String() string { return *v.p }

// notEmpty refuses the empty string: for a filter it would quietly mean no
// filter, for a path the working directory.
func notEmpty(what string) func(string) error {
	return func(s string) error {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("empty; it takes %s", what)
		}
		return nil
	}
}

// telemetryPathChars are the characters a telemetry path may hold: no
// spaces (the mux reads "GET /x" as a method), braces (wildcards), percent
// escapes or anything a scrape config would need to quote.
var telemetryPathChars = regexp.MustCompile(`^[A-Za-z0-9._~/-]+$`)

// checkTelemetryPath refuses what the HTTP mux cannot take (it panics) and
// the paths the exporter serves itself.
func checkTelemetryPath(p string) error {
	const such = "a path such as /metrics"
	switch {
	case p == "":
		return fmt.Errorf("empty; it takes %s", such)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("does not start with /; it takes %s", such)
	case !telemetryPathChars.MatchString(p):
		return fmt.Errorf("only letters, digits and - . _ ~ / may appear in it; it takes %s", such)
	case p == "/":
		return fmt.Errorf("/ is the landing page; it takes %s", such)
	case strings.HasPrefix(p, "/-/"):
		return fmt.Errorf("/-/ holds the exporter's own endpoints (/-/reload); it takes %s", such)
	case p == "/debug/pprof" || strings.HasPrefix(p, "/debug/pprof/"):
		return fmt.Errorf("/debug/pprof/ holds Go's profiles; it takes %s", such)
	case path.Clean(p) != p && path.Clean(p)+"/" != p:
		return fmt.Errorf("not a clean path (did you mean %s?)", path.Clean(p))
	}
	return nil
}

// checkListenAddress takes what exporter-toolkit listens on: HOST:PORT with
// a numeric port (HOST empty for every interface), or vsock://CID:PORT.
func checkListenAddress(addr string) error {
	const such = "HOST:PORT such as :9951 or 127.0.0.1:9951"
	hostPort := strings.TrimPrefix(addr, "vsock://")
	if strings.TrimSpace(hostPort) == "" {
		return fmt.Errorf("empty; it takes %s", such)
	}
	_, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return fmt.Errorf("not HOST:PORT (%v); it takes %s", err, such)
	}
	bits, most := 16, "65535"
	if hostPort != addr {
		bits, most = 32, "4294967295" // a vsock port
	}
	if _, err := strconv.ParseUint(port, 10, bits); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to %s; it takes %s", port, most, such)
	}
	return nil
}

// maxArgFileDepth bounds @file expansion: kingpin itself recurses without
// end into a file that names itself.
const maxArgFileDepth = 8

// expandArgFiles replaces each @FILE argument before "--" with the lines of
// FILE, as kingpin would, so that every check sees the arguments as
// written, nested files included.
func expandArgFiles(args []string, depth int) ([]string, error) {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...), nil
		}
		if !strings.HasPrefix(a, "@") {
			out = append(out, a)
			continue
		}
		if depth >= maxArgFileDepth {
			return nil, fmt.Errorf("%s: argument files nested more than %d deep (does one name itself?)", a, maxArgFileDepth)
		}
		lines, err := kingpin.ExpandArgsFromFile(a[1:])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a, err)
		}
		if lines, err = expandArgFiles(lines, depth+1); err != nil {
			return nil, err
		}
		out = append(out, lines...)
	}
	return out, nil
}

// checkNoNUL refuses a NUL byte in any argument (one can arrive through an
// @file): no path, address or regexp holds one, and the kernel would cut
// a path at it.
func checkNoNUL(args []string) error {
	for i, a := range args {
		if !strings.ContainsRune(a, 0) {
			continue
		}
		if name, value, ok := strings.Cut(a, "="); ok && strings.HasPrefix(name, "--") {
			return fmt.Errorf("%s=%q: contains a NUL byte", name, value)
		}
		if i > 0 && strings.HasPrefix(args[i-1], "--") {
			return fmt.Errorf("%s=%q: contains a NUL byte", args[i-1], a)
		}
		return fmt.Errorf("argument %q contains a NUL byte", a)
	}
	return nil
}

// negativeNumber is a value that kingpin would read as a short flag.
var negativeNumber = regexp.MustCompile(`^-[0-9.]`)

// joinNegativeValues writes `--limit -1` as `--limit=-1`, so that a
// negative number in the space form gets the same error as in the = form
// instead of "expected argument for flag". No short flag is a digit.
func joinNegativeValues(app *kingpin.Application, args []string) []string {
	valued := map[string]bool{}
	m := app.Model()
	for _, f := range m.Flags {
		valued[f.Name] = !f.IsBoolFlag()
	}
	for _, c := range m.Commands {
		for _, f := range c.Flags {
			valued[f.Name] = !f.IsBoolFlag()
		}
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if name, ok := strings.CutPrefix(a, "--"); ok && valued[name] && i+1 < len(args) && negativeNumber.MatchString(args[i+1]) {
			out = append(out, a+"="+args[i+1])
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

// switchGivenValue names a switch given a value (`--watch=yes`), which
// kingpin reports as "unexpected yes"; nil if err is not that.
func switchGivenValue(app *kingpin.Application, args []string, err error) error {
	unexpected, ok := strings.CutPrefix(err.Error(), "unexpected ")
	if !ok {
		return nil
	}
	m := app.Model()
	flags := m.Flags
	for _, c := range m.Commands {
		flags = append(flags, c.Flags...)
	}
	for _, a := range args {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok || value != unexpected || !strings.HasPrefix(a, "--") {
			continue
		}
		base := strings.TrimPrefix(name, "no-")
		for _, f := range flags {
			if f.Name == base && f.IsBoolFlag() {
				return fmt.Errorf("--%s=%q: a switch takes no value; write --%s or --no-%s", name, value, base, base)
			}
		}
	}
	return nil
}

// checkServeFlags checks the values of exporter-toolkit's flags, which
// take any string, before the exporter starts.
func checkServeFlags(o *options) error {
	if o.webFlags.WebSystemdSocket != nil && *o.webFlags.WebSystemdSocket {
		return nil // the listen addresses are not used
	}
	for _, addr := range *o.webFlags.WebListenAddresses {
		if err := checkListenAddress(addr); err != nil {
			return fmt.Errorf("--web.listen-address=%q: %w", addr, err)
		}
	}
	return nil
}
