// Command sockhold holds real TCP sockets on loopback in known states, for
// the exporter's live tests, benchmarks and end-to-end checks.
//
//	sockhold serve -listen 127.0.0.2:0 -listen [::1]:0
//	    accepts connections; a client that sends 'c' is closed at once (its
//	    socket goes to CLOSE_WAIT), one that sends 'r' gets a response of
//	    -response-bytes (100) and is closed, one that sends 'k' is kept open.
//	sockhold connect -close-wait 127.0.0.2:9000=5 -established [::1]:9000=2
//	    opens those connections, waits until every close-wait socket has
//	    seen the server's FIN, prints "ready", and holds them.
//
// The close-wait kinds differ in what the client's receive queue holds, as
// `ss` shows it in Recv-Q:
//
//	-close-wait         the client reads the end of stream: Recv-Q 0
//	-close-wait-idle    the client never reads, like an idle pooled
//	                    connection the server closed: Recv-Q 1 (the FIN)
//	-close-wait-unread  the server sends a response first and the client
//	                    never reads it, like a leaked request: Recv-Q 101
//	-close-wait-reset   as -close-wait until a line "reset" on standard
//	                    input (-stdin): then the client writes, the
//	                    server's side is gone and resets it, and the kernel
//	                    drops the socket the client still holds (CLOSE)
//
// With -fill ADDR, connect then opens connections to ADDR (kept open, as
// -established) until the process runs out of file descriptors (EMFILE),
// prints "filled N" and holds them: a process at its limit. With -stdin,
// each line "fill" fills again (after `prlimit --pid` raised the limit),
// and each line "close" closes the connection opened last.
//
// A port may be a range, FROM-TO: `-listen 127.0.0.3:10000-19999` listens on
// every free port of it (ports in use are skipped and counted), and
// `-established 127.0.0.3:10000-19999=1` opens N connections to each port
// that accepts them. With -no-accept the server never accepts: connections
// wait, established, in the kernel's backlog and cost the server no
// descriptor. With -keepalive=false no connection sends keepalive probes:
// hundreds of thousands of them overflow loopback's backlog, and the kernel
// resets the connections whose probes went unanswered. -keepalive-idle sets
// how soon and how often probes go out.
//
// Both hold until SIGTERM, -hold elapses (so a forgotten helper always ends
// by itself) or, with -stdin, standard input reaches EOF. -comm renames the process, so
// tests can tell a client from a server by the name the exporter reports.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type targets []string

func (t *targets) String() string     { return strings.Join(*t, ",") }
func (t *targets) Set(v string) error { *t = append(*t, v); return nil }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sockhold serve|connect [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var listen, closeWait, closeWaitIdle, closeWaitUnread, closeWaitReset, established targets
	fs.Var(&listen, "listen", "serve: address to listen on (repeatable; port 0 picks one, and later addresses with port 0 reuse the first port)")
	fs.Var(&closeWait, "close-wait", "connect: ADDR=N connections the server closes (repeatable)")
	fs.Var(&closeWaitIdle, "close-wait-idle", "connect: ADDR=N connections the server closes and the client never reads (Recv-Q 1) (repeatable)")
	fs.Var(&closeWaitUnread, "close-wait-unread", "connect: ADDR=N connections the server answers and closes, the answer never read (repeatable)")
	fs.Var(&closeWaitReset, "close-wait-reset", "connect: ADDR=N connections the server closes (CLOSE_WAIT) and, when a line \"reset\" arrives on standard input (-stdin), the client writes to: the server's side is gone, so it answers with a reset and the kernel drops the socket while this process still holds it (state close) (repeatable)")
	fs.Var(&established, "established", "connect: ADDR=N connections kept open (repeatable)")
	fs.IntVar(&responseBytes, "response-bytes", 100, "serve: bytes sent to a client that sends 'r' before closing")
	fill := fs.String("fill", "", "connect: ADDR to open connections to, kept open, until the process runs out of file descriptors (EMFILE); with -stdin, each input line \"fill\" does it again")
	comm := fs.String("comm", "", "process name to set (at most 15 bytes)")
	noAccept := fs.Bool("no-accept", false, "serve: leave connections in the backlog instead of accepting them")
	hold := fs.Duration("hold", 10*time.Minute, "release everything and exit after this long")
	watchStdin := fs.Bool("stdin", false, "also release and exit when standard input reaches EOF (so a helper dies with the test that started it)")
	keepAlive := fs.Bool("keepalive", true, "send TCP keepalive probes (Go's default); turn off to hold very many sockets: their probes overflow loopback's backlog, and the kernel resets connections whose probes go unanswered")
	keepAliveIdle := fs.Duration("keepalive-idle", 0, "connect: send the first keepalive probe after this much idle time, and then one as often (TCP_KEEPIDLE, TCP_KEEPINTVL); a CLOSE_WAIT socket's probe is answered while the server side lingers in FIN_WAIT2, which restarts the kernel's last-ACK clock")
	_ = fs.Parse(os.Args[2:])
	if !*keepAlive {
		dialer.KeepAlive, listenConfig.KeepAlive = -1, -1
	}
	if *keepAliveIdle > 0 {
		dialer.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: *keepAliveIdle, Interval: *keepAliveIdle, Count: 9}
	}
	if *comm != "" {
		// /proc/self names the main thread, whose name is the process's.
		if err := os.WriteFile("/proc/self/comm", []byte(*comm), 0); err != nil {
			fail("setting comm: %v", err)
		}
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(listen, *noAccept)
	case "connect":
		err = connect(closeWait, closeWaitIdle, closeWaitUnread, closeWaitReset, established, *fill)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fail("%v", err)
	}
	waitForRelease(*hold, *watchStdin, *fill)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sockhold: "+format+"\n", args...)
	os.Exit(1)
}

// waitForRelease blocks until a signal arrives, hold passes or, when asked,
// stdin closes.
func waitForRelease(hold time.Duration, watchStdin bool, fill string) {
	done := make(chan struct{}, 1)
	if watchStdin {
		go func() {
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				switch {
				case sc.Text() == "reset":
					resetHeld()
				case sc.Text() == "fill" && fill != "":
					n, err := fillFDs(fill)
					if err != nil {
						fail("%v", err)
					}
					fmt.Printf("filled %d\n", n)
				case sc.Text() == "close":
					keptMu.Lock()
					if n := len(kept); n > 0 {
						kept[n-1].Close()
						kept = kept[:n-1]
					}
					keptMu.Unlock()
				}
			}
			done <- struct{}{}
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-done:
	case <-sig:
	case <-time.After(hold):
	}
}

var (
	keptMu    sync.Mutex
	kept      []net.Conn     // referenced so that they stay open
	listeners []net.Listener // likewise

	// dialer and listenConfig carry -keepalive.
	dialer       net.Dialer
	listenConfig net.ListenConfig

	responseBytes int // -response-bytes

	toReset []net.Conn // -close-wait-reset, written to on "reset"
)

// resetHeld writes a byte on each -close-wait-reset connection: its
// server side is closed, so the kernel answers with a reset and drops the
// socket, which this process keeps open.
func resetHeld() {
	keptMu.Lock()
	defer keptMu.Unlock()
	for _, c := range toReset {
		if _, err := c.Write([]byte("x")); err != nil {
			fmt.Fprintf(os.Stderr, "sockhold: reset %s: %v\n", c.LocalAddr(), err)
		}
	}
	toReset = nil
}

func serve(addrs []string, noAccept bool) error {
	if len(addrs) == 0 {
		return errors.New("serve needs -listen")
	}
	port := ""
	for _, a := range addrs {
		host, p, err := net.SplitHostPort(a)
		if err != nil {
			return err
		}
		if from, to, isRange := portRange(p); isRange {
			listened, skipped := 0, 0
			for q := from; q <= to; q++ {
				l, err := listenConfig.Listen(context.Background(), "tcp", net.JoinHostPort(host, strconv.Itoa(q)))
				if err != nil {
					skipped++
					continue
				}
				listened++
				if !noAccept {
					go accept(l)
				}
				keptMu.Lock()
				listeners = append(listeners, l)
				keptMu.Unlock()
			}
			fmt.Printf("listening %s listened=%d skipped=%d\n", a, listened, skipped)
			continue
		}
		if p == "0" && port != "" {
			p = port
		}
		l, err := listenConfig.Listen(context.Background(), "tcp", net.JoinHostPort(host, p))
		if err != nil {
			return err
		}
		_, port, _ = net.SplitHostPort(l.Addr().String())
		fmt.Printf("listening %s\n", l.Addr())
		if !noAccept {
			go accept(l)
		}
		keptMu.Lock()
		listeners = append(listeners, l)
		keptMu.Unlock()
	}
	fmt.Println("ready")
	return nil
}

// portRange reads "FROM-TO".
func portRange(p string) (int, int, bool) {
	a, b, ok := strings.Cut(p, "-")
	if !ok {
		return 0, 0, false
	}
	from, err1 := strconv.Atoi(a)
	to, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || from < 1 || to > 65535 || from > to {
		return 0, 0, false
	}
	return from, to, true
}

func accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil || b[0] == 'c' {
				c.Close()
				return
			}
			if b[0] == 'r' {
				_, _ = c.Write(make([]byte, responseBytes))
				c.Close()
				return
			}
			keptMu.Lock()
			kept = append(kept, c)
			keptMu.Unlock()
		}()
	}
}

// fillFDs opens connections to addr, kept open, until socket() or
// connect() fails with EMFILE; any other error is returned.
func fillFDs(addr string) (int, error) {
	const most = 1 << 20 // above any limit a test sets
	for n := 0; n < most; n++ {
		c, err := dialer.Dial("tcp", addr)
		if errors.Is(err, syscall.EMFILE) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if _, err := c.Write([]byte{'k'}); err != nil {
			return n, err
		}
		keptMu.Lock()
		kept = append(kept, c)
		keptMu.Unlock()
	}
	return most, fmt.Errorf("%d connections to %s opened and no EMFILE yet", most, addr)
}

func connect(closeWait, closeWaitIdle, closeWaitUnread, closeWaitReset, established []string, fill string) error {
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	connected, refused := 0, 0
	open := func(spec string, mode byte, unread, reset bool) error {
		addr, n, err := parseTarget(spec)
		if err != nil {
			return err
		}
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			return err
		}
		addrs := []string{addr}
		from, to, isRange := portRange(p)
		if isRange {
			addrs = addrs[:0]
			for q := from; q <= to; q++ {
				addrs = append(addrs, net.JoinHostPort(host, strconv.Itoa(q)))
			}
		}
		for _, a := range addrs {
			for range n {
				c, err := dialer.Dial("tcp", a)
				if err != nil {
					if isRange && errors.Is(err, syscall.ECONNREFUSED) {
						refused++ // a port the server could not take
						break
					}
					return err
				}
				connected++
				if _, err := c.Write([]byte{mode}); err != nil {
					return err
				}
				keptMu.Lock()
				kept = append(kept, c)
				if reset {
					toReset = append(toReset, c)
				}
				keptMu.Unlock()
				wait := func() error { return nil }
				switch {
				case mode == 'c' && !unread:
					// EOF means the server's FIN arrived: this socket is now
					// in CLOSE_WAIT, and stays there because it is never
					// closed.
					wait = func() error {
						_ = c.SetReadDeadline(time.Now().Add(time.Minute))
						if _, err := c.Read(make([]byte, 1)); err != io.EOF {
							return err
						}
						return nil
					}
				case mode == 'c' || mode == 'r':
					// Reading would take the FIN (and the response) out of
					// the queue: watch the socket's state instead.
					wait = func() error { return waitCloseWait(c) }
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := wait(); err != nil {
						select {
						case errs <- fmt.Errorf("waiting for the server to close %s: %v", a, err):
						default:
						}
					}
				}()
			}
		}
		return nil
	}
	for _, kind := range []struct {
		specs         []string
		mode          byte
		unread, reset bool
	}{{closeWait, 'c', false, false}, {closeWaitIdle, 'c', true, false}, {closeWaitUnread, 'r', true, false}, {closeWaitReset, 'c', false, true}, {established, 'k', false, false}} {
		for _, spec := range kind.specs {
			if err := open(spec, kind.mode, kind.unread, kind.reset); err != nil {
				return err
			}
		}
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	fmt.Printf("connected %d refused=%d\n", connected, refused)
	if fill != "" {
		n, err := fillFDs(fill)
		if err != nil {
			return err
		}
		fmt.Printf("filled %d\n", n)
	}
	fmt.Println("ready")
	return nil
}

func parseTarget(spec string) (string, int, error) {
	addr, count, ok := strings.Cut(spec, "=")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 0 {
		return "", 0, fmt.Errorf("bad target %q: want ADDR=COUNT", spec)
	}
	return addr, n, nil
}

// waitCloseWait polls the connection's TCP state (TCP_INFO) until the
// server's FIN has put it in CLOSE_WAIT, for at most a minute, without
// reading from it.
func waitCloseWait(c net.Conn) error {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var state uint8
		var ierr error
		if err := raw.Control(func(fd uintptr) {
			var info *unix.TCPInfo
			if info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); ierr == nil {
				state = info.State
			}
		}); err != nil {
			return err
		}
		if ierr != nil {
			return ierr
		}
		const closeWait = 8 // TCP_CLOSE_WAIT in include/net/tcp_states.h
		if state == closeWait {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still in TCP state %d after a minute", state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
