// Package metrics holds one node's Prometheus collectors and serves them
// as Prometheus text at /metrics. Each node has a registry of its own, so
// that many nodes in one process (tests, devnets) do not collide; the
// subsystems report to it through narrow hooks of their own packages
// (jobs.Metrics, content.Params.ObserveFetch, rpc.Options.Observe, a
// wrapped ledger), so that none of them imports Prometheus but the host.
//
// No label takes a peer ID, job ID or other value a peer chooses: label
// values are roles, states, causes, result kinds and the API's registered
// method names. docs/metrics.md lists every metric.
package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric of CyxWiz's own.
const Namespace = "cyxwiz"

// Metrics is one node's registry and the collectors the node feeds.
type Metrics struct {
	reg *prometheus.Registry

	auctions     prometheus.Counter
	bidsReceived *prometheus.CounterVec
	bidsSent     *prometheus.CounterVec
	awards       *prometheus.CounterVec
	reauctions   *prometheus.CounterVec
	transitions  *prometheus.CounterVec
	finished     *prometheus.CounterVec
	active       *prometheus.GaugeVec
	durations    *prometheus.HistogramVec
	escrows      *prometheus.CounterVec

	fetches *prometheus.HistogramVec

	ledgerCalls  *prometheus.CounterVec
	ledgerErrors *prometheus.CounterVec

	rpcCalls    *prometheus.CounterVec
	rpcErrors   *prometheus.CounterVec
	rpcDuration *prometheus.HistogramVec

	inferCalls    *prometheus.CounterVec
	inferExamples prometheus.Counter
	inferDuration *prometheus.HistogramVec
	inferBatches  prometheus.Counter
	inferEarned   prometheus.Counter
}

// New returns the collectors of a node of the given version, registered
// on a new registry with the Go runtime's and the process's collectors.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &Metrics{
		reg: reg,
		auctions: f.counter(prometheus.CounterOpts{Subsystem: "market", Name: "auctions_total",
			Help: "Auctions this node opened as a requester (one per announcement of a job)."}),
		bidsReceived: f.counterVec(prometheus.CounterOpts{Subsystem: "market", Name: "bids_received_total",
			Help: "Bids that arrived in this node's open auctions, by result (accepted, refused)."}, "result"),
		bidsSent: f.counterVec(prometheus.CounterOpts{Subsystem: "market", Name: "bids_sent_total",
			Help: "Bids this node sent as a provider, by result (delivered, failed)."}, "result"),
		awards: f.counterVec(prometheus.CounterOpts{Subsystem: "market", Name: "awards_total",
			Help: "Awards this node offered to bidders, by result (taken, refused)."}, "result"),
		reauctions: f.counterVec(prometheus.CounterOpts{Subsystem: "market", Name: "reauctions_total",
			Help: "Times a job of this node went back to bidding, by cause."}, "cause"),
		transitions: f.counterVec(prometheus.CounterOpts{Subsystem: "jobs", Name: "transitions_total",
			Help: "Job state changes, by role (requester, provider) and the state entered."}, "role", "state"),
		finished: f.counterVec(prometheus.CounterOpts{Subsystem: "jobs", Name: "finished_total",
			Help: "Jobs that reached a final state, by role and state (succeeded, failed, cancelled)."}, "role", "state"),
		active: f.gaugeVec(prometheus.GaugeOpts{Subsystem: "jobs", Name: "active",
			Help: "Jobs not yet final, by role and state."}, "role", "state"),
		durations: f.histogramVec(prometheus.HistogramOpts{Subsystem: "jobs", Name: "duration_seconds",
			Help:    "Time from a job's creation to its final state, by role and final state.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 14)}, "role", "state"),
		escrows: f.counterVec(prometheus.CounterOpts{Subsystem: "settlement", Name: "escrows_total",
			Help: "Escrows of this node's jobs (as requester) entering each state."}, "state"),
		fetches: f.histogramVec(prometheus.HistogramOpts{Subsystem: "content", Name: "fetch_duration_seconds",
			Help:    "Time to fetch a DAG into the store, by result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10)}, "result"),
		ledgerCalls: f.counterVec(prometheus.CounterOpts{Subsystem: "settlement", Name: "ledger_calls_total",
			Help: "Calls to the ledger, by operation."}, "op"),
		ledgerErrors: f.counterVec(prometheus.CounterOpts{Subsystem: "settlement", Name: "ledger_errors_total",
			Help: "Ledger calls that returned an error, by operation."}, "op"),
		rpcCalls: f.counterVec(prometheus.CounterOpts{Subsystem: "rpc", Name: "calls_total",
			Help: "Local API calls, by method (\"unknown\" for names that are not methods)."}, "method"),
		rpcErrors: f.counterVec(prometheus.CounterOpts{Subsystem: "rpc", Name: "errors_total",
			Help: "Local API calls that returned an error, by method."}, "method"),
		rpcDuration: f.histogramVec(prometheus.HistogramOpts{Subsystem: "rpc", Name: "call_duration_seconds",
			Help:    "Time to serve one local API call, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, "method"),
		inferCalls: f.counterVec(prometheus.CounterOpts{Subsystem: "serving", Name: "calls_total",
			Help: "Calls to the models this node serves, by result (ok, rejected, full, failed, payment, reset)."}, "result"),
		inferExamples: f.counter(prometheus.CounterOpts{Subsystem: "serving", Name: "examples_total",
			Help: "Examples of the calls to the models this node serves that fit them."}),
		inferDuration: f.histogramVec(prometheus.HistogramOpts{Subsystem: "serving", Name: "call_duration_seconds",
			Help:    "Time from a call's stream to its answer, by result.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, "result"),
		inferBatches: f.counter(prometheus.CounterOpts{Subsystem: "serving", Name: "batches_total",
			Help: "Forward passes that answered calls: calls per batch is calls_total{result=\"ok\"} over this."}),
		inferEarned: f.counter(prometheus.CounterOpts{Subsystem: "serving", Name: "earned_total",
			Help: "What the settled budgets of paid calls paid this provider, in base units of its mint."}),
	}
	build := f.gaugeVec(prometheus.GaugeOpts{Name: "build_info", Help: "Always 1; the label is the daemon's version."}, "version")
	build.WithLabelValues(version).Set(1)
	for _, c := range jobs.Causes {
		m.reauctions.WithLabelValues(c)
	}
	for _, r := range []string{"ok", "rejected", "full", "failed", "payment", "reset"} {
		m.inferCalls.WithLabelValues(r)
		m.inferDuration.WithLabelValues(r)
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the node's registry: the host registers libp2p's
// metrics on it, the handler serves it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// factory makes collectors in the namespace and registers them.
type factory struct{ reg prometheus.Registerer }

func (f factory) counter(o prometheus.CounterOpts) prometheus.Counter {
	o.Namespace = Namespace
	c := prometheus.NewCounter(o)
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(o prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
	o.Namespace = Namespace
	c := prometheus.NewCounterVec(o, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gaugeVec(o prometheus.GaugeOpts, labels ...string) *prometheus.GaugeVec {
	o.Namespace = Namespace
	c := prometheus.NewGaugeVec(o, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogramVec(o prometheus.HistogramOpts, labels ...string) *prometheus.HistogramVec {
	o.Namespace = Namespace
	c := prometheus.NewHistogramVec(o, labels)
	f.reg.MustRegister(c)
	return c
}

// Jobs returns the hook of the jobs engine.
func (m *Metrics) Jobs() jobs.Metrics { return jobMetrics{m} }

// SeedJobs counts the unfinished jobs a node finds in its store when it
// starts, so that cyxwiz_jobs_active holds them before they move.
func (m *Metrics) SeedJobs(js []*jobs.Job) {
	for _, j := range js {
		if !j.State.Final() {
			m.active.WithLabelValues(j.Role, string(j.State)).Inc()
		}
	}
}

// jobMetrics implements jobs.Metrics.
type jobMetrics struct{ m *Metrics }

func (j jobMetrics) AuctionOpened() { j.m.auctions.Inc() }

func (j jobMetrics) BidReceived(accepted bool) {
	j.m.bidsReceived.WithLabelValues(result(accepted, "accepted", "refused")).Inc()
}

func (j jobMetrics) BidSent(delivered bool) {
	j.m.bidsSent.WithLabelValues(result(delivered, "delivered", "failed")).Inc()
}

func (j jobMetrics) Awarded(taken bool) {
	j.m.awards.WithLabelValues(result(taken, "taken", "refused")).Inc()
}

func (j jobMetrics) Reauctioned(cause string) { j.m.reauctions.WithLabelValues(cause).Inc() }

func (j jobMetrics) JobMoved(role string, from, to market.State, age time.Duration) {
	if from != "" && !from.Final() {
		j.m.active.WithLabelValues(role, string(from)).Dec()
	}
	j.m.transitions.WithLabelValues(role, string(to)).Inc()
	if to.Final() {
		j.m.finished.WithLabelValues(role, string(to)).Inc()
		j.m.durations.WithLabelValues(role, string(to)).Observe(age.Seconds())
		return
	}
	j.m.active.WithLabelValues(role, string(to)).Inc()
}

func (j jobMetrics) EscrowMoved(state jobs.EscrowState) {
	j.m.escrows.WithLabelValues(string(state)).Inc()
}

func result(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

// ObserveFetch records one fetch of the content store
// (content.Params.ObserveFetch).
func (m *Metrics) ObserveFetch(d time.Duration, err error) {
	m.fetches.WithLabelValues(result(err == nil, "ok", "error")).Observe(d.Seconds())
}

// ObserveCall records one call of the local API (rpc.Options.Observe);
// method is a registered name or rpc.UnknownMethod.
func (m *Metrics) ObserveCall(method string, err error, d time.Duration) {
	m.rpcCalls.WithLabelValues(method).Inc()
	if err != nil {
		m.rpcErrors.WithLabelValues(method).Inc()
	}
	m.rpcDuration.WithLabelValues(method).Observe(d.Seconds())
}

// ObserveInfer records one call to a served model
// (serving.Params.Observe).
func (m *Metrics) ObserveInfer(code string, examples int, d time.Duration) {
	m.inferCalls.WithLabelValues(code).Inc()
	m.inferExamples.Add(float64(examples))
	m.inferDuration.WithLabelValues(code).Observe(d.Seconds())
}

// ObserveBatch records one forward pass of a served model
// (serving.Params.ObserveBatch).
func (m *Metrics) ObserveBatch(int) { m.inferBatches.Inc() }

// ObserveEarned counts what one settled budget of paid calls paid this
// provider (callpay.KeeperParams.Settled).
func (m *Metrics) ObserveEarned(amount uint64) { m.inferEarned.Add(float64(amount)) }

// BudgetLoad is what the budgets of paid calls hold now.
type BudgetLoad struct {
	// Open counts the open budgets, by this node's role in them.
	OpenProvider, OpenCaller int
	// Owed is the price of the calls answered on open budgets, not yet
	// settled.
	Owed uint64
}

// CallBudgets registers the load of the budgets of paid calls, read when
// scraped.
func (m *Metrics) CallBudgets(load func() BudgetLoad) {
	open := prometheus.NewDesc(Namespace+"_serving_budgets", "Open budgets of paid calls, by this node's role (provider, caller).", []string{"role"}, nil)
	owed := prometheus.NewDesc(Namespace+"_serving_owed", "The price of the calls answered on open budgets, not yet settled, in base units.", nil, nil)
	m.reg.MustRegister(collectorFunc{descs: []*prometheus.Desc{open, owed}, collect: func(ch chan<- prometheus.Metric) {
		l := load()
		ch <- prometheus.MustNewConstMetric(open, prometheus.GaugeValue, float64(l.OpenProvider), "provider")
		ch <- prometheus.MustNewConstMetric(open, prometheus.GaugeValue, float64(l.OpenCaller), "caller")
		ch <- prometheus.MustNewConstMetric(owed, prometheus.GaugeValue, float64(l.Owed))
	}})
}

// collectorFunc is a collector of fixed descriptions read by a function.
type collectorFunc struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// Content registers the content store's transfer counts and size, read
// when scraped.
func (m *Metrics) Content(stats func() content.Stats, size func(context.Context) (int64, error)) {
	m.reg.MustRegister(&contentCollector{stats: stats, size: size})
}

// Executors registers a provider's load, read when scraped.
func (m *Metrics) Executors(load func() jobs.Load) {
	for _, g := range []struct {
		name, help string
		value      func(jobs.Load) float64
	}{
		{"running", "Jobs this node runs as a provider now.", func(l jobs.Load) float64 { return float64(l.Running) }},
		{"queued", "Jobs this node accepted as a provider and that wait to run.", func(l jobs.Load) float64 { return float64(l.Queued) }},
		{"memory_reserved_bytes", "Memory the running jobs reserved.", func(l jobs.Load) float64 { return float64(l.MemoryMiB << 20) }},
	} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "executor", Name: g.name, Help: g.help},
			func() float64 { return g.value(load()) }))
	}
}

// contentCollector reads the content store's counts at each scrape.
type contentCollector struct {
	stats func() content.Stats
	size  func(context.Context) (int64, error)
}

var (
	contentBytes = prometheus.NewDesc(Namespace+"_content_bytes_total",
		"Bytes of blocks received (in) and sent (out), by transport (stream, bitswap).", []string{"direction", "transport"}, nil)
	contentBlocks = prometheus.NewDesc(Namespace+"_content_blocks_total",
		"Blocks received (in) and sent (out), by transport (stream, bitswap).", []string{"direction", "transport"}, nil)
	contentSize = prometheus.NewDesc(Namespace+"_content_store_bytes",
		"Bytes the content store's blocks take on disk.", nil, nil)
)

// Describe sends the collector's descriptions.
func (c *contentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- contentBytes
	ch <- contentBlocks
	ch <- contentSize
}

// Collect reads the store's counts and size.
func (c *contentCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, v := range []struct {
		desc                 *prometheus.Desc
		n                    uint64
		direction, transport string
	}{
		{contentBytes, s.StreamBytesIn, "in", "stream"}, {contentBytes, s.StreamBytesOut, "out", "stream"},
		{contentBytes, s.BitswapBytesIn, "in", "bitswap"}, {contentBytes, s.BitswapBytesOut, "out", "bitswap"},
		{contentBlocks, s.StreamBlocksIn, "in", "stream"}, {contentBlocks, s.StreamBlocksOut, "out", "stream"},
		{contentBlocks, s.BitswapBlocksIn, "in", "bitswap"}, {contentBlocks, s.BitswapBlocksOut, "out", "bitswap"},
	} {
		ch <- prometheus.MustNewConstMetric(v.desc, prometheus.CounterValue, float64(v.n), v.direction, v.transport)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := c.size(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(contentSize, prometheus.GaugeValue, float64(n))
	} else {
		ch <- prometheus.NewInvalidMetric(contentSize, errors.Join(errors.New("content store size"), err))
	}
}
