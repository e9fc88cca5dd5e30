// Package logging sets up the daemon's slog logger and bridges into it
// every other logger that the daemon's libraries write to, so that each
// line follows the chosen format (text or JSON):
//
//   - go-log (the IPFS libraries, boxo, the DHT, fx inside libp2p): its
//     primary zap core is replaced by one that writes to our handler;
//   - libp2p's slog loggers (gologshim), and gossipsub's through the
//     logger that package p2p hands it (see Library);
//   - the standard library's log package (quic-go, net/http, multiaddr):
//     its output is parsed into records at warn, system=log;
//   - OpenTelemetry's internal logger;
//   - under JSON, whatever writes to os.Stderr itself (recovered panics'
//     stacks in libp2p and yamux): os.Stderr becomes a pipe whose lines are
//     turned into records at warn, system=stderr. The Go runtime's own
//     crash reports still go to file descriptor 2 as they are.
//
// Library records are tagged system=libp2p; a library's own system field
// becomes subsystem, so that a JSON object has each key once. The bridges
// are process-wide and installed once; each call to New points them at its
// handler.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
)

// New returns a logger writing text or JSON lines to w at level, and routes
// the libraries' logs into the same output: go-log's and libp2p's at
// libLevel, tagged system=libp2p, and those of the log package and of
// os.Stderr at level (see the package comment). It also becomes slog's
// default.
func New(w io.Writer, format string, level, libLevel slog.Level) *slog.Logger {
	if w == os.Stderr {
		w = realStderr() // never write into our own pipe
	}
	opts := &slog.HandlerOptions{Level: min(level, libLevel)}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	log := slog.New(MinLevel(h, level))
	bridge(h, level, libLevel)
	if format == "json" {
		captureStderr()
	}
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
