package node

import (
	"context"
	"errors"
	"fmt"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/compute/wasm"
	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/rpc"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/settlement"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	bolt "go.etcd.io/bbolt"
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
}

// Node is a running daemon: libp2p host and local API.
type Node struct {
	repo    *Repo
	cfg     Config
	log     *slog.Logger
	host    *p2p.Host
	events  *hub
	peers   *peerFeed
	store   *content.Store
	key     crypto.PrivKey
	adv     *advertiser
	jobsDB  *bolt.DB
	jobs    *jobs.Engine
	execs   map[string]compute.Executor
	gpus    []market.GPU // offered for train jobs
	escrow  settlement.Escrow
	rpc     *rpc.Server
	ln      net.Listener
	http    *http.Server
	served  chan struct{}
	serving bool

	private bool
	started time.Time

	closeOnce sync.Once
	closeErr  error
}

// New builds a node: it loads the keys, starts the host and binds the API
// port, but serves nothing until Start.
func New(p Params) (*Node, error) {
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

	n := &Node{repo: p.Repo, cfg: p.Config, log: log, key: key, private: swarmKey != nil, started: time.Now(), served: make(chan struct{})}

	n.ln, err = net.Listen("tcp", p.Config.API.Addr)
	if err != nil {
		return nil, fmt.Errorf("new node: api.addr %s: %w", p.Config.API.Addr, err)
	}

	n.host, err = p2p.New(p2p.Params{
		Key:          key,
		Config:       p.Config.Swarm,
		SwarmKey:     swarmKey,
		RelayService: p.Config.Role == RoleIndexer || p.Config.Role == RoleArbiter,
		Version:      Version,
		Logger:       log.With("system", "p2p"),
		Validators:   map[string]record.Validator{wire.DHTNamespace: capacityValidator{}},
		ScoredTopics: []string{wire.JobsTopic},
	})
	if err != nil {
		n.ln.Close()
		return nil, fmt.Errorf("new node: start swarm: %w", err)
	}

	n.events = newHub(log)
	n.peers, err = startPeerFeed(n.host, n.events)
	if err != nil {
		n.host.Close()
		n.ln.Close()
		return nil, fmt.Errorf("new node: %w", err)
	}

	n.store, err = content.Open(content.Params{
		Dir:     p.Repo.Path(ContentDir),
		Host:    n.host,
		Routing: n.host.DHT,
		Config:  p.Config.Content,
		Logger:  log.With("system", "content"),
	})
	if err != nil {
		n.peers.close()
		n.host.Close()
		n.ln.Close()
		return nil, fmt.Errorf("new node: %w", err)
	}

	if n.escrow, err = n.openEscrow(p.Escrow); err != nil {
		n.store.Close()
		n.peers.close()
		n.host.Close()
		n.ln.Close()
		return nil, fmt.Errorf("new node: %w", err)
	}
	if err := n.startJobs(); err != nil {
		n.store.Close()
		n.peers.close()
		n.host.Close()
		n.ln.Close()
		return nil, fmt.Errorf("new node: %w", err)
	}

	n.rpc = rpc.NewServer(rpc.Options{
		Token:           token,
		MaxRequestBytes: p.Config.API.MaxRequestBytes,
		AllowedOrigins:  p.Config.API.AllowedOrigins,
		Logger:          log.With("system", "api"),
	})
	n.registerAPI()
	n.ln = rpc.LimitListener(n.ln, p.Config.API.MaxConnections)
	n.http = n.rpc.HTTPServer()
	return n, nil
}

// Start serves the API, writes the API address file and dials the
// bootstrap peers in the background.
func (n *Node) Start() error {
	n.serving = true
	go func() {
		defer close(n.served)
		if err := n.http.Serve(n.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("api server stopped", "error", err)
		}
	}()
	if err := n.repo.WriteAPIAddr(n.APIAddr()); err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	n.host.Bootstrap()
	if n.cfg.Market.Provider {
		n.adv = startAdvertiser(n.host, n.key, n.cfg.Market, n.gpus, n.repo.Dir, n.log.With("system", "market"))
	}
	if err := n.jobs.Start(); err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	n.log.Info("node ready", "peer", n.host.ID(), "api", n.APIAddr(), "addrs", n.host.Addrs(), "private_swarm", n.private)
	return nil
}

// startJobs opens the job store and builds the market engine, with the
// executors when the node is a provider.
func (n *Node) startJobs() error {
	db, err := bolt.Open(n.repo.Path(JobsFile), 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if err != nil {
		return fmt.Errorf("open job store: %w", err)
	}
	// As for content: without sync_writes a crash of the process loses no
	// job (the kernel holds the writes); a crash of the machine may.
	db.NoSync = !n.cfg.Content.SyncWrites
	n.jobsDB = db
	n.execs = map[string]compute.Executor{}
	var capacity func() (market.Capacity, bool)
	if n.cfg.Market.Provider {
		w, err := wasm.New(wasm.Options{CacheDir: n.repo.Path(WasmCacheDir)})
		if err != nil {
			db.Close()
			return err
		}
		n.execs[market.KindWASM] = w
		if slices.Contains(n.cfg.Market.Executors, market.KindTrain) {
			var worker string
			worker, n.gpus = findGPUs(context.Background(), n.cfg.Market, n.log.With("system", "compute"))
			t, err := train.NewExecutor(train.ExecutorConfig{Worker: worker, GPUs: len(n.gpus),
				Logger: n.log.With("system", "train")})
			if err != nil {
				db.Close()
				return err
			}
			n.execs[market.KindTrain] = t
		}
		capacity = func() (market.Capacity, bool) {
			if n.adv == nil {
				return market.Capacity{}, false
			}
			return n.adv.current()
		}
	}
	cfg := jobs.DefaultConfig()
	cfg.MaxConcurrent = n.cfg.Market.MaxConcurrent
	cfg.MaxLogBytes = int64(n.cfg.Market.MaxLogMiB) << 20
	cfg.Allow, cfg.Deny = n.cfg.Market.Allow, n.cfg.Market.Deny
	n.jobs, err = jobs.New(jobs.Params{Host: n.host, Key: n.key, Content: n.store, DB: db, WorkDir: n.repo.Path(JobsDir),
		Executors: n.execs, Capacity: capacity, Config: cfg, Notify: n.jobNotify, Logger: n.log.With("system", "jobs"),
		CheckInputs: func(ctx context.Context, s market.Spec) error { return n.checkInputs(ctx, s, true) },
		Settlement:  n.jobSettlement()})
	if err != nil {
		db.Close()
		return err
	}
	return nil
}

// APIAddr returns the address the API listens on.
func (n *Node) APIAddr() string { return n.ln.Addr().String() }

// Host returns the node's libp2p host.
func (n *Node) Host() *p2p.Host { return n.host }

// Close stops the node in reverse order of start: API, jobs engine and
// executors, capacity advertiser, content store, event feeds, host.
// It removes the API address file. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if err := n.repo.RemoveAPIAddr(); err != nil {
			errs = append(errs, fmt.Errorf("remove api file: %w", err))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop api: %w", err))
		}
		cancel()
		n.rpc.Close()
		if n.serving {
			<-n.served
		} else {
			n.ln.Close()
		}
		if err := n.jobs.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop jobs: %w", err))
		}
		for _, e := range n.execs {
			errs = append(errs, e.Close(context.Background()))
		}
		if err := n.jobsDB.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close job store: %w", err))
		}
		if n.adv != nil {
			n.adv.close()
		}
		if err := n.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close content store: %w", err))
		}
		n.peers.close()
		if err := n.host.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop host: %w", err))
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
