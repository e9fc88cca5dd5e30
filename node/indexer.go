package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/pgdb"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/sqlitedb"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/settlement"
)

// IndexerDir holds an indexer's SQLite database under the repo.
const IndexerDir = "indexer"

// IndexerConfig configures the indexer role: where it keeps the swarm's
// history and where it serves the explorer.
type IndexerConfig struct {
	// Database is "" for the embedded SQLite database in REPO/indexer, or
	// a PostgreSQL URL (postgres://user@host/db).
	Database string `json:"database"`
	// ExplorerAddr is the host:port of the public explorer API; "" serves
	// none.
	ExplorerAddr string `json:"explorer_addr"`
	// RatePerSecond bounds each explorer client's requests.
	RatePerSecond int `json:"rate_per_second"`
	// CapacitySeconds is how often the providers' capacity records are
	// read from the DHT.
	CapacitySeconds int `json:"capacity_seconds"`
	// CheckEscrows checks each paid receipt's escrow on the ledger of
	// settlement.ledger.
	CheckEscrows bool `json:"check_escrows"`
	// ChallengeSeconds is how often each provider's capacity claim is
	// checked by a challenge; 0 checks none.
	ChallengeSeconds int `json:"challenge_seconds"`
	// ChallengeGPUs checks GPU claims too, with a GEMM challenge only a
	// GPU answers in time.
	ChallengeGPUs bool `json:"challenge_gpus"`
}

// DefaultExplorerAddr is where an indexer serves the explorer unless
// configured otherwise.
const DefaultExplorerAddr = "127.0.0.1:5252"

// DefaultIndexerConfig returns the indexer settings of a new node.
func DefaultIndexerConfig() IndexerConfig {
	return IndexerConfig{ExplorerAddr: DefaultExplorerAddr, RatePerSecond: 20, CapacitySeconds: 60, CheckEscrows: true, ChallengeSeconds: 600}
}

// Validate reports every setting that cannot work, each naming its key.
func (c IndexerConfig) Validate() error {
	var errs []error
	if c.Database != "" && !strings.HasPrefix(c.Database, "postgres://") && !strings.HasPrefix(c.Database, "postgresql://") {
		errs = append(errs, errors.New(`database: must be "" (SQLite in the repo) or a postgres:// URL`))
	}
	if c.ExplorerAddr != "" {
		if _, _, err := net.SplitHostPort(c.ExplorerAddr); err != nil {
			errs = append(errs, fmt.Errorf("explorer_addr: %q: %w", c.ExplorerAddr, err))
		}
	}
	if c.RatePerSecond < 1 || c.RatePerSecond > 10000 {
		errs = append(errs, fmt.Errorf("rate_per_second: %d is outside 1..10000", c.RatePerSecond))
	}
	if c.CapacitySeconds < 1 || c.CapacitySeconds > 3600 {
		errs = append(errs, fmt.Errorf("capacity_seconds: %d is outside 1..3600", c.CapacitySeconds))
	}
	if c.ChallengeSeconds < 0 || c.ChallengeSeconds > 86400 {
		errs = append(errs, fmt.Errorf("challenge_seconds: %d is outside 0..86400", c.ChallengeSeconds))
	}
	return errors.Join(errs...)
}

// openIndexDB opens the indexer's database.
func openIndexDB(ctx context.Context, repo *Repo, cfg IndexerConfig) (indexdb.Store, error) {
	if cfg.Database != "" {
		db, err := pgdb.Open(ctx, cfg.Database)
		if err != nil {
			return nil, fmt.Errorf("indexer.database: %w", err)
		}
		return db, nil
	}
	dir := repo.Path(IndexerDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	db, err := sqlitedb.Open(filepath.Join(dir, "index.db"))
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	return db, nil
}

// indexerService is the indexer role as a service of the node: the
// database (opened by New, so that a bad one fails the start), the
// explorer's port (bound by New), then, on Start, the ingesting service
// and the explorer's server.
type indexerService struct {
	repo   *Repo
	cfg    IndexerConfig
	host   *p2p.Host
	escrow settlement.Escrow
	log    *slog.Logger

	store    indexdb.Store
	ln       net.Listener
	svc      *indexer.Service
	explorer *http.Server
	served   chan struct{}
}

// Start opens the database and binds the explorer's port.
func (s *indexerService) Start(ctx context.Context) error {
	store, err := openIndexDB(ctx, s.repo, s.cfg)
	if err != nil {
		return err
	}
	s.store = store
	if s.cfg.ExplorerAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.ExplorerAddr)
		if err != nil {
			store.Close()
			return fmt.Errorf("indexer.explorer_addr: %w", err)
		}
		s.ln = ln
	}
	return nil
}

// Close closes the port and the database (the running part closes first).
func (s *indexerService) Close() error {
	var errs []error
	if s.ln != nil {
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	return errors.Join(errs...)
}

// explorerAddr is where the explorer listens, "" when it does not.
func (s *indexerService) explorerAddr() string {
	if s == nil || s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// indexerRunning is the running part of the indexer, started once the
// jobs engine has registered the topics' validators.
type indexerRunning struct{ s *indexerService }

func (r indexerRunning) Start(context.Context) error {
	s := r.s
	host := s.host
	s.svc = indexer.New(indexer.Params{
		Host:          host,
		Store:         s.store,
		Capacity:      func(ctx context.Context) ([][]byte, error) { return capacityRecords(ctx, host, 1000) },
		CapacityEvery: time.Duration(s.cfg.CapacitySeconds) * time.Second,
		Escrow:        s.escrow,
		Logger:        s.log,
	})
	if err := s.svc.Start(); err != nil {
		return err
	}
	if s.ln != nil {
		ex := indexer.NewExplorer(s.store, indexer.ExplorerConfig{RatePerSecond: float64(s.cfg.RatePerSecond), Logger: s.log})
		s.explorer = &http.Server{Handler: ex, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
			WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
		s.served = make(chan struct{})
		go func() {
			defer close(s.served)
			if err := s.explorer.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("explorer stopped", "error", err)
			}
		}()
		s.log.Info("explorer serving", "addr", s.explorerAddr())
	}
	return nil
}

func (r indexerRunning) Close() error {
	s := r.s
	var errs []error
	if s.explorer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, s.explorer.Shutdown(ctx))
		cancel()
		<-s.served
	}
	if s.svc != nil {
		errs = append(errs, s.svc.Close())
	}
	return errors.Join(errs...)
}

// counters are the running indexer's, nil before it runs.
func (s *indexerService) counters() *indexer.Counters {
	if s == nil || s.svc == nil {
		return nil
	}
	return s.svc.Stats()
}
