package logging

import (
	"context"
	"log/slog"

	golog "github.com/ipfs/go-log/v2"
	"go.uber.org/zap/zapcore"
)

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
	return renameSystem(out)
}
