package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

func capacityKey(id peer.ID) string { return wire.CapacityKeyPrefix + id.String() }

// providersCID is the DHT key under which every provider announces itself,
// so that requesters can list them.
var providersCID = func() cid.Cid {
	sum, err := mh.Sum([]byte(wire.ProvidersName), mh.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, sum)
}()

// capacityValidator accepts only capacity records signed by the peer they
// are stored under, not expired, and prefers the newest.
type capacityValidator struct{}

func (capacityValidator) Validate(key string, value []byte) error {
	_, err := openCapacity(key, value, time.Now())
	return err
}

func (capacityValidator) Select(key string, values [][]byte) (int, error) {
	best, bestSeq := -1, uint64(0)
	for i, v := range values {
		c, err := openCapacity(key, v, time.Now())
		if err != nil {
			continue
		}
		if best == -1 || c.Seq > bestSeq {
			best, bestSeq = i, c.Seq
		}
	}
	if best == -1 {
		return 0, errors.New("no valid capacity record")
	}
	return best, nil
}

func openCapacity(key string, value []byte, now time.Time) (market.Capacity, error) {
	idText, ok := strings.CutPrefix(key, wire.CapacityKeyPrefix)
	if !ok {
		return market.Capacity{}, fmt.Errorf("capacity key %q outside %s", key, wire.CapacityKeyPrefix)
	}
	env, err := market.ParseEnvelope(value)
	if err != nil {
		return market.Capacity{}, err
	}
	var c market.Capacity
	signer, err := env.Open(market.TypeCapacity, &c)
	if err != nil {
		return market.Capacity{}, err
	}
	if signer.String() != idText {
		return market.Capacity{}, fmt.Errorf("capacity record under %s signed by %s", idText, signer)
	}
	return c, market.CheckCapacity(c, signer, now)
}

// advertiser keeps this provider's capacity record in the DHT. It is a
// service: Start starts the goroutine that publishes the record, Close
// stops it.
type advertiser struct {
	host *p2p.Host
	key  crypto.PrivKey
	cfg  MarketConfig
	dir  string
	gpus []market.GPU
	log  *slog.Logger
	// cheat edits each record before it is signed (tests only).
	cheat     func(*market.Capacity)
	responder *challengeResponder

	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	last market.Capacity
}

// Start starts publishing and answering capacity challenges. The
// goroutine outlives ctx: Close stops it.
func (a *advertiser) Start(context.Context) error {
	a.host.SetStreamHandler(wire.ChallengeProtocol, a.responder.handle)
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan struct{})
	go a.run(ctx)
	return nil
}

// Close stops publishing and answering, and waits for the goroutine.
func (a *advertiser) Close() error {
	a.host.RemoveStreamHandler(wire.ChallengeProtocol)
	a.cancel()
	<-a.done
	return nil
}

func (a *advertiser) run(ctx context.Context) {
	defer close(a.done)
	score := compute.BenchScore(50 * time.Millisecond)
	every := time.Duration(a.cfg.AdvertiseSeconds) * time.Second
	// A failed publish (no peers yet, say) is retried soon, with backoff.
	retry := time.Second
	for {
		wait := every
		if err := a.publish(ctx, score, every); err != nil && ctx.Err() == nil {
			a.log.Debug("capacity record not published yet", "error", err, "retry_in", retry)
			wait, retry = min(retry, every), min(2*retry, every)
		} else {
			retry = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (a *advertiser) record(score float64, every time.Duration) (market.Capacity, error) {
	inv, err := compute.TakeInventory(a.dir)
	if err != nil {
		return market.Capacity{}, err
	}
	c := market.Capacity{
		Peer:       a.host.ID().String(),
		CPUCores:   offer(a.cfg.CPUCores, inv.CPUCores),
		MemoryMiB:  offer64(a.cfg.MemoryMiB, inv.MemoryMiB*3/4),
		DiskMiB:    offer64(a.cfg.DiskMiB, inv.DiskFreeMiB/2),
		Executors:  slices.Clone(a.cfg.Executors),
		GPUs:       a.gpus,
		Prices:     market.PriceList{PerCPUSecond: a.cfg.PricePerCPUSecond, Minimum: a.cfg.MinPrice, Mint: a.cfg.Mint},
		Relay:      onlyRelayed(a.host),
		BenchScore: score,
		Seq:        uint64(time.Now().UnixNano()),
		IssuedAt:   time.Now().UTC(),
	}
	c.ExpiresAt = c.IssuedAt.Add(3 * every)
	if a.cheat != nil {
		a.cheat(&c)
	}
	return c, nil
}

func offer(configured, have int) int {
	if configured > 0 {
		return min(configured, have)
	}
	return have
}

func offer64(configured, have int64) int64 {
	if configured > 0 {
		return min(configured, have)
	}
	return have
}

// onlyRelayed reports whether every address of the host goes through a relay.
func onlyRelayed(h *p2p.Host) bool {
	addrs := h.Addrs()
	for _, a := range addrs {
		if !strings.Contains(a.String(), "/p2p-circuit") {
			return false
		}
	}
	return len(addrs) > 0
}

func (a *advertiser) publish(ctx context.Context, score float64, every time.Duration) error {
	c, err := a.record(score, every)
	if err != nil {
		return err
	}
	env, err := market.Seal(a.key, market.TypeCapacity, c)
	if err != nil {
		return err
	}
	data, err := env.Marshal()
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.last = c
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, every)
	defer cancel()
	if err := a.host.DHT.PutValue(ctx, capacityKey(a.host.ID()), data); err != nil {
		return fmt.Errorf("put capacity record: %w", err)
	}
	if err := a.host.DHT.Provide(ctx, providersCID, true); err != nil {
		return fmt.Errorf("announce provider: %w", err)
	}
	return nil
}

// current returns the last record published, if any.
func (a *advertiser) current() (market.Capacity, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last, a.last.Peer != ""
}

// findProviders lists the capacity records of the providers the DHT knows,
// each checked against its signature and expiry.
func findProviders(ctx context.Context, h *p2p.Host, self *advertiser, limit int) ([]market.Capacity, error) {
	var out []market.Capacity
	skip := map[peer.ID]bool{}
	if self != nil {
		if c, ok := self.current(); ok {
			out = append(out, c)
			skip[h.ID()] = true
		}
	}
	err := eachCapacity(ctx, h, limit, skip, func(_ []byte, c market.Capacity) { out = append(out, c) })
	slices.SortFunc(out, func(a, b market.Capacity) int { return strings.Compare(a.Peer, b.Peer) })
	return out, err
}

// capacityRecords lists the signed capacity records (DHT values) of the
// providers the DHT knows, as an indexer keeps them.
func capacityRecords(ctx context.Context, h *p2p.Host, limit int) ([][]byte, error) {
	var out [][]byte
	err := eachCapacity(ctx, h, limit, nil, func(v []byte, _ market.Capacity) { out = append(out, v) })
	return out, err
}

// eachCapacity calls f, one call at a time, with each valid capacity
// record of the providers the DHT knows (at most limit), but those of the
// peers in skip.
func eachCapacity(ctx context.Context, h *p2p.Host, limit int, skip map[peer.ID]bool, f func(value []byte, c market.Capacity)) error {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	seen := map[peer.ID]bool{}
	for info := range h.DHT.FindProvidersAsync(ctx, providersCID, limit) {
		if seen[info.ID] || skip[info.ID] {
			continue
		}
		seen[info.ID] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			value, err := h.DHT.GetValue(ctx, capacityKey(info.ID))
			if err != nil {
				return
			}
			c, err := openCapacity(capacityKey(info.ID), value, time.Now())
			if err != nil {
				return
			}
			mu.Lock()
			f(value, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return ctx.Err()
}
