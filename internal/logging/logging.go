// Package logging sets up the daemon's slog logger and bridges the logs of
// libp2p and the IPFS libraries into it.
package logging

import (
	"context"
	"io"
	"log/slog"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap/zapcore"
)

// New returns a logger writing text or JSON lines to w at level, and routes
// the logs of libp2p and the IPFS libraries (go-log) into the same output
// at libLevel, tagged system=libp2p. It also becomes slog's default.
func New(w io.Writer, format string, level, libLevel slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: min(level, libLevel)}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	lib := MinLevel(h.WithAttrs([]slog.Attr{slog.String("system", "libp2p")}), libLevel)
	gologshim.SetDefaultHandler(lib)
	// SetupLogging sets the level of loggers created later too; the primary
	// core it opens on stderr is then replaced by ours.
	golog.SetupLogging(golog.Config{Format: golog.PlaintextOutput, Stderr: true, Level: zapLevel(libLevel)})
	golog.SetPrimaryCore(&zapSlogCore{h: lib})
	log := slog.New(MinLevel(h, level))
	slog.SetDefault(log)
	return log
}

// MinLevel filters h to records at or above level.
func MinLevel(h slog.Handler, level slog.Level) slog.Handler {
	return levelFilter{Handler: h, min: level}
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{Handler: f.Handler.WithAttrs(a), min: f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{Handler: f.Handler.WithGroup(name), min: f.min}
}

func zapLevel(l slog.Level) golog.LogLevel {
	switch {
	case l <= slog.LevelDebug:
		return golog.LevelDebug
	case l <= slog.LevelInfo:
		return golog.LevelInfo
	case l <= slog.LevelWarn:
		return golog.LevelWarn
	default:
		return golog.LevelError
	}
}

// zapSlogCore is a zapcore.Core that writes every entry to a slog handler.
type zapSlogCore struct {
	h     slog.Handler
	attrs []slog.Attr
}

func (c *zapSlogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c *zapSlogCore) With(fields []zapcore.Field) zapcore.Core {
	return &zapSlogCore{h: c.h, attrs: append(append([]slog.Attr{}, c.attrs...), fieldAttrs(fields)...)}
}

func (c *zapSlogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *zapSlogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	r.AddAttrs(slog.String("logger", e.LoggerName))
	r.AddAttrs(c.attrs...)
	r.AddAttrs(fieldAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *zapSlogCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func fieldAttrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		out = append(out, slog.Any(k, v))
	}
	return out
}
