package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cyxwiz/cyxwiz/node/metrics"
	"github.com/cyxwiz/cyxwiz/node/rpc"
)

// apiServer is the local JSON-RPC API. Two services share it: apiPort,
// the first a node starts, binds the port, so that a port in use is
// reported before any swarm work; apiServing, the last, serves it and
// writes DIR/api, so that a client that finds the file finds every
// subsystem started, and is the first closed.
type apiServer struct {
	boundHTTP
	cfg  APIConfig
	repo *Repo
	rpc  *rpc.Server
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
	return &apiServer{
		boundHTTP: boundHTTP{key: "api.addr", what: "api", address: cfg.Addr, maxConns: cfg.MaxConnections, log: log},
		cfg:       cfg, repo: repo, rpc: rpc.NewServer(opts),
	}
}

// apiPort binds the API's port.
type apiPort struct{ *apiServer }

// Start listens on api.addr.
func (p apiPort) Start(context.Context) error { return p.bind() }

// Close releases the port of an API that never served.
func (p apiPort) Close() error {
	p.release()
	return nil
}

// apiServing serves the API.
type apiServing struct{ *apiServer }

// Start serves the API, then writes DIR/api.
func (s apiServing) Start(context.Context) error {
	s.serve(s.rpc.HTTPServer())
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
	err := s.shutdown()
	s.rpc.Close()
	return err
}
