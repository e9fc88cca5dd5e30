package node

import (
	"context"
	"log/slog"

	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/node/metrics"
)

// metricsServer serves the node's metrics at /metrics on metrics.addr,
// on a listener of its own. Like the API, two services share it:
// metricsPort, among the first New starts, binds the port, so that a port
// in use is reported before any swarm work; metricsServing, started by
// Start just before the API, serves it and is closed just after the API,
// before the subsystems whose counts it reads.
type metricsServer struct {
	boundHTTP
	metrics *metrics.Metrics
}

// newMetricsServer builds the metrics server of cfg, serving m.
func newMetricsServer(cfg MetricsConfig, m *metrics.Metrics, log *slog.Logger) *metricsServer {
	return &metricsServer{
		boundHTTP: boundHTTP{key: "metrics.addr", what: "metrics", address: cfg.Addr, maxConns: metrics.MaxConnections, log: log},
		metrics:   m,
	}
}

// metricsPort binds the metrics port.
type metricsPort struct{ *metricsServer }

// Start listens on metrics.addr.
func (p metricsPort) Start(context.Context) error { return p.bind() }

// Close releases the port of a server that never served.
func (p metricsPort) Close() error {
	p.release()
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
	s.serve(s.metrics.Server(s.log, loopback))
	return nil
}

// Close stops the server.
func (s metricsServing) Close() error { return s.shutdown() }

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
