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
// on a listener of its own, from the first service New starts to the
// last Close stops: a scrape during start or shutdown sees what is there.
type metricsServer struct {
	cfg     MetricsConfig
	metrics *metrics.Metrics
	log     *slog.Logger
	ln      net.Listener
	http    *http.Server
	served  chan struct{}
}

// Start listens on metrics.addr and serves.
func (s *metricsServer) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("metrics.addr %s: %w", s.cfg.Addr, err)
	}
	loopback := metrics.Loopback(ln.Addr().String())
	if !loopback {
		s.log.Warn("metrics served to other machines", "addr", ln.Addr().String())
	}
	s.ln = ln
	s.http = s.metrics.Server(s.log, loopback)
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		if err := s.http.Serve(rpc.LimitListener(ln, metrics.MaxConnections)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "error", err)
		}
	}()
	return nil
}

// addr returns the address the metrics are served on.
func (s *metricsServer) addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *metricsServer) Close() error {
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
