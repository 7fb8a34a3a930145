package main

import (
	"log/slog"
	"os"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	sloggokit "github.com/tjhop/slog-gokit"
)

// toolkitDialect passes on the lines of exporter-toolkit's slog logger
// (bridged by sloggokit as level, caller, time, msg, attributes, the time
// in local time) in the program's own dialect: level, ts in UTC, caller,
// msg, attributes. Every line then reads the same whichever library wrote
// it (STYLE.md, habit 18).
type toolkitDialect struct {
	next log.Logger
}

func (d toolkitDialect) Log(keyvals ...any) error {
	out := make([]any, 0, len(keyvals))
	var lvl, ts, caller []any
	rest := keyvals
	// sloggokit puts level, caller and time before msg; attributes after
	// it keep their names even if one is called "time".
	for len(rest) >= 2 && rest[0] != "msg" {
		k, v := rest[0], rest[1]
		switch {
		case k == level.Key():
			lvl = []any{k, v}
		case k == "caller":
			caller = []any{k, v}
		case k == "time":
			if t, ok := v.(time.Time); ok {
				v = t.UTC()
			}
			ts = []any{"ts", v}
		default:
			out = append(out, k, v)
		}
		rest = rest[2:]
	}
	out = append(append(append(append(lvl, ts...), caller...), out...), rest...)
	return d.next.Log(out...)
}

// newLoggers returns the go-kit logger the program logs with (with time
// stamp and caller) and an slog bridge for exporter-toolkit, built on the
// undecorated logger because the bridge adds its own time and caller, which
// toolkitDialect renames and orders as the program's own.
func newLoggers(lvl, format string) (log.Logger, *slog.Logger) {
	w := log.NewSyncWriter(os.Stderr)
	var base log.Logger
	if format == "json" {
		base = log.NewJSONLogger(w)
	} else {
		base = log.NewLogfmtLogger(w)
	}
	allow := map[string]level.Option{"debug": level.AllowDebug(), "info": level.AllowInfo(), "warn": level.AllowWarn(), "error": level.AllowError()}[lvl]
	base = level.NewFilter(base, allow)
	logger := log.With(base, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller)
	slogLevel := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[lvl]
	return logger, slog.New(sloggokit.NewGoKitHandler(toolkitDialect{base}, slogLevel))
}
