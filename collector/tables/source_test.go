package tables

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestNewTableSourceKinds(t *testing.T) {
	t.Parallel()
	fixture := "../../testdata/proc"
	for _, c := range []struct {
		kind, root string
		want       string
	}{
		{SourceProcfs, fixture, "*tables.ProcfsTables"},
		{SourceNetlink, fixture, "*tables.NetlinkTables"},
		// A fixture tree is no procfs mount: auto reads its text files.
		{SourceAuto, fixture, "*tables.ProcfsTables"},
	} {
		logs := &sourceLogs{}
		src, err := NewTableSource(c.kind, c.root, logs)
		if err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		if got := typeName(src); got != c.want {
			t.Errorf("%s on %s: got %s, want %s", c.kind, c.root, got, c.want)
		}
	}
	if _, err := NewTableSource("ebpf", fixture, nil); err == nil || !strings.Contains(err.Error(), "auto, netlink, procfs") {
		t.Errorf("unknown kind: got %v", err)
	}
}

func TestAutoSourcePrefersNetlinkOnProcfs(t *testing.T) {
	t.Parallel()
	if err := NewNetlinkTables().probe(context.Background()); err != nil {
		t.Skipf("netlink sock_diag unavailable here: %v", err)
	}
	logs := &sourceLogs{}
	src, err := NewTableSource(SourceAuto, "/proc", logs)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := src.(*fallbackTables)
	if !ok || typeName(f.primary) != "*tables.NetlinkTables" {
		t.Fatalf("auto on /proc: got %s", typeName(src))
	}
	if got := logs.all(); len(got) != 0 {
		t.Errorf("auto with working netlink logged %q", got)
	}
}

// failingTables streams partial sockets, then fails with err.
type failingTables struct {
	err     error
	partial int
	reads   atomic.Int32
}

func (f *failingTables) Stream(_ context.Context, fn func(*Socket)) error {
	f.reads.Add(1)
	for range f.partial {
		fn(&Socket{State: StateClose})
	}
	return f.err
}

func TestFallbackSwitchesOnceAndLogsOnce(t *testing.T) {
	t.Parallel()
	logs := &sourceLogs{}
	primary := &failingTables{err: errors.New("sock_diag AF_INET dump: operation not permitted")}
	f := &fallbackTables{primary: primary, fallback: NewProcfsTables("../../testdata/proc"), logger: logs}
	for range 3 {
		// Nothing was streamed before the failure: the same call goes on
		// with the fallback.
		socks, err := AppendSockets(context.Background(), f, nil)
		if err != nil || len(socks) != 23 {
			t.Fatalf("got %d sockets, err %v; want the fixture's 23 and no error", len(socks), err)
		}
	}
	if n := primary.reads.Load(); n != 1 {
		t.Errorf("the failing source was read %d times, want once", n)
	}
	if got := logs.all(); len(got) != 1 || !strings.Contains(got[0], "procfs from now on") {
		t.Errorf("logged %q, want one line", got)
	}
}

// TestFallbackMidwayRestartsTheReading: a source that fails after it
// streamed sockets makes the reader start over (the sockets were counted),
// and the next reading comes from the fallback alone.
func TestFallbackMidwayRestartsTheReading(t *testing.T) {
	t.Parallel()
	primary := &failingTables{err: errors.New("sock_diag AF_INET6 dump: no buffer space available"), partial: 5}
	f := &fallbackTables{primary: primary, fallback: NewProcfsTables("../../testdata/proc"), logger: &sourceLogs{}}
	if _, err := AppendSockets(context.Background(), f, nil); !errors.Is(err, ErrRestartReading) {
		t.Fatalf("got %v, want errRestartReading", err)
	}
	socks, err := AppendSockets(context.Background(), f, nil)
	if err != nil || len(socks) != 23 {
		t.Fatalf("after the switch: %d sockets, %v; want the fixture's 23", len(socks), err)
	}
}

func TestFallbackKeepsNetlinkOnDeadline(t *testing.T) {
	t.Parallel()
	logs := &sourceLogs{}
	primary := &failingTables{err: context.DeadlineExceeded}
	f := &fallbackTables{primary: primary, fallback: NewProcfsTables("../../testdata/proc"), logger: logs}
	for range 2 {
		if _, err := AppendSockets(context.Background(), f, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the deadline", err)
		}
	}
	if primary.reads.Load() != 2 || len(logs.all()) != 0 {
		t.Errorf("a scrape's deadline must not switch sources: %d reads, logs %q", primary.reads.Load(), logs.all())
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

// sourceLogs keeps what is logged.
type sourceLogs struct {
	mu    sync.Mutex
	lines []string
}

func (l *sourceLogs) Log(kv ...any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(kv...))
	return nil
}

func (l *sourceLogs) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}
