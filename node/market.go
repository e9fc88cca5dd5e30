package node

import (
	"context"
	"errors"
	"fmt"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/compute/gpu"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// MarketConfig configures the node's part in the market.
type MarketConfig struct {
	// Provider makes the node offer its capacity, bid for jobs and run them.
	Provider bool `json:"provider"`
	// Executors lists the job kinds the node runs.
	Executors []string `json:"executors"`
	// CPUCores offered; 0 offers every core.
	CPUCores int `json:"cpu_cores"`
	// MemoryMiB offered; 0 offers three quarters of the machine's memory.
	MemoryMiB int64 `json:"memory_mib"`
	// DiskMiB offered; 0 offers half of the free space under the repo.
	DiskMiB int64 `json:"disk_mib"`
	// PricePerCPUSecond is charged per CPU per second of a job's wall limit,
	// in base units of Mint.
	PricePerCPUSecond uint64 `json:"price_per_cpu_second"`
	// MinPrice is the least the node takes for a job.
	MinPrice uint64 `json:"min_price"`
	// Mint is the token the node is paid in (base58 address); "" for none.
	Mint string `json:"mint"`
	// AdvertiseSeconds is how often the capacity record is refreshed; it
	// expires after three periods, so a dead provider disappears.
	AdvertiseSeconds int `json:"advertise_seconds"`
	// MaxConcurrent bounds the jobs the node runs at once.
	MaxConcurrent int `json:"max_concurrent"`
	// MaxLogMiB bounds the output kept of one job, as provider and as
	// requester.
	MaxLogMiB int `json:"max_log_mib"`
	// Allow, when not empty, is the only requesters (peer IDs) served.
	Allow []string `json:"allow"`
	// Deny lists requesters (peer IDs) never served.
	Deny []string `json:"deny"`
	// DetectGPUs looks for NVIDIA GPUs at start and offers them for train
	// jobs when the GPU worker is there too.
	DetectGPUs bool `json:"detect_gpus"`
	// GPUWorker is the path of the GPU worker binary (cyxwiz-cuda-worker);
	// "" looks next to this program, then on PATH.
	GPUWorker string `json:"gpu_worker"`
}

// DefaultMarketConfig returns the market settings of a new node: a
// requester only.
func DefaultMarketConfig() MarketConfig {
	return MarketConfig{Executors: []string{market.KindWASM, market.KindTrain}, AdvertiseSeconds: 60, MaxConcurrent: 4, MaxLogMiB: 16,
		Allow: []string{}, Deny: []string{}, DetectGPUs: true}
}

// Validate reports every setting that cannot work, each naming its key.
func (c MarketConfig) Validate() error {
	var errs []error
	for _, e := range c.Executors {
		if e != market.KindWASM && e != market.KindTrain {
			errs = append(errs, fmt.Errorf("executors: %q is not an executor of this version (wasm, train)", e))
		}
	}
	if c.Provider && len(c.Executors) == 0 {
		errs = append(errs, errors.New("executors: a provider needs at least one"))
	}
	if c.CPUCores < 0 || c.MemoryMiB < 0 || c.DiskMiB < 0 {
		errs = append(errs, errors.New("cpu_cores/memory_mib/disk_mib: must not be negative"))
	}
	if c.Mint != "" {
		if err := market.CheckMint(c.Mint); err != nil {
			errs = append(errs, fmt.Errorf("mint: %w", err))
		}
	}
	if c.MaxConcurrent < 1 || c.MaxConcurrent > 1024 {
		errs = append(errs, fmt.Errorf("max_concurrent: %d is outside 1..1024", c.MaxConcurrent))
	}
	if c.MaxLogMiB < 1 || c.MaxLogMiB > 4096 {
		errs = append(errs, fmt.Errorf("max_log_mib: %d is outside 1..4096", c.MaxLogMiB))
	}
	for _, list := range []struct {
		key string
		ids []string
	}{{"allow", c.Allow}, {"deny", c.Deny}} {
		for _, id := range list.ids {
			if _, err := peer.Decode(id); err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not a peer ID", list.key, id))
			}
		}
	}
	if c.AdvertiseSeconds < 1 || c.AdvertiseSeconds > 3600 {
		errs = append(errs, fmt.Errorf("advertise_seconds: %d is outside 1..3600", c.AdvertiseSeconds))
	}
	return errors.Join(errs...)
}

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

// advertiser keeps this provider's capacity record in the DHT.
type advertiser struct {
	host   *p2p.Host
	key    crypto.PrivKey
	cfg    MarketConfig
	dir    string
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	gpus []market.GPU

	mu   sync.Mutex
	last market.Capacity
}

func startAdvertiser(h *p2p.Host, key crypto.PrivKey, cfg MarketConfig, gpus []market.GPU, dir string, log *slog.Logger) *advertiser {
	ctx, cancel := context.WithCancel(context.Background())
	a := &advertiser{host: h, key: key, cfg: cfg, gpus: gpus, dir: dir, log: log, cancel: cancel, done: make(chan struct{})}
	go a.run(ctx)
	return a
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

func (a *advertiser) close() {
	a.cancel()
	<-a.done
}

// findProviders lists the capacity records of the providers the DHT knows,
// each checked against its signature and expiry.
func findProviders(ctx context.Context, h *p2p.Host, self *advertiser, limit int) ([]market.Capacity, error) {
	var (
		mu  sync.Mutex
		out []market.Capacity
		wg  sync.WaitGroup
	)
	seen := map[peer.ID]bool{}
	if self != nil {
		if c, ok := self.current(); ok {
			out = append(out, c)
			seen[h.ID()] = true
		}
	}
	for info := range h.DHT.FindProvidersAsync(ctx, providersCID, limit) {
		if seen[info.ID] {
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
			out = append(out, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b market.Capacity) int { return strings.Compare(a.Peer, b.Peer) })
	return out, ctx.Err()
}

// marketProviders serves market.providers.
func (n *Node) marketProviders(ctx context.Context, p api.ProvidersParams) ([]api.ProviderInfo, error) {
	if p.Limit == 0 {
		p.Limit = 100
	}
	if p.Limit < 1 || p.Limit > 1000 {
		return nil, api.Errorf(api.CodeInvalidParams, "invalid params: limit %d is outside 1..1000", p.Limit)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	records, err := findProviders(ctx, n.host, n.adv, p.Limit)
	if err != nil && len(records) == 0 && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	out := []api.ProviderInfo{}
	for _, c := range records {
		if p.GPU && len(c.GPUs) == 0 {
			continue
		}
		info := api.ProviderInfo{
			ID: c.Peer, CPUCores: c.CPUCores, MemoryMiB: c.MemoryMiB, DiskMiB: c.DiskMiB,
			GPUs: []api.GPUInfo{}, Executors: c.Executors,
			PricePerCPUSecond: c.Prices.PerCPUSecond, MinPrice: c.Prices.Minimum, Mint: c.Prices.Mint,
			Relay: c.Relay, BenchScore: c.BenchScore, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt,
		}
		for _, g := range c.GPUs {
			info.GPUs = append(info.GPUs, api.GPUInfo{Model: g.Model, MemoryMiB: g.MemoryMiB, ComputeCapability: g.ComputeCapability,
				Driver: g.Driver, CUDA: g.CUDA})
		}
		out = append(out, info)
	}
	return out, nil
}

// findGPUs detects the machine's GPUs and the worker that trains on them.
// GPUs are offered only when both are there; every other case is logged
// and leaves the node training on the CPU.
func findGPUs(ctx context.Context, cfg MarketConfig, log *slog.Logger) (worker string, gpus []market.GPU) {
	if !cfg.DetectGPUs || !slices.Contains(cfg.Executors, market.KindTrain) {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	found, err := gpu.Detect(ctx)
	if err != nil {
		log.Warn("GPU detection failed; training on the CPU only", "error", err)
		return "", nil
	}
	if len(found) == 0 {
		return "", nil
	}
	worker = cfg.GPUWorker
	if worker == "" {
		worker = lookWorker()
	}
	if worker == "" {
		log.Warn("GPUs found but no GPU worker (cyxwiz-cuda-worker); training on the CPU only", "gpus", gpu.Summary(found))
		return "", nil
	}
	for _, g := range found {
		if !gpu.Matches([]gpu.GPU{g}, 1, 0, MinGPUComputeCapability) {
			log.Warn("GPU not offered: the GPU kernels need compute capability "+MinGPUComputeCapability, "gpu", g.Name,
				"compute_capability", g.ComputeCapability)
			continue
		}
		gpus = append(gpus, market.GPU{Model: g.Name, MemoryMiB: int(g.MemoryMiB), ComputeCapability: g.ComputeCapability,
			Driver: g.Driver, CUDA: g.CUDA})
	}
	if len(gpus) == 0 {
		return "", nil
	}
	log.Info("GPUs offered for train jobs", "gpus", gpu.Summary(found), "worker", worker)
	return worker, gpus
}

// MinGPUComputeCapability is the oldest GPU the worker's kernels run on
// (they are PTX for sm_80).
const MinGPUComputeCapability = "8.0"

// GPUWorkerName is the file name of the GPU worker binary.
const GPUWorkerName = "cyxwiz-cuda-worker"

// lookWorker finds the GPU worker next to this program, then on PATH.
func lookWorker() string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), GPUWorkerName)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(GPUWorkerName); err == nil {
		return p
	}
	return ""
}
