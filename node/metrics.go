package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/node/metrics"
	"github.com/cyxwiz/cyxwiz/node/rpc"
)

// metricsServer serves the node's metrics at /metrics on metrics.addr,
// on a listener of its own. Like the API, two services share it:
// metricsPort, among the first New starts, binds the port, so that a port
// in use is reported before any swarm work; metricsServing, started by
// Start just before the API, serves it and is closed just after the API,
// before the subsystems whose counts it reads.
type metricsServer struct {
	cfg     MetricsConfig
	metrics *metrics.Metrics
	log     *slog.Logger
	ln      net.Listener
	http    *http.Server
	served  chan struct{}
}

// addr returns the address the metrics are served on.
func (s *metricsServer) addr() string { return s.ln.Addr().String() }

// metricsPort binds the metrics port.
type metricsPort struct{ *metricsServer }

// Start listens on metrics.addr.
func (p metricsPort) Start(context.Context) error {
	ln, err := net.Listen("tcp", p.cfg.Addr)
	if err != nil {
		return fmt.Errorf("metrics.addr %s: %w", p.cfg.Addr, err)
	}
	p.ln = ln
	return nil
}

// Close releases the port of a server that never served; once served,
// the server's shutdown has closed it already.
func (p metricsPort) Close() error {
	p.ln.Close()
	return nil
}

// metricsServing serves the metrics.
type metricsServing struct{ *metricsServer }

// Start serves on the bound port.
func (s metricsServing) Start(context.Context) error {
	loopback := metrics.Loopback(s.addr())
	if !loopback {
		s.log.Warn("metrics served to other machines", "addr", s.addr())
	}
	s.http = s.metrics.Server(s.log, loopback)
	s.served = make(chan struct{})
	ln := rpc.LimitListener(s.ln, metrics.MaxConnections)
	go func() {
		defer close(s.served)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "error", err)
		}
	}()
	return nil
}

// Close stops the server.
func (s metricsServing) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if e := s.http.Shutdown(ctx); e != nil {
		err = fmt.Errorf("stop metrics: %w", e)
		s.http.Close()
	}
	<-s.served
	return err
}

// jobLister is the part of the jobs engine seedJobMetrics reads.
type jobLister interface {
	List() ([]*jobs.Job, error)
	Provided() ([]*jobs.Job, error)
}

// seedJobMetrics counts the unfinished jobs in the store before the
// engine resumes them.
func seedJobMetrics(m *metrics.Metrics, e jobLister, log *slog.Logger) {
	for _, list := range []func() ([]*jobs.Job, error){e.List, e.Provided} {
		js, err := list()
		if err != nil {
			log.Warn("count stored jobs for metrics", "error", err)
			continue
		}
		m.SeedJobs(js)
	}
}
