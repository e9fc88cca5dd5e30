package content

import (
	"context"
	"errors"
	"fmt"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/content/packstore"
	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/routing"
	bolt "go.etcd.io/bbolt"
)

// Folder and file names inside the store's directory.
const (
	packsDir = "packs"
	metaFile = "content.db"
)

// Errors callers can test for.
var (
	// ErrNotFound: no provider delivered the content within the fetch timeout.
	ErrNotFound = errors.New("content not found")
	// ErrTooLarge: the content exceeds max_fetch_mib.
	ErrTooLarge = errors.New("content larger than the fetch limit")
	// ErrQuota: storing the content would exceed quota_mib.
	ErrQuota = errors.New("disk quota exceeded")
	// ErrNotPinned: unpin of a CID that is not pinned.
	ErrNotPinned = errors.New("not pinned")
)

// Params are the inputs of Open.
type Params struct {
	// Dir holds the blocks and the metadata database.
	Dir string
	// Host carries bitswap.
	Host host.Host
	// Routing finds providers and announces roots; nil keeps the store to
	// directly connected peers.
	Routing routing.Routing
	// Config holds the limits.
	Config Config
	// Logger receives the store's log lines.
	Logger *slog.Logger
	// ObserveFetch, when set, is told of every fetch of a DAG from peers
	// (Fetch, Pin, Get, Read): how long it took and how it ended.
	ObserveFetch func(d time.Duration, err error)
}

// Store is a node's content: blocks on disk, bitswap, pins.
type Store struct {
	dir     string
	cfg     Config
	log     *slog.Logger
	host    host.Host
	routing routing.Routing
	// serving bounds the DAG streams served at once.
	serving chan struct{}
	counts  counters
	onFetch func(time.Duration, error)

	packs   *packstore.Store
	bstore  blockstore.Blockstore
	bitswap *bitswap.Bitswap
	dag     ipld.DAGService // online: missing blocks come from peers
	local   ipld.DAGService // offline: this node's blocks only
	meta    *bolt.DB

	// uploads bounds the uploads spooled at once.
	uploads chan struct{}
	// resMu guards reserved: bytes of uploads under way, counted against
	// the quota until they end.
	resMu    sync.Mutex
	reserved int64

	// gc is held for reading by every operation that adds blocks or pins,
	// and for writing by garbage collection.
	gc sync.RWMutex

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Open opens (or creates) the store in p.Dir and starts bitswap and the
// reprovider.
func Open(p Params) (*Store, error) {
	if err := p.Config.Validate(); err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	// Folders unpacked by an upload that the process did not finish.
	if err := os.RemoveAll(filepath.Join(p.Dir, uploadDir)); err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	meta, err := bolt.Open(filepath.Join(p.Dir, metaFile), 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open content metadata: %w", err)
	}
	// Without sync_writes a crash of the process loses nothing (the kernel
	// holds the writes); a crash of the machine may lose recent blocks.
	meta.NoSync = !p.Config.SyncWrites
	if err := meta.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(pinsBucket)
		return err
	}); err != nil {
		meta.Close()
		return nil, fmt.Errorf("open content metadata: %w", err)
	}
	packs, err := packstore.Open(filepath.Join(p.Dir, packsDir), meta, packstore.Options{Sync: p.Config.SyncWrites})
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("open block store: %w", err)
	}

	bs := &verifyingBlockstore{Blockstore: packs, log: log}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{dir: p.Dir, cfg: p.Config, log: log, host: p.Host, routing: p.Routing, serving: make(chan struct{}, maxServing),
		packs: packs, bstore: bs, meta: meta, ctx: ctx, cancel: cancel, onFetch: p.ObserveFetch, uploads: make(chan struct{}, maxUploads)}

	var finder routing.ContentDiscovery
	if p.Routing != nil {
		finder = p.Routing
	}
	s.bitswap = bitswap.New(ctx, bsnet.NewFromIpfsHost(p.Host), finder, bs)
	s.dag = merkledag.NewDAGService(blockservice.New(bs, s.bitswap))
	s.local = merkledag.NewDAGService(blockservice.New(bs, offline.Exchange(bs)))

	p.Host.SetStreamHandler(wire.DAGProtocol, s.serveDAG)

	if p.Routing != nil && p.Config.ReprovideIntervalMinutes > 0 {
		s.wg.Add(1)
		go s.reprovideLoop(time.Duration(p.Config.ReprovideIntervalMinutes) * time.Minute)
	}
	return s, nil
}

// Close stops bitswap and the reprovider and closes the databases. It is
// safe to call more than once.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.host.RemoveStreamHandler(wire.DAGProtocol)
		s.cancel()
		s.wg.Wait()
		err = errors.Join(s.bitswap.Close(), s.packs.Close(), s.meta.Close())
	})
	return err
}

// DiskUsage returns the bytes the blocks take on disk.
func (s *Store) DiskUsage(context.Context) (int64, error) {
	return s.packs.DiskUsage()
}

// checkQuota fails with ErrQuota when adding more bytes would exceed the
// quota, counting the room reserved by uploads under way.
func (s *Store) checkQuota(ctx context.Context, more int64) error {
	s.resMu.Lock()
	defer s.resMu.Unlock()
	return s.checkQuotaLocked(ctx, more)
}

func (s *Store) checkQuotaLocked(ctx context.Context, more int64) error {
	if s.cfg.QuotaMiB == 0 {
		return nil
	}
	used, err := s.DiskUsage(ctx)
	if err != nil {
		return fmt.Errorf("disk usage: %w", err)
	}
	if limit := s.cfg.QuotaMiB << 20; used+s.reserved+more > limit {
		return fmt.Errorf("%w: %d bytes used + %d reserved by uploads + %d new > quota %d", ErrQuota, used, s.reserved, more, limit)
	}
	return nil
}

// provide announces a root to the DHT in the background.
func (s *Store) provide(c cid.Cid) {
	if s.routing == nil || s.cfg.ReprovideIntervalMinutes == 0 {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		defer cancel()
		if err := s.routing.Provide(ctx, c, true); err != nil && s.ctx.Err() == nil {
			s.log.Debug("provide failed", "cid", c, "error", err)
		}
	}()
}

// reprovideLoop announces every pinned root again on a schedule: DHT
// provider records expire.
func (s *Store) reprovideLoop(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		pins, err := s.Pins()
		if err != nil {
			s.log.Warn("reprovide: list pins", "error", err)
			continue
		}
		for _, p := range pins {
			ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
			err := s.routing.Provide(ctx, p.CID, true)
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.log.Debug("reprovide failed", "cid", p.CID, "error", err)
			}
		}
		s.log.Debug("reprovided pinned roots", "count", len(pins))
	}
}
