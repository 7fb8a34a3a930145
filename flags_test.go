package main

import (
	"testing"

	"github.com/alecthomas/kingpin/v2"
)

// TestNameBadFlagNamesOthersFlags: a numeric flag declared with kingpin's
// own values (exporter-toolkit's, a collector's) still gets an error
// naming it and the bad value.
func TestNameBadFlagNamesOthersFlags(t *testing.T) {
	t.Parallel()
	app := kingpin.New("x", "")
	app.Flag("collector.other.size", "").Default("3").Int()
	app.Flag("collector.other.every", "").Default("1s").Duration()
	app.Flag("name", "").String()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--name=a", "--collector.other.size=abc"}, `--collector.other.size="abc": not a number`},
		{[]string{"--collector.other.every=soon"}, `--collector.other.every="soon": time: invalid duration "soon"`},
	} {
		_, err := app.Parse(c.args)
		if err == nil {
			t.Fatalf("%v parsed", c.args)
		}
		if got := nameBadFlag(app, c.args, err).Error(); got != c.want {
			t.Errorf("%v: %q, want %q", c.args, got, c.want)
		}
	}
}
