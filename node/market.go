package node

import (
	"context"
	"errors"
	"time"

	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
	"github.com/cyxwiz/cyxwiz/p2p"
)

// marketAPI serves market.providers: the capacity records in the DHT,
// this provider's own first, each with this node's reputation of it.
type marketAPI struct {
	host *p2p.Host
	adv  *advertiser // nil on a node that provides nothing
	jobs *jobs.Engine
}

func (a marketAPI) register(srv *rpc.Server) {
	srv.Register(api.MethodMarketProviders, rpc.Method(a.providers))
}

func (a marketAPI) providers(ctx context.Context, p api.ProvidersParams) ([]api.ProviderInfo, error) {
	if p.Limit == 0 {
		p.Limit = 100
	}
	if p.Limit < 1 || p.Limit > 1000 {
		return nil, api.Errorf(api.CodeInvalidParams, "invalid params: limit %d is outside 1..1000", p.Limit)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	records, err := findProviders(ctx, a.host, a.adv, p.Limit)
	if err != nil && len(records) == 0 && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	out := []api.ProviderInfo{}
	for _, c := range records {
		if p.GPU && len(c.GPUs) == 0 {
			continue
		}
		info := api.ProviderInfo{
			ID: c.Peer, Self: c.Peer == a.host.ID().String(), CPUCores: c.CPUCores, MemoryMiB: c.MemoryMiB, DiskMiB: c.DiskMiB,
			GPUs: []api.GPUInfo{}, Executors: c.Executors,
			PricePerCPUSecond: c.Prices.PerCPUSecond, MinPrice: c.Prices.Minimum, Mint: c.Prices.Mint,
			Relay: c.Relay, BenchScore: c.BenchScore, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt,
		}
		if a.jobs != nil {
			r := a.jobs.Reputation(c.Peer)
			info.Reputation = api.Reputation{Score: r.Score, Own: r.Own, Receipts: r.Receipts, Paid: r.Paid,
				Mismatches: r.Mismatches, Banned: r.Banned}
		}
		for _, g := range c.GPUs {
			info.GPUs = append(info.GPUs, api.GPUInfo{Model: g.Model, MemoryMiB: g.MemoryMiB, ComputeCapability: g.ComputeCapability,
				Driver: g.Driver, CUDA: g.CUDA})
		}
		out = append(out, info)
	}
	return out, nil
}

// otherProviders counts the providers the DHT knows of besides this node,
// a few at the most: enough to tell a node that is alone.
func otherProviders(ctx context.Context, h *p2p.Host) (int, error) {
	records, err := findProviders(ctx, h, nil, 8)
	n := 0
	for _, c := range records {
		if c.Peer != h.ID().String() {
			n++
		}
	}
	if n > 0 {
		return n, nil
	}
	return 0, err
}
