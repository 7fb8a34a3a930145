package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The cost of telling TCP sockets from the others (issue 17): the bench
// process holds unixSockets unix sockets (socket pairs) beside the TCP
// connections its helpers hold, so that every walk of /proc/PID/fd meets
// them, and, given -base-exporter, an exporter built from an earlier
// commit is scraped in the same rounds as this one, for an interleaved
// A/B comparison (-benchstat-out writes both sides for benchstat).

// toolBase is the exporter of -base-exporter, run as toolNetlinkProc is.
const toolBase = "netlink + process, base"

// holdUnix opens n unix sockets in this process (n/2 pairs), raising the
// fd limit as needed.
func (b *bench) holdUnix(n int) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if want := uint64(n + 1024); lim.Cur < want {
		lim.Cur = min(max(want, lim.Cur), lim.Max)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raising the fd limit for %d unix sockets: %w", n, err)
		}
	}
	for len(b.unixFDs) < n {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("holding %d unix sockets: %w", n, err)
		}
		b.unixFDs = append(b.unixFDs, pair[0], pair[1])
	}
	b.report.unixSockets = len(b.unixFDs)
	return nil
}

func (b *bench) releaseUnix() {
	for _, fd := range b.unixFDs {
		unix.Close(fd)
	}
	b.unixFDs = nil
}

// writeBenchstat appends the samples of this exporter and of the base one
// at one size, as Go benchmark lines, to OUT.new and OUT.base.
func (b *bench) writeBenchstat(res *sizeResult) error {
	if b.o.benchstatOut == "" {
		return nil
	}
	for tool, suffix := range map[string]string{toolNetlinkProc: ".new", toolBase: ".base"} {
		f, err := os.OpenFile(b.o.benchstatOut+suffix, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		var sb strings.Builder
		for _, d := range res.samples[tool] {
			fmt.Fprintf(&sb, "BenchmarkScrape/sockets=%d/unix=%d 1 %d ns/op %d peak-RSS-bytes\n", res.target, b.report.unixSockets, d.Nanoseconds(), res.peakRSS[tool])
		}
		_, err = f.WriteString(sb.String())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// heldClosedSection is the report's section on the detection's cost.
func (r *report) heldClosedSection() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("## Sockets held after the kernel dropped them: the cost of the detection\n\n")
	w("The bench process held %d unix sockets beside the TCP connections, so every walk of /proc/PID/fd met them; the exporter tells them from TCP sockets by their `system.sockprotoname` attribute, once per inode. Medians of the whole scrape, ms; peak RSS, MiB.\n\n", r.unixSockets)
	w("| sockets | in CLOSE_WAIT | %s | peak RSS |", toolNetlinkProc)
	base := false
	for _, s := range r.sizes {
		if len(s.samples[toolBase]) > 0 {
			base = true
		}
	}
	if base {
		w(" %s | peak RSS | time vs base |", toolBase)
	}
	w("\n|---:|---:|---:|---:|")
	if base {
		w("---:|---:|---:|")
	}
	w("\n")
	for _, s := range r.sizes {
		v, _ := s.median(toolNetlinkProc)
		w("| %d | %d | %s | %.1f |", s.sockets, s.closeWait, ms(v), float64(s.peakRSS[toolNetlinkProc])/(1<<20))
		if base {
			bv, ok := s.median(toolBase)
			if ok && bv > 0 {
				w(" %s | %.1f | %+.1f %% |", ms(bv), float64(s.peakRSS[toolBase])/(1<<20), (v/bv-1)*100)
			} else {
				w(" | | |")
			}
		}
		w("\n")
	}
	w("\n")
	return b.String()
}
