// Command goclient is the Go net/http client of the incident replay (make
// incident): one http.Transport whose pool is bounded by MaxConnsPerHost,
// talking to a keep-alive server that closes idle connections.
//
//	goclient -url http://127.0.0.1:PORT/ -mode leak -pool 20
//	    the bug: each response's body is never read nor closed, so its
//	    connection stays leased; when the server closes it, the socket
//	    stays in CLOSE_WAIT. Requests go out every -pace until, with all
//	    -pool connections leaked, one waits longer than -wait for a
//	    connection: the pool is dry. It prints
//	    "leaked N" after each response, then "dry" with the time, and holds
//	    the sockets until standard input reaches EOF or -hold elapses.
//	goclient -url ... -mode fixed -pool 20 -requests 60
//	    the fix from docs/runbooks.md: defer resp.Body.Close() after
//	    checking err, and read the body to the end first. It sends
//	    -requests requests, pausing -idle-pause after every -idle-every of
//	    them so that the server closes the idle connection in between,
//	    prints "fixed ok N" and exits; it fails if any request fails or
//	    takes longer than 10 s. With -requests 0 it goes on until standard
//	    input reaches EOF or -hold elapses: a healthy service beside a
//	    leaking one (make fleet-test).
//
// -keepalive sets the TCP keepalive period of the dialer (0: Go's default,
// negative: off). See docs/incident.md for why the replay turns it off.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

type options struct {
	url        string
	mode       string
	pool       int
	requests   int
	pace       time.Duration
	wait       time.Duration
	idleEvery  int
	idlePause  time.Duration
	keepAlive  time.Duration
	hold       time.Duration
	maxLeakTry int
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "", "URL of the server")
	flag.StringVar(&o.mode, "mode", "", "leak or fixed")
	flag.IntVar(&o.pool, "pool", 20, "MaxConnsPerHost: the pool's maximum")
	flag.IntVar(&o.requests, "requests", 60, "fixed: requests to send (0: until standard input reaches EOF or -hold elapses)")
	flag.DurationVar(&o.pace, "pace", 500*time.Millisecond, "time between requests")
	flag.DurationVar(&o.wait, "wait", time.Second, "a request waiting this long for a connection means the pool is dry")
	flag.IntVar(&o.idleEvery, "idle-every", 5, "fixed: pause after this many requests")
	flag.DurationVar(&o.idlePause, "idle-pause", 3*time.Second, "fixed: pause long enough for the server to close idle connections")
	flag.DurationVar(&o.keepAlive, "keepalive", 0, "TCP keepalive period (0: Go's default, negative: off)")
	flag.DurationVar(&o.hold, "hold", 10*time.Minute, "leak, and fixed with -requests 0: exit after this long at the latest")
	flag.Parse()
	o.maxLeakTry = 2 * o.pool
	var err error
	switch {
	case o.url == "":
		err = errors.New("-url is required")
	case o.pool <= 0 || o.requests < 0 || o.pace <= 0 || o.wait <= 0 || o.idleEvery <= 0:
		err = errors.New("-pool, -pace, -wait and -idle-every must be positive, -requests 0 or more")
	case o.mode == "leak":
		err = leak(o)
	case o.mode == "fixed":
		err = fixed(o)
	default:
		err = fmt.Errorf("-mode %q: want leak or fixed", o.mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(1)
	}
}

// client is the shared client both modes use: one Transport, its pool
// bounded per host.
func client(o options) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: o.keepAlive}
	return &http.Client{Transport: &http.Transport{
		DialContext:     dialer.DialContext,
		MaxConnsPerHost: o.pool,
		// As many idle as in use: the pool keeps what it opened.
		MaxIdleConnsPerHost: o.pool,
	}}
}

// result is what a request in flight hands back.
type result struct {
	resp *http.Response
	err  error
}

// start sends a GET in the background; a request that waits for a
// connection blocks there, as it would in a server's handler.
func start(c *http.Client, url string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := c.Get(url)
		ch <- result{resp, err}
	}()
	return ch
}

func leak(o options) error {
	c := client(o)
	var leaked []*http.Response // the bug: bodies kept, never read nor closed
	for i := 0; i < o.maxLeakTry; i++ {
		pending := start(c, o.url)
		var r result
		select {
		case r = <-pending:
		case <-time.After(o.wait):
			if len(leaked) >= o.pool {
				fmt.Printf("dry %d: request %d waited %v for a connection; %d responses leaked\n",
					time.Now().UnixMilli(), i+1, o.wait, len(leaked))
				holdUntilStdinEOF(o.hold)
				return nil
			}
			// Connections are left: a slow answer on a busy machine, not
			// a dry pool. Wait for it.
			select {
			case r = <-pending:
			case <-time.After(30 * time.Second):
				return fmt.Errorf("request %d: no answer after 30s with %d of %d connections leaked", i+1, len(leaked), o.pool)
			}
		}
		if r.err != nil {
			return fmt.Errorf("request %d: %w", i+1, r.err)
		}
		leaked = append(leaked, r.resp)
		fmt.Println("leaked", len(leaked))
		time.Sleep(o.pace)
	}
	return fmt.Errorf("the pool never ran dry: %d requests, %d responses leaked", o.maxLeakTry, len(leaked))
}

func fixed(o options) error {
	c := client(o)
	c.Timeout = 10 * time.Second // a bounded wait, as the runbook asks
	stop := make(chan struct{})
	if o.requests == 0 {
		go func() { holdUntilStdinEOF(o.hold); close(stop) }()
	}
	i := 1
	for ; o.requests == 0 || i <= o.requests; i++ {
		select {
		case <-stop:
			fmt.Println("fixed ok", i-1)
			return nil
		default:
		}
		// A request that waits this long, with every connection released,
		// means the fix does not work; a busy machine is slower than -wait.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := get(ctx, c, o.url)
		cancel()
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		if i%o.idleEvery == 0 {
			time.Sleep(o.idlePause)
		} else {
			time.Sleep(o.pace)
		}
	}
	fmt.Println("fixed ok", i-1)
	return nil
}

// get is the runbook's fix: close the body on every path, and read it to
// the end first so the connection goes back to the pool.
func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// holdUntilStdinEOF keeps the process, and its leaked sockets, until the
// test closes standard input, or hold elapses.
func holdUntilStdinEOF(hold time.Duration) {
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(hold):
	}
}
