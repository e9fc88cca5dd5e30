package node

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
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
	// attest is this indexer's own checker, nil on other nodes; trusted
	// are the indexers of market.attesters.
	attest  *attester
	trusted []peer.ID
}

// trustedAttesters decodes market.attesters (checked by Validate).
func trustedAttesters(ids []string) []peer.ID {
	var out []peer.ID
	for _, s := range ids {
		if id, err := peer.Decode(s); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// stateRank orders providers by their capacity state: verified first,
// unverified last.
func stateRank(s string) int {
	switch s {
	case market.CapacityVerified:
		return 0
	case market.CapacityUnverified:
		return 2
	}
	return 1
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
	states, by := capacityStates(ctx, a.host, a.attest, a.trusted, records)
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
			Capacity: cmp.Or(states[c.Peer], market.CapacityUnchecked), AttestedBy: by[c.Peer],
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
	// This node's own record first, then verified providers, unchecked,
	// unverified; each group by peer ID.
	slices.SortStableFunc(out, func(x, y api.ProviderInfo) int {
		if x.Self != y.Self {
			if x.Self {
				return -1
			}
			return 1
		}
		return cmp.Compare(stateRank(x.Capacity), stateRank(y.Capacity))
	})
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
