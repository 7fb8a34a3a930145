// Command server is the upstream of the incident replay (make incident): a
// keep-alive HTTP server on loopback that closes connections left idle for
// -idle-timeout, as nginx, Node.js or a load balancer do. A client that
// never releases its responses keeps those connections leased, so each one
// the server closes stays in CLOSE_WAIT on the client's side.
//
//	server -listen 127.0.0.1:0 -listen 127.0.0.1:0 -idle-timeout 2s
//
// It prints "listening ADDR" for each address, then "ready", and serves
// until SIGTERM, standard input reaching EOF (so it dies with the test that
// started it), or -hold elapsing.
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
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type addrs []string

func (a *addrs) String() string     { return strings.Join(*a, ",") }
func (a *addrs) Set(v string) error { *a = append(*a, v); return nil }

func main() {
	var listen addrs
	flag.Var(&listen, "listen", "loopback address to listen on (repeatable; port 0 picks a free one)")
	idle := flag.Duration("idle-timeout", 2*time.Second, "close keep-alive connections idle for this long")
	size := flag.Int("body-bytes", 512, "size of each response body")
	hold := flag.Duration("hold", 15*time.Minute, "exit after this long whatever happens")
	flag.Parse()
	if err := run(listen, *idle, *size, *hold); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(listen []string, idle time.Duration, size int, hold time.Duration) error {
	if len(listen) == 0 {
		return errors.New("no -listen address")
	}
	if idle <= 0 || size < 0 {
		return fmt.Errorf("-idle-timeout %v and -body-bytes %d: want a positive timeout and a size >= 0", idle, size)
	}
	body := []byte(strings.Repeat("x", size))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			_, _ = w.Write(body)
		}),
		IdleTimeout:       idle,
		ReadHeaderTimeout: 10 * time.Second,
	}
	errs := make(chan error, len(listen))
	for _, a := range listen {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("-listen %q: %w", a, err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("-listen %q: not a loopback address", a)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		fmt.Println("listening", l.Addr())
		go func() { errs <- srv.Serve(l) }()
	}
	fmt.Println("ready")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	case <-time.After(hold):
	case err := <-errs:
		return err
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	return nil
}
