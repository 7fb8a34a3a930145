package tables

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"golang.org/x/sys/unix"
)

// Table source kinds, the values of --collector.tcp.source.
const (
	SourceAuto    = "auto"
	SourceNetlink = "netlink"
	SourceProcfs  = "procfs"
)

// SourceKinds lists the valid values of --collector.tcp.source.
var SourceKinds = []string{SourceAuto, SourceNetlink, SourceProcfs}

// probeTimeout bounds the startup check that sock_diag answers.
const probeTimeout = 5 * time.Second

// NewTableSource returns the table source kind names:
//
//   - procfs reads /proc/net/tcp and /proc/net/tcp6 under procRoot;
//   - netlink dumps the sockets of the exporter's own network namespace
//     through sock_diag (procRoot is not used);
//   - auto uses netlink when procRoot is a procfs mount (so both would
//     show the same namespace) and sock_diag answers, and procfs otherwise;
//     if netlink fails later, it switches to procfs for good. Each choice
//     away from netlink is logged once.
func NewTableSource(kind, procRoot string, logger log.Logger) (TableSource, error) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	switch kind {
	case SourceProcfs:
		return NewProcfsTables(procRoot), nil
	case SourceNetlink:
		return NewNetlinkTables(), nil
	case SourceAuto:
	default:
		return nil, fmt.Errorf("--collector.tcp.source=%q: must be one of auto, netlink, procfs", kind)
	}
	procfs := NewProcfsTables(procRoot)
	if !isProcfsMount(procRoot) {
		// A fixture tree or a copy: netlink would show this host instead.
		level.Debug(logger).Log("msg", "reading the TCP tables from text files, not netlink: --path.procfs is not a procfs mount", "path", procRoot)
		return procfs, nil
	}
	nl := NewNetlinkTables()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := nl.probe(ctx); err != nil {
		level.Warn(logger).Log("msg", "netlink sock_diag does not answer; reading the TCP tables from "+procRoot+"/net/tcp and tcp6 instead", "err", err)
		return procfs, nil
	}
	return &fallbackTables{primary: nl, fallback: procfs, logger: logger}, nil
}

// CheckProcRoot tells whether procRoot can serve the exporter with the
// table source kind, so that a wrong --path.procfs stops the start instead
// of serving zeros: procRoot must be a directory the exporter can list (the
// process walk and the namespaces read its PID folders; a tree without any
// is valid, as a host whose sockets no process holds), and, unless the
// source is netlink alone, procRoot/net/tcp must be readable (auto falls
// back to it).
func CheckProcRoot(kind, procRoot string) error {
	f, err := os.Open(procRoot)
	if err == nil {
		_, err = f.ReadDir(1)
		f.Close()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("--path.procfs=%q: cannot list it: %w", procRoot, err)
	}
	if kind == SourceNetlink {
		return nil
	}
	path := filepath.Join(procRoot, "net", "tcp")
	t, err := os.Open(path)
	if err == nil {
		_, err = t.Read(make([]byte, 1))
		t.Close()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("--path.procfs=%q: cannot read %s, the TCP table of --collector.tcp.source=%s: %w", procRoot, path, kind, err)
	}
	return nil
}

// isProcfsMount tells whether path is a mounted procfs.
func isProcfsMount(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}

// ErrRestartReading tells the reader that the sockets streamed so far were
// from a source that failed midway: it must discard them and stream again,
// now from the fallback.
var ErrRestartReading = errors.New("the table source changed during the reading; read again")

// fallbackTables reads from primary until it fails for a reason other than
// the scrape's deadline, then from fallback for good.
type fallbackTables struct {
	primary, fallback TableSource
	logger            log.Logger
	failed            atomic.Bool
}

func (f *fallbackTables) Stream(ctx context.Context, fn func(*Socket)) error {
	if !f.failed.Load() {
		streamed := 0
		err := f.primary.Stream(ctx, func(s *Socket) { streamed++; fn(s) })
		if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return err
		}
		if f.failed.CompareAndSwap(false, true) {
			level.Warn(f.logger).Log("msg", "netlink sock_diag failed; reading the TCP tables from procfs from now on", "err", err)
		}
		if streamed > 0 {
			// Some sockets were counted already: the reading starts over.
			return fmt.Errorf("%w: %w", ErrRestartReading, err)
		}
	}
	return f.fallback.Stream(ctx, fn)
}

// KernelAger is a table source that can give CLOSE_WAIT sockets their age
// from the kernel's clock (netlink; the wrappers pass it on).
type KernelAger interface {
	// SetAgesInDump: the next readings list CLOSE_WAIT sockets in a dump of
	// their own, each with its age (on), or in the common dump, without.
	SetAgesInDump(on bool)
	// QueryAges looks up sockets of the exporter's own network namespace
	// one by one and fills in their ages.
	QueryAges(ctx context.Context, socks []*Socket) error
}

// AgerOf returns src's kernelAger, if it has one that works now.
func AgerOf(src TableSource) (KernelAger, bool) {
	switch s := src.(type) {
	case *fallbackTables:
		if s.failed.Load() {
			return nil, false
		}
		return AgerOf(s.primary)
	case *NamespaceTables:
		return AgerOf(s.own)
	case KernelAger:
		return s, true
	}
	return nil, false
}

// The sources that can give kernel ages say so at compile time.
var _ KernelAger = (*NetlinkTables)(nil)
