package owners

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/tcpstate-exporter/tcpstate_exporter/collector/tables"
)

// Unlimited is the soft limit of a process whose /proc/PID/limits reads
// "unlimited" for open files (RLIM_INFINITY, which Linux refuses for
// RLIMIT_NOFILE: seen only in hand-made trees).
const Unlimited = math.MaxInt64

// errNoOpenFilesLine: the limits file has no "Max open files" line.
var errNoOpenFilesLine = errors.New(`no "Max open files" line`)

// parseMaxOpenFiles returns the soft limit on open files (RLIMIT_NOFILE,
// the one EMFILE obeys) from the text of a /proc/PID/limits file:
//
//	Limit                     Soft Limit           Hard Limit           Units
//	Max open files            1024                 524288               files
//
// Errors quote the bad line and its number; the caller adds the file.
func parseMaxOpenFiles(b []byte) (int64, error) {
	const name = "Max open files"
	for n := 1; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		rest, ok := bytes.CutPrefix(line, []byte(name))
		if !ok {
			continue
		}
		f := tables.Fields{Rest: rest}
		soft, _ := f.Next()
		hard, _ := f.Next()
		units, _ := f.Next()
		if len(soft) == 0 || len(hard) == 0 || string(units) != "files" {
			return 0, fmt.Errorf("line %d: %q: want %q, a soft and a hard limit, and \"files\"", n, line, name)
		}
		if string(soft) == "unlimited" {
			return Unlimited, nil
		}
		v, ok := tables.ParseDec(soft)
		if !ok || v > math.MaxInt64 {
			return 0, fmt.Errorf("line %d: soft limit %q is not a number", n, soft)
		}
		return int64(v), nil
	}
	return 0, errNoOpenFilesLine
}
