package collector

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// restartingTables streams partial sockets and asks for the reading to be
// restarted once, as the netlink source falling back to procfs midway
// does; then it streams its fallback.
type restartingTables struct {
	partial   int
	restarted bool
	fallback  tables.TableSource
}

func (r *restartingTables) Stream(ctx context.Context, fn func(*tables.Socket)) error {
	if r.restarted {
		return r.fallback.Stream(ctx, fn)
	}
	r.restarted = true
	for i := range r.partial {
		sk := tables.SyntheticSocket(100 + i)
		fn(&sk)
	}
	return tables.ErrRestartReading
}

// TestRestartedReadingIsInvisible: through an exporter a reading restarted
// by its source is one scrape, with the fallback's numbers and none of the
// partial sockets.
func TestRestartedReadingIsInvisible(t *testing.T) {
	t.Parallel()
	o := fixtureOptions(t)
	o.Tables = &restartingTables{partial: 5, fallback: tables.NewProcfsTables(o.ProcRoot)}
	e, err := NewExporter(o, []string{"connections"})
	if err != nil {
		t.Fatal(err)
	}
	out := render(t, e.Collect)
	if !slices.Contains(out, "family=ipv4,state=close 1") || !slices.Contains(out, "family=ipv4,state=established 4") {
		t.Errorf("after a restarted reading, the fixture's counts without the partial sockets:\n%s", strings.Join(out, "\n"))
	}
}
