package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/metrics"
	"github.com/cyxwiz/cyxwiz/node/rpc"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/serving"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// Version is the daemon's version, reported by node.info and identify.
var Version = "0.1.0-dev"

// Params are the inputs of New.
type Params struct {
	// Repo is the open repo; the node does not close it.
	Repo *Repo
	// Config is the effective configuration (file plus flags).
	Config Config
	// Logger receives the node's log lines.
	Logger *slog.Logger
	// Escrow opens the node's ledger account instead of the configured
	// ledger (tests use an in-memory one); nil uses settlement.ledger.
	Escrow EscrowFactory
	// EditHost, when set, changes the host's parameters before it starts:
	// tests use it to record dials with a connection gater, or to let the
	// rendezvous reach stub peers on loopback. nil keeps them as the
	// config says.
	EditHost func(*p2p.Params)
	// wrapExecutor, when set, wraps each of a provider's executors. Only
	// tests of this package set it (a provider that cheats); no config
	// reaches it.
	wrapExecutor func(compute.Executor) compute.Executor
	// cheatCapacity, when set, edits each capacity record before it is
	// signed, and cheatChallenge answers the challenges: only tests of
	// this package set them (a provider that lies); no config reaches
	// them.
	cheatCapacity  func(*market.Capacity)
	cheatChallenge solveFunc
}

// Node is a running daemon: libp2p host and local API. Its subsystems
// are services of one lifecycle: New starts those that build the node,
// Start those that put it on the network and serve the API, and Close
// closes them all in reverse order.
type Node struct {
	repo    *Repo
	log     *slog.Logger
	private bool
	host    *p2p.Host
	jobs    *jobs.Engine
	adv     *advertiser     // nil unless market.provider
	index   *indexerService // nil unless an indexer or arbiter
	attest  *attester       // nil unless an indexer that checks capacity
	models  *modelRegistry
	api     *apiServer
	rpc     *rpc.Server
	metrics *metricsServer // nil unless metrics.addr
	life    lifecycle

	closeOnce sync.Once
	closeErr  error
}

// New builds a node: it binds the metrics port (with metrics.addr) and
// the API port, starts the host, opens the
// content store, the ledger account and the job store, and registers the
// API methods, but serves nothing until Start. ctx bounds the work of
// New (GPU detection among it); what New starts runs until Close.
func New(ctx context.Context, p Params) (*Node, error) {
	if err := p.Config.Validate(); err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	key, err := p.Repo.PeerKey()
	if err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	token, err := p.Repo.Token()
	if err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	swarmKey, err := p.Repo.SwarmKey()
	if err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	n := &Node{repo: p.Repo, log: log, private: swarmKey != nil}
	if err := n.open(ctx, p, key, token, swarmKey); err != nil {
		return nil, fmt.Errorf("new node: %w", errors.Join(err, n.life.close()))
	}
	return n, nil
}

// open starts the services of New in order.
func (n *Node) open(ctx context.Context, p Params, key crypto.PrivKey, token string, swarmKey p2p.SwarmKey) error {
	cfg, log := p.Config, n.log
	// Without metrics.addr nothing is counted: m is nil and no hook is set.
	var m *metrics.Metrics
	first := []service{}
	if cfg.Metrics.Addr != "" {
		m = metrics.New(Version)
		n.metrics = newMetricsServer(cfg.Metrics, m, log.With("system", "metrics"))
		first = append(first, metricsPort{n.metrics})
	}
	n.api = newAPIServer(cfg.API, p.Repo, token, log, m)
	hs := &hostService{params: p2p.Params{
		Key:          key,
		Config:       cfg.Swarm,
		SwarmKey:     swarmKey,
		RelayService: cfg.Role == RoleIndexer || cfg.Role == RoleArbiter,
		Version:      Version,
		Logger:       log.With("system", "p2p"),
		Validators:   map[string]record.Validator{wire.DHTNamespace: recordValidator{}},
		ScoredTopics: []string{wire.JobsTopic, wire.ReceiptsTopic, wire.ModelsTopic},
	}}
	if m != nil {
		hs.params.Registerer = m.Registry()
	}
	if p.EditHost != nil {
		p.EditHost(&hs.params)
	}
	if err := n.life.start(ctx, append(first, apiPort{n.api}, hs)...); err != nil {
		return err
	}
	n.host = hs.host

	events := newHub(log)
	cs := &contentService{params: content.Params{
		Dir:     p.Repo.Path(ContentDir),
		Host:    n.host,
		Routing: n.host.DHT,
		Config:  cfg.Content,
		Logger:  log.With("system", "content"),
	}}
	if m != nil {
		cs.params.ObserveFetch = m.ObserveFetch
	}
	if err := n.life.start(ctx, &peerFeed{host: n.host, events: events}, cs); err != nil {
		return err
	}
	store := cs.store

	escrow, err := openEscrow(p.Repo, cfg.Settlement, log, p.Escrow)
	if err != nil {
		return err
	}
	if m != nil {
		m.Content(store.Stats, store.DiskUsage)
		escrow = m.Ledger(escrow)
	}
	js := &jobStore{repo: p.Repo, cfg: cfg, log: log, params: jobs.Params{Host: n.host, Key: key, Content: store,
		WorkDir: p.Repo.Path(JobsDir), Notify: jobNotify(events), Logger: log.With("system", "jobs"),
		CheckInputs:    func(ctx context.Context, s market.Spec) error { return checkInputs(ctx, store, s, true) },
		OtherProviders: func(ctx context.Context) (int, error) { return otherProviders(ctx, n.host) },
		Settlement:     jobSettlement(escrow, p.Repo, cfg)}}
	if escrow != nil && cfg.Market.Mint != "" && cfg.Settlement.Arbiter != "" && cfg.Market.PricePerCall > 0 {
		js.offer = serviceOffer{PricePerCall: cfg.Market.PricePerCall, Mint: cfg.Market.Mint,
			Payee: escrow.Address(), ArbiterPeer: cfg.Settlement.Arbiter}
	}
	js.wrapExecutor = p.wrapExecutor
	if cfg.Market.Provider {
		var gpus []market.GPU
		js.worker, gpus = findGPUs(ctx, cfg.Market, log.With("system", "compute"))
		js.gpus = len(gpus)
		n.adv = &advertiser{host: n.host, key: key, cfg: cfg.Market, dir: p.Repo.Dir, gpus: gpus, log: log.With("system", "market"),
			cheat: p.cheatCapacity, responder: newChallengeResponder(p.cheatChallenge)}
		js.params.Capacity = n.adv.current
	}
	if m != nil {
		js.params.Metrics, js.metrics = m.Jobs(), m
	}
	if err := n.life.start(ctx, js); err != nil {
		return err
	}
	n.jobs = js.engine
	if m != nil {
		m.Executors(n.jobs.Load)
		m.CallBudgets(js.budgetLoad)
		seedJobMetrics(m, n.jobs, log)
	}
	if cfg.Role == RoleIndexer || cfg.Role == RoleArbiter {
		n.index = &indexerService{repo: p.Repo, cfg: cfg.Indexer, host: n.host, log: log.With("system", "indexer")}
		if cfg.Indexer.CheckEscrows && escrow != nil {
			n.index.escrow = escrow
		}
		if err := n.life.start(ctx, n.index); err != nil {
			return err
		}
		if cfg.Indexer.ChallengeSeconds > 0 {
			host := n.host
			n.attest = &attester{host: host, key: key, every: time.Duration(cfg.Indexer.ChallengeSeconds) * time.Second,
				scan: time.Duration(cfg.Indexer.CapacitySeconds) * time.Second, gpus: cfg.Indexer.ChallengeGPUs,
				records: func(ctx context.Context) ([]market.Capacity, error) {
					ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					return findProviders(ctx, host, nil, 1000)
				},
				log: log.With("system", "attest")}
		}
	}
	infer := inferClient{serving.NewClient(n.host)}
	if err := n.life.start(ctx, infer); err != nil {
		return err
	}
	n.models = &modelRegistry{repo: p.Repo, host: n.host, key: key, jobs: n.jobs, log: log.With("system", "models")}

	n.rpc = n.api.rpc
	for _, ns := range []interface{ register(*rpc.Server) }{
		infoAPI{host: n.host, role: cfg.Role, dhtMode: cfg.Swarm.DHTMode, private: n.private, index: n.index},
		swarmAPI{host: n.host, events: events},
		contentAPI{store: store, events: events},
		jobAPI{jobs: n.jobs, store: store, events: events},
		disputeAPI{jobs: n.jobs, settles: escrow != nil, role: cfg.Role},
		walletAPI{repo: p.Repo, escrow: escrow, ledger: cfg.Settlement, mint: cfg.Market.Mint},
		marketAPI{host: n.host, adv: n.adv, jobs: n.jobs, attest: n.attest, trusted: trustedAttesters(cfg.Market.Attesters)},
		inferAPI{host: n.host, jobs: n.jobs, client: infer.c, offers: &offers{host: n.host, known: map[string]cachedOffer{}}, payer: js.payer,
			stats: js.inferStats},
		indexerAPI{svc: n.index},
		n.models,
	} {
		ns.register(n.rpc)
	}
	return nil
}

// Start bootstraps the host, starts the capacity advertiser and the jobs
// engine, serves the metrics (with metrics.addr), then serves the API and
// writes the API address file. ctx
// bounds the start only. When Start fails, what it started is closed
// again; Close closes the rest.
func (n *Node) Start(ctx context.Context) error {
	n.host.Bootstrap()
	var services []service
	if n.adv != nil {
		services = append(services, n.adv)
	}
	services = append(services, engineService{n.jobs}, n.models)
	if n.index != nil {
		services = append(services, indexerRunning{n.index})
	}
	if n.attest != nil {
		services = append(services, n.attest)
	}
	if n.metrics != nil {
		services = append(services, metricsServing{n.metrics})
	}
	services = append(services, apiServing{n.api})
	if err := n.life.start(ctx, services...); err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	n.log.Info("node ready", "peer", n.host.ID(), "api", n.APIAddr(), "addrs", n.host.Addrs(), "private_swarm", n.private, "metrics", n.MetricsAddr())
	return nil
}

// APIAddr returns the address the API listens on.
func (n *Node) APIAddr() string { return n.api.addr() }

// MetricsAddr returns the address the metrics are served on, "" when
// metrics.addr is not set.
func (n *Node) MetricsAddr() string {
	if n.metrics == nil {
		return ""
	}
	return n.metrics.addr()
}

// Host returns the node's libp2p host.
func (n *Node) Host() *p2p.Host { return n.host }

// Close stops the node in reverse order of start: API (first DIR/api is
// removed), metrics server, jobs engine, capacity advertiser, executors
// and job store, content store, peer event feed, host, API port, metrics
// port. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.life.close() })
	return n.closeErr
}
