// Command bench measures tcpstate_exporter against the tools it replaces and
// writes docs/performance.md and docs/performance.png. `make bench` runs it
// through bench/run.sh, which first installs what it compares against.
//
// It runs, in one go:
//
//   - the Go benchmarks of the parsers and of a whole scrape on generated
//     tables (go test -bench in ./collector/..., 1 000 to 1 000 000 lines, made
//     in a temporary folder);
//   - the netlink library comparison (bench/nlcompare, a module of its own);
//   - the real-socket benchmark: it holds N loopback sockets (spread over
//     pairs of internal/sockhold processes, each under the 20 000 fd limit)
//     and times, interleaved round by round so that drift hits every tool
//     alike, `cat /proc/net/tcp /proc/net/tcp6`, `ss -tan`, `ss -tanp`,
//     node_exporter's tcpstat collector and our exporter's scrape with each
//     source, with and without the process view.
//
// Every helper it starts ends with it (stdin EOF, then SIGKILL by pid), and
// every loop is bounded.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

func main() {
	os.Exit(run())
}

type options struct {
	sizes        []int
	rounds       int
	out, png     string
	goBench      bool
	nlCompare    bool
	benchtime    string
	nodeExporter string
	closeWaitPct int
	// closeWaitConns and establishedConns, when either is set, are the
	// connections held (each two sockets), whatever the host holds
	// besides: one measurement instead of -sizes.
	closeWaitConns, establishedConns int
	limited                          bool
	// unixSockets are held by the bench process beside the TCP ones;
	// baseExporter is scraped beside the exporter (A/B); benchstatOut
	// receives both sides' samples.
	unixSockets  int
	baseExporter string
	benchstatOut string
}

// fixed tells whether the connections held are given, rather than the
// sockets on the host.
func (o *options) fixed() bool { return o.closeWaitConns > 0 || o.establishedConns > 0 }

// connectionsFor returns how many more connections to hold for a size.
func (b *bench) connectionsFor(size int) int {
	if b.o.fixed() {
		return b.o.closeWaitConns + b.o.establishedConns - b.held
	}
	return max(0, size-countSockets()) / 2
}

func run() int {
	var o options
	sizes := flag.String("sizes", "10000,100000,1000000", "socket counts to measure at (totals in the TCP tables, the host's own sockets included)")
	flag.IntVar(&o.rounds, "rounds", 0, "samples per tool and size (0: 21 up to 10 000 sockets, 15 up to 100 000, 7 beyond)")
	flag.StringVar(&o.out, "out", "docs/performance.md", "report to write")
	flag.StringVar(&o.png, "png", "docs/performance.png", "plot to write")
	flag.BoolVar(&o.goBench, "gobench", true, "run the Go benchmarks on generated tables")
	flag.BoolVar(&o.nlCompare, "nlcompare", true, "run the netlink library comparison in bench/nlcompare")
	flag.StringVar(&o.benchtime, "benchtime", "1s", "-benchtime for the Go benchmarks")
	flag.StringVar(&o.nodeExporter, "node-exporter", "prometheus-node-exporter", "node_exporter binary (Debian's prometheus-node-exporter)")
	flag.IntVar(&o.closeWaitPct, "close-wait-percent", 1, "share of held connections left in CLOSE_WAIT")
	flag.IntVar(&o.closeWaitConns, "close-wait-connections", 0, "hold exactly this many connections in CLOSE_WAIT (with -established-connections), whatever the host holds besides, and measure once at that count instead of -sizes")
	flag.IntVar(&o.establishedConns, "established-connections", 0, "hold exactly this many established connections (with -close-wait-connections), whatever the host holds besides, and measure once instead of -sizes")
	flag.BoolVar(&o.limited, "limited", true, "at the largest size, also run the exporter under the DaemonSet's CPU and memory limits (a cgroup v1 quota)")
	flag.IntVar(&o.unixSockets, "unix-sockets", 10000, "unix sockets the bench process holds beside the TCP connections, which every /proc/PID/fd walk meets")
	flag.StringVar(&o.baseExporter, "base-exporter", "", "an exporter binary built from an earlier commit, scraped in the same rounds as this one (tool \""+toolBase+"\")")
	flag.StringVar(&o.benchstatOut, "benchstat-out", "", "write the scrape times of this exporter and of -base-exporter to FILE.new and FILE.base, for benchstat")
	flag.Parse()
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: bad -sizes entry %q\n", s)
			return 2
		}
		o.sizes = append(o.sizes, n)
	}
	slices.Sort(o.sizes)
	if o.closeWaitConns < 0 || o.establishedConns < 0 {
		fmt.Fprintln(os.Stderr, "bench: -close-wait-connections and -established-connections must be 0 or more")
		return 2
	}
	if o.fixed() {
		// The sockets held, both ends of each connection.
		o.sizes = []int{2 * (o.closeWaitConns + o.establishedConns)}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := newBench(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer b.cleanup()
	if err := b.run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// bench holds one run's state.
type bench struct {
	ctx  context.Context
	o    options
	dir  string // temporary: binaries, logs
	bins struct{ exporter, sockhold, nodeExporter string }

	unixFDs []int // held unix sockets (holdUnix)

	mu      sync.Mutex // guards helpers
	helpers []*helper
	nextIP  int
	held    int // connections held by helpers
	// closeWaitHeld of them in CLOSE_WAIT (with -close-wait-connections).
	closeWaitHeld int

	report report
}

func newBench(ctx context.Context, o options) (*bench, error) {
	if _, err := os.Stat("go.mod"); err != nil {
		return nil, errors.New("run from the repository root (make bench does)")
	}
	dir, err := os.MkdirTemp("", "tcpstate-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{ctx: ctx, o: o, dir: dir, nextIP: 10}
	b.report.started = time.Now()
	return b, nil
}

func (b *bench) cleanup() {
	b.releaseHelpers()
	b.releaseUnix()
	os.RemoveAll(b.dir)
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (b *bench) run() error {
	if err := b.build(); err != nil {
		return err
	}
	b.report.machine = describeMachine(b.bins.nodeExporter)
	// The report it replaces, to compare against.
	if old, err := os.ReadFile(b.o.out); err == nil {
		b.report.previous, b.report.previousDate = parsePrevious(string(old))
	}
	if b.o.goBench {
		b.logf("Go benchmarks on generated tables (go test -bench, -benchtime %s)", b.o.benchtime)
		out, err := b.command("go", "test", "-run", "^$", "-bench", "ProcfsTables|NetlinkParse|Scrape|TrackedSocket", "-benchmem", "-benchtime", b.o.benchtime, "./collector/...")
		if err != nil {
			return fmt.Errorf("go test -bench: %w\n%s", err, out)
		}
		b.report.goBench = parseGoBench(out)
	}
	if b.o.nlCompare {
		b.logf("netlink library comparison (bench/nlcompare)")
		cmd := exec.CommandContext(b.ctx, "go", "test", "-run", "TestSameSockets", "-bench", ".", "-benchmem", "-count", "3", "-benchtime", "20x", ".")
		cmd.Dir = "bench/nlcompare"
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("bench/nlcompare: %w\n%s", err, out)
		}
		b.report.nlCompare = parseGoBench(string(out))
	}
	if b.o.unixSockets > 0 {
		b.logf("holding %d unix sockets", b.o.unixSockets)
		if err := b.holdUnix(b.o.unixSockets); err != nil {
			return err
		}
	}
	for _, size := range b.o.sizes {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		if why := b.cannotHold(size); why != "" {
			b.logf("skipping %d sockets: %s", size, why)
			b.report.skipped = append(b.report.skipped, fmt.Sprintf("%d sockets: %s", size, why))
			continue
		}
		res, err := b.measureSize(size)
		if err != nil {
			return fmt.Errorf("at %d sockets: %w", size, err)
		}
		b.report.sizes = append(b.report.sizes, res)
		if err := b.writeBenchstat(res); err != nil {
			return err
		}
		if size == slices.Max(b.o.sizes) && b.o.limited {
			b.report.limited = b.measureLimited(res.sockets)
		}
	}
	b.releaseHelpers()
	slices.SortFunc(b.report.sizes, func(x, y *sizeResult) int { return x.sockets - y.sockets })
	b.report.finished = time.Now()
	if err := writePlot(b.o.png, "tcpstate_exporter: median time per scrape against sockets held on loopback", b.report.plotSeries()); err != nil {
		return err
	}
	text := b.report.markdown(filepath.Base(b.o.png))
	if err := os.WriteFile(b.o.out, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Print(b.report.summary())
	b.logf("wrote %s and %s", b.o.out, b.o.png)
	return nil
}

func (b *bench) command(name string, args ...string) (string, error) {
	cmd := exec.CommandContext(b.ctx, name, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// build compiles the exporter and the socket holder, and finds the tools
// compared against.
func (b *bench) build() error {
	b.bins.exporter = filepath.Join(b.dir, "tcpstate_exporter")
	b.bins.sockhold = filepath.Join(b.dir, "sockhold")
	b.logf("building the exporter and sockhold")
	// Built as `make build` builds it: no cgo, stripped.
	os.Setenv("CGO_ENABLED", "0")
	for out, pkg := range map[string]string{b.bins.exporter: ".", b.bins.sockhold: "./internal/sockhold"} {
		if msg, err := b.command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
		}
	}
	help, _ := b.command(b.bins.exporter, "--help")
	if !strings.Contains(help, "--collector.tcp.source") {
		return errors.New("the exporter has no --collector.tcp.source flag: main.go must pass tables.NewTableSource to Options.Tables (see docs/performance.md)")
	}
	for _, tool := range []string{"ss", "cat"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install iproute2 and coreutils", tool)
		}
	}
	p, err := exec.LookPath(b.o.nodeExporter)
	if err != nil {
		return fmt.Errorf("%s not found: apt-get install -y prometheus-node-exporter (bench/run.sh does)", b.o.nodeExporter)
	}
	b.bins.nodeExporter = p
	return nil
}

// perHelper is the most connections one helper process holds: one fd each,
// well under the 20 000 fds a process may have.
const perHelper = 15000

// cannotHold says why size sockets cannot be held here, or "".
func (b *bench) cannotHold(size int) string {
	conns := b.connectionsFor(size)
	if conns <= 0 {
		return ""
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Max < perHelper+100 {
		return fmt.Sprintf("a process may hold only %d fds", lim.Max)
	}
	// Measured here: about 5 KiB of kernel and helper memory per socket;
	// keep a margin for the tools measured.
	need := uint64(size) * 8 << 10
	if avail := memAvailable(); avail > 0 && avail < need+(2<<30) {
		return fmt.Sprintf("%d MiB of memory available, %d MiB needed", avail>>20, (need+(2<<30))>>20)
	}
	if fileMax := readInt("/proc/sys/fs/file-max"); fileMax > 0 && fileMax < int64(size)+100_000 {
		return fmt.Sprintf("fs.file-max is %d", fileMax)
	}
	if b.nextIP+(conns+perHelper-1)/perHelper > 250 {
		return "more helper pairs than addresses in 127.0.0.0/24"
	}
	return ""
}

// helper is a running sockhold process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines []string
}

// startHelper runs sockhold and waits for "ready".
func (b *bench) startHelper(args ...string) (*helper, error) {
	h := &helper{cmd: exec.Command(b.bins.sockhold, append(args, "-stdin", "-hold", "60m")...)}
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	h.cmd.Stderr = os.Stderr
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.helpers = append(b.helpers, h)
	b.mu.Unlock()
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- nil
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
			h.lines = append(h.lines, sc.Text())
		}
		ready <- fmt.Errorf("sockhold %v ended before it was ready", args)
	}()
	select {
	case err := <-ready:
		return h, err
	case <-time.After(5 * time.Minute):
		return nil, fmt.Errorf("sockhold %v not ready after 5 minutes", args)
	case <-b.ctx.Done():
		return nil, b.ctx.Err()
	}
}

// addConnections starts helper pairs holding n more connections, each pair
// on its own 127.0.0.x so that four-tuples never run short.
func (b *bench) addConnections(n int) error {
	type pair struct {
		addr  string
		conns int
	}
	var pairs []pair
	for n > 0 {
		k := min(n, perHelper)
		ip := fmt.Sprintf("127.0.0.%d", b.nextIP)
		b.nextIP++
		srv, err := b.startHelper("serve", "-comm", "bench-server", "-keepalive=false", "-listen", ip+":0")
		if err != nil {
			return err
		}
		if len(srv.lines) == 0 {
			return errors.New("sockhold serve printed no address")
		}
		pairs = append(pairs, pair{strings.TrimPrefix(srv.lines[0], "listening "), k})
		n -= k
	}
	// Clients connect in parallel, two at a time (the machine's cores).
	errs := make(chan error, len(pairs))
	sem := make(chan struct{}, 2)
	closeWait := make([]int, len(pairs))
	cwLeft := b.o.closeWaitConns - b.closeWaitHeld
	for i, p := range pairs {
		if b.o.fixed() {
			closeWait[i] = min(p.conns, max(cwLeft, 0))
			cwLeft -= closeWait[i]
		} else {
			closeWait[i] = p.conns * b.o.closeWaitPct / 100
		}
	}
	for i, p := range pairs {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cw := closeWait[i]
			_, err := b.startHelper("connect", "-comm", "bench-client", "-keepalive=false",
				"-established", fmt.Sprintf("%s=%d", p.addr, p.conns-cw),
				"-close-wait", fmt.Sprintf("%s=%d", p.addr, cw))
			errs <- err
		}()
	}
	var first error
	for range pairs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first == nil {
		for i, p := range pairs {
			b.held += p.conns
			b.closeWaitHeld += closeWait[i]
		}
	}
	return first
}

// releaseHelpers ends every helper: stdin EOF, then SIGKILL by pid.
func (b *bench) releaseHelpers() {
	for _, h := range b.helpers {
		h.stdin.Close()
	}
	for _, h := range b.helpers {
		done := make(chan struct{})
		go func() { _ = h.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = h.cmd.Process.Kill()
			<-done
		}
	}
	b.helpers, b.held, b.closeWaitHeld = nil, 0, 0
}

// countSockets counts the lines of both TCP tables, through netlink.
func countSockets() int {
	n := 0
	if err := tables.NewNetlinkTables().Stream(context.Background(), func(*tables.Socket) { n++ }); err != nil {
		return 0
	}
	return n
}

// countCloseWait counts the CLOSE_WAIT sockets, and those a dump gave a
// kernel age.
func countCloseWait() (closeWait, aged int) {
	_ = (&tables.NetlinkTables{AgesInDump: true}).Stream(context.Background(), func(s *tables.Socket) {
		if s.State == tables.StateCloseWait {
			closeWait++
			if s.HasAckAge {
				aged++
			}
		}
	})
	return closeWait, aged
}

// timeDump times one netlink reading of every socket, in this process,
// with the CLOSE_WAIT sockets' kernel ages dumped or not.
func timeDump(ages bool) (time.Duration, string, error) {
	src := &tables.NetlinkTables{AgesInDump: ages}
	start := time.Now()
	err := src.Stream(context.Background(), func(*tables.Socket) {})
	return time.Since(start), "", err
}

// timeAgeLookups times looking up every CLOSE_WAIT socket's kernel age one
// by one (the sockets listed by a plain dump first, not timed).
func timeAgeLookups() (time.Duration, string, error) {
	src := tables.NewNetlinkTables()
	var socks []*tables.Socket
	err := src.Stream(context.Background(), func(s *tables.Socket) {
		if s.State == tables.StateCloseWait {
			c := *s
			socks = append(socks, &c)
		}
	})
	if err != nil {
		return 0, "", err
	}
	start := time.Now()
	err = src.QueryAges(context.Background(), socks)
	return time.Since(start), "", err
}

// A process the benchmark runs and scrapes over HTTP.
type server struct {
	name string
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startServer runs bin with args plus a listen address and waits until it
// answers.
func (b *bench) startServer(name, bin string, args ...string) (*server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(b.dir, strings.ReplaceAll(name, " ", "_")+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s := &server{name: name, url: "http://" + addr + "/metrics", done: make(chan struct{})}
	s.cmd = exec.Command(bin, append(args, "--web.listen-address="+addr)...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("%s exited at start; see its log", name)
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.stop()
	return nil, fmt.Errorf("%s not listening after 15 s", name)
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// peakRSS returns the process's VmHWM in bytes.
func (s *server) peakRSS() uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

// scrape fetches url and returns how long it took and the body.
func scrape(ctx context.Context, url string) (time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(ctx, maxSample)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return 0, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return d, string(body), err
}

// timeCommand runs a command with its output thrown away.
// A sample that takes longer than maxSample is stopped.
func timeCommand(ctx context.Context, args ...string) (time.Duration, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer devnull.Close()
	ctx, cancel := context.WithTimeout(ctx, maxSample)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = devnull, devnull
	start := time.Now()
	err = cmd.Run()
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	return time.Since(start), err
}

// maxSample bounds one sample: `ss -tanp` grows faster than linearly and
// would take minutes per run at a million sockets.
const maxSample = 60 * time.Second

// metricSum adds the samples of a metric in an exposition.
func metricSum(body, name string) float64 {
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// nodeStates adds node_exporter's connection counts, leaving out the
// queued bytes it reports in the same family.
func nodeStates(body string) float64 {
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "node_tcp_connection_states{") && !strings.Contains(line, "queued_bytes") {
			i := strings.LastIndexByte(line, ' ')
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// Tool names, in table order.
const (
	toolCat         = "cat /proc/net/tcp*"
	toolSS          = "ss -tan"
	toolSSP         = "ss -tanp"
	toolNode        = "node_exporter tcpstat"
	toolNetlink     = "netlink"
	toolNetlinkProc = "netlink + process"
	toolNetlinkCold = "netlink + process, cold"
	toolProcfs      = "procfs"
	toolProcfsProc  = "procfs + process"
	// In-process netlink readings of every socket: one dump per family
	// (the exporter's steady state), the same with the CLOSE_WAIT sockets
	// in a second dump with their kernel ages (its first reading), and the
	// lookup of every CLOSE_WAIT socket's age one by one (what a reading
	// pays per new CLOSE_WAIT socket).
	toolDumpPlain    = "netlink dump"
	toolDumpAges     = "netlink dumps, kernel ages"
	toolAgeLookups   = "kernel age lookups, every CLOSE_WAIT socket"
	exporterNoProc   = "--no-collector.process"
	exporterNoPools  = "--no-collector.pools"
	coldStartsPerRun = 5
	soakScrapes      = 300
)

var toolOrder = []string{toolCat, toolSS, toolSSP, toolNode, toolNetlink, toolProcfs, toolNetlinkProc, toolProcfsProc, toolNetlinkCold}

// sizeResult is everything measured at one socket count.
type sizeResult struct {
	target, sockets int // asked for, and counted when measuring
	rounds          int
	samples         map[string][]time.Duration
	peakRSS         map[string]uint64
	allocPerScrape  map[string]float64 // bytes, from go_memstats_alloc_bytes_total
	seen            map[string]float64 // sockets each exporter reported
	timedOut        map[string]bool    // its one sample is maxSample, a lower bound
	soakRSS         uint64             // peak RSS of netlink + process after soakScrapes more
	gogc            float64            // the exporter's GOGC, as it reports it
	// tableStage holds, per exporter configuration, the table stage its
	// scrapes reported (tcpstate_snapshot_duration_seconds{stage="tables"}).
	tableStage map[string][]time.Duration
	// cpuPerScrape is the CPU time (user + system) an exporter spent per
	// scrape, from its process_cpu_seconds_total over the rounds; coldCPU
	// the CPU of a cold start's first scrape, start-up included.
	cpuPerScrape map[string]float64
	coldCPU      []float64
	// closeWait counts the CLOSE_WAIT sockets, and kernelAged those with a
	// kernel age in a dump.
	closeWait, kernelAged int
}

func (b *bench) roundsFor(sockets int) int {
	switch {
	case b.o.rounds > 0:
		return b.o.rounds
	case sockets <= 20_000:
		return 21
	case sockets <= 200_000:
		return 21
	}
	return 7
}

func (b *bench) measureSize(target int) (*sizeResult, error) {
	if need := b.connectionsFor(target); need > 0 {
		b.logf("holding %d more loopback connections (%d sockets)", need, 2*need)
		start := time.Now()
		if err := b.addConnections(need); err != nil {
			return nil, err
		}
		b.logf("held in %v", time.Since(start).Round(time.Millisecond))
	}
	res := &sizeResult{target: target, sockets: countSockets(), samples: map[string][]time.Duration{},
		peakRSS: map[string]uint64{}, allocPerScrape: map[string]float64{}, seen: map[string]float64{}, timedOut: map[string]bool{}, tableStage: map[string][]time.Duration{},
		cpuPerScrape: map[string]float64{}}
	res.closeWait, res.kernelAged = countCloseWait()
	res.rounds = b.roundsFor(res.sockets)
	b.logf("measuring at %d sockets, %d rounds", res.sockets, res.rounds)

	// Cold process view: the first scrape after a start walks every fd.
	for i := 0; i < coldStartsPerRun; i++ {
		s, err := b.startServer(toolNetlinkCold, b.bins.exporter, "--collector.tcp.source=netlink")
		if err != nil {
			return nil, err
		}
		d, _, err := scrape(b.ctx, s.url)
		if err != nil {
			s.stop()
			return nil, err
		}
		// The process's CPU counter is read as a scrape starts: the
		// second scrape's holds the start-up and the whole first scrape.
		_, body, err := scrape(b.ctx, s.url)
		s.stop()
		if err != nil {
			return nil, err
		}
		res.samples[toolNetlinkCold] = append(res.samples[toolNetlinkCold], d)
		res.coldCPU = append(res.coldCPU, metricSum(body, "process_cpu_seconds_total"))
	}

	// The servers: our exporter in four configurations, node_exporter.
	type srvSpec struct {
		name string
		bin  string
		args []string
	}
	specs := []srvSpec{
		{toolNode, b.bins.nodeExporter, []string{"--collector.disable-defaults", "--collector.tcpstat"}},
		{toolNetlink, b.bins.exporter, []string{"--collector.tcp.source=netlink", exporterNoProc, exporterNoPools}},
		{toolProcfs, b.bins.exporter, []string{"--collector.tcp.source=procfs", exporterNoProc, exporterNoPools}},
		{toolNetlinkProc, b.bins.exporter, []string{"--collector.tcp.source=netlink"}},
		{toolProcfsProc, b.bins.exporter, []string{"--collector.tcp.source=procfs"}},
	}
	if b.o.baseExporter != "" {
		specs = append(specs, srvSpec{toolBase, b.o.baseExporter, []string{"--collector.tcp.source=netlink"}})
	}
	servers := map[string]*server{}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for _, sp := range specs {
		s, err := b.startServer(sp.name, sp.bin, sp.args...)
		if err != nil {
			return nil, err
		}
		servers[sp.name] = s
	}
	// Two scrapes first: the first sizes the buffers and fills the cache;
	// the second's allocation counter (read as it starts) is the baseline,
	// so that the counter in the last sample covers exactly the rounds.
	allocStart, cpuStart := map[string]float64{}, map[string]float64{}
	for name, s := range servers {
		for i := 0; i < 2; i++ {
			_, body, err := scrape(b.ctx, s.url)
			if err != nil {
				return nil, err
			}
			allocStart[name] = metricSum(body, "go_memstats_alloc_bytes_total")
			cpuStart[name] = metricSum(body, "process_cpu_seconds_total")
			if name == toolNode {
				res.seen[name] = nodeStates(body)
			} else {
				res.seen[name] = metricSum(body, "tcpstate_connections")
			}
		}
	}

	tools := map[string]func() (time.Duration, string, error){
		toolCat: func() (time.Duration, string, error) {
			d, err := timeCommand(b.ctx, "cat", "/proc/net/tcp", "/proc/net/tcp6")
			return d, "", err
		},
		toolSS: func() (time.Duration, string, error) {
			d, err := timeCommand(b.ctx, "ss", "-tan")
			return d, "", err
		},
		toolSSP: func() (time.Duration, string, error) {
			d, err := timeCommand(b.ctx, "ss", "-tanp")
			return d, "", err
		},
	}
	for name, s := range servers {
		url := s.url
		tools[name] = func() (time.Duration, string, error) { return scrape(b.ctx, url) }
	}
	for name, ages := range map[string]bool{toolDumpAges: true, toolDumpPlain: false} {
		tools[name] = func() (time.Duration, string, error) { return timeDump(ages) }
	}
	tools[toolAgeLookups] = timeAgeLookups
	order := []string{toolCat, toolSS, toolSSP, toolNode, toolNetlink, toolProcfs, toolNetlinkProc, toolProcfsProc, toolDumpPlain, toolDumpAges, toolAgeLookups}
	if b.o.baseExporter != "" {
		order = append(order, toolBase)
	}
	lastBody := map[string]string{}
	for r := 0; r < res.rounds; r++ {
		if err := b.ctx.Err(); err != nil {
			return nil, err
		}
		// Rotate the order each round so that no tool always follows the
		// same one (caches, CPU frequency, the other engineers' load).
		for k := range order {
			name := order[(k+r)%len(order)]
			if res.timedOut[name] {
				continue
			}
			d, body, err := tools[name]()
			if errors.Is(err, context.DeadlineExceeded) && b.ctx.Err() == nil {
				// Too slow to sample again: keep the bound, not a median.
				b.logf("%s took more than %v at %d sockets; not sampled again at this size", name, maxSample, res.sockets)
				res.timedOut[name] = true
				res.samples[name] = []time.Duration{maxSample}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			res.samples[name] = append(res.samples[name], d)
			if body != "" {
				lastBody[name] = body
				if name != toolNode {
					secs := metricSum(body, `tcpstate_snapshot_duration_seconds{stage="tables"}`)
					res.tableStage[name] = append(res.tableStage[name], time.Duration(secs*1e9))
				}
			}
		}
	}
	for name, s := range servers {
		res.peakRSS[name] = s.peakRSS()
		if body, ok := lastBody[name]; ok && res.rounds > 0 {
			res.allocPerScrape[name] = (metricSum(body, "go_memstats_alloc_bytes_total") - allocStart[name]) / float64(res.rounds)
			res.cpuPerScrape[name] = (metricSum(body, "process_cpu_seconds_total") - cpuStart[name]) / float64(res.rounds)
		}
	}
	// Memory in the long run: the heap grows towards the collector's goal
	// over many scrapes, so the peak after a few rounds is not the peak.
	if res.sockets <= 200_000 {
		s := servers[toolNetlinkProc]
		for i := 0; i < soakScrapes; i++ {
			if _, _, err := scrape(b.ctx, s.url); err != nil {
				return nil, err
			}
		}
		res.soakRSS = s.peakRSS()
	}
	res.gogc = metricSum(lastBody[toolNetlinkProc], "go_gc_gogc_percent")
	b.logf("at %d sockets: %s", res.sockets, res.line())
	return res, nil
}

func (r *sizeResult) line() string {
	var parts []string
	for _, t := range toolOrder {
		if m, ok := r.median(t); ok {
			more := ""
			if r.timedOut[t] {
				more = ">"
			}
			parts = append(parts, fmt.Sprintf("%s %s%.1f ms", t, more, m))
		}
	}
	return strings.Join(parts, ", ")
}

// median returns the median of a tool's samples in milliseconds.
func (r *sizeResult) median(tool string) (float64, bool) {
	return medianMs(r.samples[tool])
}

func medianMs(samples []time.Duration) (float64, bool) {
	s := slices.Clone(samples)
	if len(s) == 0 {
		return 0, false
	}
	slices.Sort(s)
	var m time.Duration
	if len(s)%2 == 1 {
		m = s[len(s)/2]
	} else {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return float64(m) / 1e6, true
}

func memAvailable() uint64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "MemAvailable:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func readInt(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return v
}
