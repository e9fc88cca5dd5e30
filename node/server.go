package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cyxwiz/cyxwiz/node/metrics"
	"github.com/cyxwiz/cyxwiz/node/rpc"
)

// apiServer is the local JSON-RPC API. Two services share it: apiPort,
// the first a node starts, binds the port, so that a port in use is
// reported before any swarm work; apiServing, the last, serves it and
// writes DIR/api, so that a client that finds the file finds every
// subsystem started, and is the first closed.
type apiServer struct {
	cfg    APIConfig
	repo   *Repo
	log    *slog.Logger
	rpc    *rpc.Server
	ln     net.Listener
	http   *http.Server
	served chan struct{}
}

// newAPIServer builds the API; m, when not nil, counts its calls.
func newAPIServer(cfg APIConfig, repo *Repo, token string, log *slog.Logger, m *metrics.Metrics) *apiServer {
	opts := rpc.Options{
		Token:           token,
		MaxRequestBytes: cfg.MaxRequestBytes,
		AllowedOrigins:  cfg.AllowedOrigins,
		Logger:          log.With("system", "api"),
	}
	if m != nil {
		opts.Observe = m.ObserveCall
	}
	return &apiServer{cfg: cfg, repo: repo, log: log, rpc: rpc.NewServer(opts)}
}

// addr returns the address the API listens on.
func (a *apiServer) addr() string { return a.ln.Addr().String() }

// apiPort binds the API's port.
type apiPort struct{ *apiServer }

// Start listens on api.addr.
func (p apiPort) Start(context.Context) error {
	ln, err := net.Listen("tcp", p.cfg.Addr)
	if err != nil {
		return fmt.Errorf("api.addr %s: %w", p.cfg.Addr, err)
	}
	p.ln = ln
	return nil
}

// Close releases the port of an API that never served; once served, the
// HTTP server's shutdown has closed it already, and the second close
// only reports that.
func (p apiPort) Close() error {
	p.ln.Close()
	return nil
}

// apiServing serves the API.
type apiServing struct{ *apiServer }

// Start serves the API, then writes DIR/api.
func (s apiServing) Start(context.Context) error {
	s.http = s.rpc.HTTPServer()
	s.served = make(chan struct{})
	ln := rpc.LimitListener(s.ln, s.cfg.MaxConnections)
	go func() {
		defer close(s.served)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server stopped", "error", err)
		}
	}()
	if err := s.repo.WriteAPIAddr(s.addr()); err != nil {
		return errors.Join(err, s.stop())
	}
	return nil
}

// Close removes DIR/api, then stops the server and closes the WebSockets.
func (s apiServing) Close() error {
	var errs []error
	if err := s.repo.RemoveAPIAddr(); err != nil {
		errs = append(errs, fmt.Errorf("remove api file: %w", err))
	}
	return errors.Join(append(errs, s.stop())...)
}

func (s apiServing) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if e := s.http.Shutdown(ctx); e != nil {
		err = fmt.Errorf("stop api: %w", e)
	}
	s.rpc.Close()
	<-s.served
	return err
}
