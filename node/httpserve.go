package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cyxwiz/cyxwiz/node/rpc"
)

// httpShutdownTimeout bounds a server's graceful shutdown.
const httpShutdownTimeout = 5 * time.Second

// boundHTTP is an HTTP server whose port is bound early, by one service,
// so that a port in use is reported before any swarm work, and served
// later, by another. The API and the metrics are two.
type boundHTTP struct {
	// key names the config key of the address, in errors; what names
	// the server in log lines.
	key, what string
	address   string
	maxConns  int
	log       *slog.Logger

	ln     net.Listener
	http   *http.Server
	served chan struct{}
}

// addr returns the address the port is bound to.
func (b *boundHTTP) addr() string { return b.ln.Addr().String() }

// bind listens on the configured address.
func (b *boundHTTP) bind() error {
	ln, err := net.Listen("tcp", b.address)
	if err != nil {
		return fmt.Errorf("%s %s: %w", b.key, b.address, err)
	}
	b.ln = ln
	return nil
}

// release closes the port of a server that never served; once served,
// the server's shutdown has closed it already.
func (b *boundHTTP) release() {
	b.ln.Close()
}

// serve serves h on the bound port, at most maxConns connections at once,
// until shutdown.
func (b *boundHTTP) serve(h *http.Server) {
	b.http = h
	b.served = make(chan struct{})
	ln := rpc.LimitListener(b.ln, b.maxConns)
	go func() {
		defer close(b.served)
		if err := h.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error(b.what+" server stopped", "error", err)
		}
	}()
}

// shutdown stops the server gracefully and waits for it. Connections
// still busy after httpShutdownTimeout (a client that sends its request
// slowly, or never) are closed: a client must not hold up the daemon's
// stop, nor make it fail.
func (b *boundHTTP) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	var err error
	switch e := b.http.Shutdown(ctx); {
	case errors.Is(e, context.DeadlineExceeded):
		b.log.Warn(b.what+" server: closed connections still busy at shutdown", "after", httpShutdownTimeout)
		b.http.Close()
	case e != nil:
		err = fmt.Errorf("stop %s: %w", b.what, e)
		b.http.Close()
	}
	<-b.served
	return err
}
