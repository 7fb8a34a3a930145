package collector

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/config"
	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// gatedTables reads the fixture tables, but only once released, so that a
// test can make scrapes overlap.
type gatedTables struct {
	inner   tables.TableSource
	started chan struct{}
	release chan struct{}
	reads   atomic.Int32
}

func (g *gatedTables) Stream(ctx context.Context, fn func(*tables.Socket)) error {
	if g.reads.Add(1) == 1 {
		close(g.started)
	}
	<-g.release
	return g.inner.Stream(ctx, fn)
}

func fixtureOptions(t *testing.T) Options {
	cfg, err := config.LoadConfig("../testdata/config.yml")
	if err != nil {
		t.Fatal(err)
	}
	return Options{ProcRoot: "../testdata/proc", MaxSeries: 1000, RouteStates: []tables.State{tables.StateCloseWait, tables.StateEstablished},
		Config: func() *config.Config { return cfg }, Workers: 2}
}

// gatedExporter is an exporter of every collector over the fixture
// tables, whose readings wait for gate's release.
func gatedExporter(t *testing.T) (*Exporter, *gatedTables) {
	t.Helper()
	o := fixtureOptions(t)
	gate := &gatedTables{inner: tables.NewProcfsTables(o.ProcRoot), started: make(chan struct{}), release: make(chan struct{})}
	o.Tables = gate
	e, err := NewExporter(o, Names())
	if err != nil {
		t.Fatal(err)
	}
	return e, gate
}

func TestConcurrentScrapesShareOneReading(t *testing.T) {
	t.Parallel()
	e, gate := gatedExporter(t)
	const scrapes = 20
	results := make([][]string, scrapes)
	var wg sync.WaitGroup
	// The first scrape leads and blocks in the table read; the others join.
	wg.Add(1)
	go func() {
		defer wg.Done()
		results[0] = render(t, e.Collect)
	}()
	<-gate.started
	for i := 1; i < scrapes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = render(t, e.Collect)
		}()
	}
	// Release the reading only once every other scrape waits on it: on a
	// busy host a goroutine can take long to reach Collect.
	deadline := time.Now().Add(30 * time.Second)
	for e.joinedReading() < scrapes-1 {
		if time.Now().After(deadline) {
			joined := e.joinedReading()
			close(gate.release)
			wg.Wait()
			t.Fatalf("after 30 s only %d of %d scrapes joined the reading", joined, scrapes-1)
		}
		time.Sleep(time.Millisecond)
	}
	close(gate.release)
	wg.Wait()

	if n := gate.reads.Load(); n != 1 {
		t.Errorf("%d scrapes read the tables %d times, want once", scrapes, n)
	}
	stable := func(lines []string) []string {
		return slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return strings.Contains(l, "collector=") || strings.Contains(l, "stage=") })
	}
	for i := 1; i < scrapes; i++ {
		if !slices.Equal(stable(results[i]), stable(results[0])) {
			t.Fatalf("scrape %d differs from scrape 0", i)
		}
	}
	if e.Readings() != uint64(gate.reads.Load()) {
		t.Errorf("Readings() = %d, tables read %d times", e.Readings(), gate.reads.Load())
	}
}

func TestMissingTablesFailEveryCollector(t *testing.T) {
	t.Parallel()
	o := fixtureOptions(t)
	o.Tables = tables.NewProcfsTables(t.TempDir()) // no net/tcp at all
	e, err := NewExporter(o, Names())
	if err != nil {
		t.Fatal(err)
	}
	got := render(t, e.Collect)
	for _, c := range []string{"connections", "queues", "ports", "process", "pools"} {
		if !slices.Contains(got, "collector="+c+" 0") {
			t.Errorf("collector %s should report success 0 without tables; got %q", c, got)
		}
	}
}

func TestUnknownCollectorIsAnError(t *testing.T) {
	t.Parallel()
	_, err := NewExporter(fixtureOptions(t), []string{"process", "sockets"})
	if err == nil || !strings.Contains(err.Error(), "sockets") {
		t.Fatalf("got %v", err)
	}
}

// TestTopReadingWaitsOutAScrapesReading: top's reading needs the route
// pids and the socket list, which a scrape's reading does not build; one
// that arrives while a scrape reads waits for it and takes its own instead
// of sharing it.
func TestTopReadingWaitsOutAScrapesReading(t *testing.T) {
	t.Parallel()
	e, gate := gatedExporter(t)
	scraped := make(chan struct{})
	go func() { defer close(scraped); render(t, e.Collect) }()
	<-gate.started
	type result struct {
		r   *TopReading
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := e.ReadTop(context.Background(), true)
		done <- result{r, err}
	}()
	// Release the scrape only once ReadTop waits on its reading: poll the
	// goroutines (bounded) for ReadTop blocked in a channel receive.
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		waiting := false
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "[chan receive") && strings.Contains(g, "(*Exporter).ReadTop") {
				waiting = true
			}
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ReadTop never waited on the scrape's reading:\n%s", stacks)
		}
		runtime.Gosched()
	}
	close(gate.release)
	<-scraped
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if n := gate.reads.Load(); n != 2 {
		t.Errorf("tables read %d times, want 2: the scrape's and top's own", n)
	}
	if p := res.r.Pids[Route{Process: "java", Netns: "host", Address: "10.1.2.3", Port: "9000"}]; !slices.Equal(p, []int{200}) {
		t.Errorf("pids of java → 10.1.2.3:9000: %v, want [200] (%v)", p, res.r.Pids)
	}
	if len(res.r.Sockets) != 6 {
		t.Errorf("%d sockets listed, want the fixture's 6 CLOSE_WAIT", len(res.r.Sockets))
	}
}
