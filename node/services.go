package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cyxwiz/cyxwiz/callpay"
	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/compute/serve"
	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/compute/wasm"
	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/metrics"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/serving"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// hostService is the libp2p host.
type hostService struct {
	params p2p.Params
	host   *p2p.Host
}

// Start builds and starts the host.
func (s *hostService) Start(context.Context) error {
	h, err := p2p.New(s.params)
	if err != nil {
		return fmt.Errorf("start swarm: %w", err)
	}
	s.host = h
	return nil
}

// Close stops the host.
func (s *hostService) Close() error {
	if err := s.host.Close(); err != nil {
		return fmt.Errorf("stop host: %w", err)
	}
	return nil
}

// contentService is the content store.
type contentService struct {
	params content.Params
	store  *content.Store
}

// Start opens the store.
func (s *contentService) Start(context.Context) error {
	st, err := content.Open(s.params)
	if err != nil {
		return err
	}
	s.store = st
	return nil
}

// Close closes the store.
func (s *contentService) Close() error {
	if err := s.store.Close(); err != nil {
		return fmt.Errorf("close content store: %w", err)
	}
	return nil
}

// jobStore is REPO/jobs.db, the executors of a provider and the jobs
// engine built on them. The engine is started and stopped by
// engineService.
type jobStore struct {
	repo   *Repo
	cfg    Config
	log    *slog.Logger
	worker string // the GPU worker; "" trains on the CPU
	gpus   int
	params jobs.Params // all but DB, Executors and Config
	// metrics, when set, counts the calls to the models the node serves.
	metrics *metrics.Metrics

	db    *bolt.DB
	execs map[string]compute.Executor
	// offer is what this provider charges for a call to a model it serves.
	offer       serviceOffer
	serving     *serving.Server // nil unless the node runs serve jobs
	deployments *deployments    // the serve jobs running here
	engine      *jobs.Engine
	// keeper takes budgets for calls to the models served here; payer
	// pays for this node's calls. Either may be nil.
	keeper *callpay.Keeper
	payer  *callpay.Payer
	// wrapExecutor, when set, wraps each executor (tests only).
	wrapExecutor func(compute.Executor) compute.Executor
}

// Start opens the job store, the executors when the node is a provider,
// and builds the engine.
func (s *jobStore) Start(context.Context) error {
	db, err := bolt.Open(s.repo.Path(JobsFile), 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if err != nil {
		return fmt.Errorf("open job store: %w", err)
	}
	// As for content: without sync_writes a crash of the process loses no
	// job (the kernel holds the writes); a crash of the machine may.
	db.NoSync = !s.cfg.Content.SyncWrites
	s.db, s.execs = db, map[string]compute.Executor{}
	if err := s.build(); err != nil {
		return errors.Join(err, s.Close())
	}
	return nil
}

func (s *jobStore) build() error {
	if s.cfg.Market.Provider {
		w, err := wasm.New(wasm.Options{CacheDir: s.repo.Path(WasmCacheDir)})
		if err != nil {
			return err
		}
		s.execs[market.KindWASM] = w
		if slices.Contains(s.cfg.Market.Executors, market.KindTrain) {
			t, err := train.NewExecutor(train.ExecutorConfig{Worker: s.worker, GPUs: s.gpus, Logger: s.log.With("system", "train")})
			if err != nil {
				return err
			}
			s.execs[market.KindTrain] = t
		}
		if slices.Contains(s.cfg.Market.Executors, market.KindServe) {
			s.deployments = &deployments{host: s.params.Host, key: s.params.Key, offer: s.offer,
				ttl: 3 * serving.DefaultAnnounceEvery, byID: map[string]deployment{}}
			sp := serving.Params{Host: s.params.Host, Key: s.params.Key, Logger: s.log.With("system", "serving"),
				Announce: s.deployments.announce}
			if err := s.newKeeper(); err != nil {
				return err
			}
			if k := s.keeper; k != nil {
				sp.Charge = func(caller peer.ID, service string, voucher []byte) (serving.Charge, error) {
					c, err := k.Charge(caller, service, voucher)
					if c == nil {
						return nil, err // a nil *callpay.Charge is no Charge
					}
					return c, err
				}
			}
			if s.metrics != nil {
				sp.Observe, sp.ObserveBatch = s.metrics.ObserveInfer, s.metrics.ObserveBatch
			}
			s.serving = serving.NewServer(sp)
			s.deployments.srv = s.serving
			s.execs[market.KindServe] = serve.New(s.deployments)
		}
	}
	if s.wrapExecutor != nil {
		for k, e := range s.execs {
			s.execs[k] = s.wrapExecutor(e)
		}
	}
	cfg := jobs.DefaultConfig()
	cfg.MaxConcurrent = s.cfg.Market.MaxConcurrent
	cfg.MaxLogBytes = int64(s.cfg.Market.MaxLogMiB) << 20
	cfg.Allow, cfg.Deny = s.cfg.Market.Allow, s.cfg.Market.Deny
	cfg.PublishReceipts, cfg.ReceiptOutputs = s.cfg.Market.PublishReceipts, s.cfg.Market.ReceiptOutputs
	cfg.AloneAfter = time.Duration(s.cfg.Market.AloneSeconds) * time.Second
	p := s.params
	p.DB, p.Executors, p.Config = s.db, s.execs, cfg
	e, err := jobs.New(p)
	if err != nil {
		return err
	}
	s.engine = e
	return s.startCallPay()
}

// Close closes the executors, then the job store.
func (s *jobStore) Close() error {
	var errs []error
	for _, e := range s.execs {
		errs = append(errs, e.Close(context.Background()))
	}
	if s.serving != nil {
		errs = append(errs, s.serving.Close())
	}
	errs = append(errs, s.closeCallPay())
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close job store: %w", err))
	}
	return errors.Join(errs...)
}

// engineService runs the jobs engine on the network.
type engineService struct{ engine *jobs.Engine }

// Start joins the jobs topic, sets the stream handlers and resumes the
// unfinished jobs.
func (s engineService) Start(context.Context) error {
	if err := s.engine.Start(); err != nil {
		return errors.Join(err, s.engine.Close())
	}
	return nil
}

// Close stops the engine and waits for its jobs.
func (s engineService) Close() error {
	if err := s.engine.Close(); err != nil {
		return fmt.Errorf("stop jobs: %w", err)
	}
	return nil
}
