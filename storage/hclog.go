package storage

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter bridges raft's hclog.Logger onto a *slog.Logger so raft's
// output joins the node's JSON log stream instead of being printed raw.
// Levels map Trace→Debug-4, Debug, Info, Warn, Error; SetLevel only filters
// further on top of the slog handler's own level.
type hclogAdapter struct {
	l       *slog.Logger
	name    string
	implied []interface{}
	level   hclog.Level
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHclogAdapter(l *slog.Logger, name string) hclog.Logger {
	return &hclogAdapter{l: l, name: name, level: hclog.Trace}
}

func slogLevel(lv hclog.Level) slog.Level {
	switch lv {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...interface{}) {
	if level == hclog.Off || level < a.level {
		return
	}
	sl := slogLevel(level)
	if !a.l.Enabled(context.Background(), sl) {
		return
	}
	attrs := make([]slog.Attr, 0, 1+(len(a.implied)+len(args))/2)
	if a.name != "" {
		attrs = append(attrs, slog.String("logger", a.name))
	}
	attrs = appendArgs(attrs, a.implied)
	attrs = appendArgs(attrs, args)
	a.l.LogAttrs(context.Background(), sl, msg, attrs...)
}

// ownKeys are keys the node's own loggers set: raft's keys of the same name are
// prefixed with "raft_" so no JSON line repeats a key.
var ownKeys = map[string]bool{"node": true, "city": true, "component": true, "logger": true, "raft_server": true,
	"time": true, "level": true, "msg": true}

// appendArgs turns hclog key/value pairs into slog attributes; values that
// are errors or Stringers become strings so the JSON handler renders them.
func appendArgs(attrs []slog.Attr, args []interface{}) []slog.Attr {
	for i := 0; i < len(args); i += 2 {
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		if ownKeys[key] {
			key = "raft_" + key // raft's "node" is not the node's
		}
		if i+1 >= len(args) {
			attrs = append(attrs, slog.String("EXTRA_VALUE_AT_END", key))
			break
		}
		var v slog.Value
		switch x := args[i+1].(type) {
		case error:
			v = slog.StringValue(x.Error())
		case fmt.Stringer:
			v = slog.StringValue(x.String())
		case hclog.Format:
			if len(x) > 0 {
				v = slog.StringValue(fmt.Sprintf(fmt.Sprint(x[0]), x[1:]...))
			}
		default:
			v = slog.AnyValue(x)
		}
		attrs = append(attrs, slog.Attr{Key: key, Value: v})
	}
	return attrs
}

func (a *hclogAdapter) Trace(msg string, args ...interface{}) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...interface{}) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...interface{})  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...interface{})  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...interface{}) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(lv hclog.Level) bool {
	return lv >= a.level && a.l.Enabled(context.Background(), slogLevel(lv))
}

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []interface{} { return a.implied }

func (a *hclogAdapter) With(args ...interface{}) hclog.Logger {
	c := *a
	c.implied = append(append([]interface{}{}, a.implied...), args...)
	return &c
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

func (a *hclogAdapter) SetLevel(level hclog.Level) { a.level = level }
func (a *hclogAdapter) GetLevel() hclog.Level      { return a.level }

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		msg := strings.TrimSpace(string(p))
		lv := hclog.Info
		switch {
		case strings.HasPrefix(msg, "[ERR"):
			lv = hclog.Error
		case strings.HasPrefix(msg, "[WARN"):
			lv = hclog.Warn
		case strings.HasPrefix(msg, "[DEBUG"):
			lv = hclog.Debug
		case strings.HasPrefix(msg, "[TRACE"):
			lv = hclog.Trace
		}
		a.Log(lv, msg)
		return len(p), nil
	})
}

type writerFunc func(p []byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }
