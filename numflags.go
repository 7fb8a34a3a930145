package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// kingpin's own numeric flags take "2.5" for 2 and report "abc" as
// `strconv.ParseFloat: parsing "abc": invalid syntax`, naming neither the
// flag nor what it wants. These name both, and refuse numbers out of range
// as the command line is parsed.

// wholeValue is an integer flag from lo to hi.
type wholeValue struct {
	name   string
	p      *int
	lo, hi int
	// rangeText says what the flag takes, for the error ("0 (all) or more").
	rangeText string
}

// intFlag makes f an integer flag from lo to hi, stored in p.
func intFlag(f *kingpin.FlagClause, p *int, lo, hi int, rangeText string) {
	f.SetValue(&wholeValue{name: f.Model().Name, p: p, lo: lo, hi: hi, rangeText: rangeText})
}

func (v *wholeValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("--%s=%q: not a whole number; it takes %s", v.name, s, v.rangeText)
	}
	if n < v.lo || n > v.hi {
		return fmt.Errorf("--%s=%d: out of range; it takes %s", v.name, n, v.rangeText)
	}
	*v.p = n
	return nil
}

func (v *wholeValue) String() string { return strconv.Itoa(*v.p) }

// durationValue is a duration flag of at least lo, or exactly 0 when zero
// is allowed (it turns something off).
type durationValue struct {
	name      string
	p         *time.Duration
	lo        time.Duration
	zeroOK    bool
	rangeText string
}

// durationFlag makes f a duration flag of at least lo (or 0 if zeroOK),
// stored in p.
func durationFlag(f *kingpin.FlagClause, p *time.Duration, lo time.Duration, zeroOK bool, rangeText string) {
	f.SetValue(&durationValue{name: f.Model().Name, p: p, lo: lo, zeroOK: zeroOK, rangeText: rangeText})
}

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("--%s=%q: not a duration (such as 500ms, 2s, 5m); it takes %s", v.name, s, v.rangeText)
	}
	if d < v.lo && !(d == 0 && v.zeroOK) {
		return fmt.Errorf("--%s=%s: out of range; it takes %s", v.name, s, v.rangeText)
	}
	*v.p = d
	return nil
}

func (v *durationValue) String() string { return v.p.String() }

const maxInt = math.MaxInt

// nameBadFlag names the flag whose value kingpin could not take, for the
// flags declared elsewhere (exporter-toolkit's, the collector registry's),
// whose values' errors do not: it sets the values of args' flags again, in
// order, until one fails as err did. Only called when parsing failed, so
// setting a value twice does no harm.
func nameBadFlag(app *kingpin.Application, args []string, err error) error {
	if strings.HasPrefix(err.Error(), "--") {
		return err // ours name it already
	}
	ctx, cerr := app.ParseContext(args)
	if cerr != nil || ctx == nil {
		return err
	}
	for _, el := range ctx.Elements {
		f, ok := el.Clause.(*kingpin.FlagClause)
		if !ok || el.Value == nil {
			continue
		}
		m := f.Model()
		if serr := m.Value.Set(*el.Value); serr != nil && serr.Error() == err.Error() {
			var ne *strconv.NumError
			if errors.As(serr, &ne) {
				return fmt.Errorf("--%s=%q: not a number", m.Name, *el.Value)
			}
			return fmt.Errorf("--%s=%q: %w", m.Name, *el.Value, serr)
		}
	}
	return err
}
