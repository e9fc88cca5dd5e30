package logging

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.opentelemetry.io/otel"
)

// The handlers the bridges write to; New stores new ones.
var (
	libTarget    atomic.Pointer[slog.Handler] // go-log, gologshim, OpenTelemetry
	stdlogTarget atomic.Pointer[slog.Handler] // the log package
	stderrTarget atomic.Pointer[slog.Handler] // os.Stderr
	installOnce  sync.Once
)

// Library returns a logger for a library that takes one (gossipsub does),
// named system like libp2p's own: its records go where go-log's and
// libp2p's do, at their level, tagged logger=system.
func Library(system string) *slog.Logger {
	return gologshim.Logger(system)
}

// bridge points every bridge at h and installs them on the first call.
func bridge(h slog.Handler, level, libLevel slog.Level) {
	lib := MinLevel(h.WithAttrs([]slog.Attr{slog.String("system", "libp2p")}), libLevel)
	std := MinLevel(h.WithAttrs([]slog.Attr{slog.String("system", "log")}), level)
	stderr := MinLevel(h.WithAttrs([]slog.Attr{slog.String("system", "stderr")}), level)
	libTarget.Store(&lib)
	stdlogTarget.Store(&std)
	stderrTarget.Store(&stderr)

	// SetupLogging sets the level of go-log's loggers, those created later
	// included; it also opens a primary core on stderr, replaced by ours.
	golog.SetupLogging(golog.Config{Format: golog.PlaintextOutput, Stderr: true, Level: zapLevel(libLevel)})
	installOnce.Do(func() {
		// gologshim resolves a logger's handler once, at its first use:
		// it gets one that follows libTarget.
		gologshim.SetDefaultHandler(&switchHandler{target: &libTarget})
		otel.SetLogger(logr.FromSlogHandler(&switchHandler{target: &libTarget}))
	})
	golog.SetPrimaryCore(&zapSlogCore{h: &switchHandler{target: &libTarget}})

	// slog.SetDefault sends the log package to the default handler at
	// info; its lines are the libraries' (ours log through slog), so they
	// go to their own writer instead, at warn.
	slog.SetDefault(slog.New(MinLevel(h, level)))
	log.SetFlags(0)
	log.SetOutput(&lineWriter{target: &stdlogTarget})
}

// switchHandler is a slog.Handler that writes to the handler its target
// points to at the time of each record, with its own attributes and groups
// applied: libraries that keep the handler they were given follow New's
// later calls.
type switchHandler struct {
	target *atomic.Pointer[slog.Handler]
	ops    []func(slog.Handler) slog.Handler
}

func (s *switchHandler) current() slog.Handler {
	h := *s.target.Load()
	for _, op := range s.ops {
		h = op(h)
	}
	return h
}

func (s *switchHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return (*s.target.Load()).Enabled(ctx, l)
}

func (s *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	own := false
	r.Attrs(func(a slog.Attr) bool {
		own = a.Key == "system"
		return !own
	})
	if own {
		renamed := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool {
			renamed.AddAttrs(renameSystem([]slog.Attr{a})...)
			return true
		})
		r = renamed
	}
	return s.current().Handle(ctx, r)
}

// renameSystem renames the attributes keyed system, which the target's
// system=libp2p already uses, to subsystem: a JSON object has each key
// once.
func renameSystem(attrs []slog.Attr) []slog.Attr {
	out, copied := attrs, false
	for i, a := range attrs {
		if a.Key != "system" {
			continue
		}
		if !copied { // the caller's slice stays as it is
			out, copied = append([]slog.Attr(nil), attrs...), true
		}
		out[i].Key = "subsystem"
	}
	return out
}

func (s *switchHandler) with(op func(slog.Handler) slog.Handler) *switchHandler {
	return &switchHandler{target: s.target, ops: append(s.ops[:len(s.ops):len(s.ops)], op)}
}

func (s *switchHandler) WithAttrs(a []slog.Attr) slog.Handler {
	if len(a) == 0 {
		return s
	}
	a = renameSystem(a)
	return s.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(a) })
}

func (s *switchHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return s
	}
	return s.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

// lineWriter turns each line written to it into a record at warn for the
// handler its target points to: the log package calls Write once a line,
// the stderr pipe's reader once a line too.
type lineWriter struct {
	target *atomic.Pointer[slog.Handler]
}

func (w *lineWriter) Write(p []byte) (int, error) {
	h := *w.target.Load()
	ctx := context.Background()
	if !h.Enabled(ctx, slog.LevelWarn) {
		return len(p), nil
	}
	for line := range bytes.Lines(p) {
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := h.Handle(ctx, slog.NewRecord(time.Now(), slog.LevelWarn, string(line), 0)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
