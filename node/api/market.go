package api

import (
	"context"
	"time"
)

// Market method names.
const (
	MethodMarketProviders = "market.providers"
)

// ProvidersParams are the parameters of market.providers.
type ProvidersParams struct {
	// GPU lists only providers that offer at least one GPU.
	GPU bool `json:"gpu,omitempty"`
	// Limit bounds the providers looked up (default 100).
	Limit int `json:"limit,omitempty"`
}

// GPUInfo describes one GPU of a provider.
type GPUInfo struct {
	Model             string `json:"model"`
	MemoryMiB         int    `json:"memory_mib"`
	ComputeCapability string `json:"compute_capability"`
	// Driver is the driver's version, CUDA the CUDA version it supports.
	Driver string `json:"driver,omitempty"`
	CUDA   string `json:"cuda,omitempty"`
}

// ProviderInfo is one verified capacity record.
type ProviderInfo struct {
	// ID is the provider's peer ID.
	ID string `json:"id"`
	// Self marks this node's own record: a provider does not take its
	// own jobs, so a swarm of one runs nothing.
	Self              bool      `json:"self,omitempty"`
	CPUCores          int       `json:"cpu_cores"`
	MemoryMiB         int64     `json:"memory_mib"`
	DiskMiB           int64     `json:"disk_mib"`
	GPUs              []GPUInfo `json:"gpus"`
	Executors         []string  `json:"executors"`
	PricePerCPUSecond uint64    `json:"price_per_cpu_second"`
	MinPrice          uint64    `json:"min_price"`
	Mint              string    `json:"mint,omitempty"`
	Relay             bool      `json:"relay"`
	BenchScore        float64   `json:"bench_score"`
	IssuedAt          time.Time `json:"issued_at"`
	ExpiresAt         time.Time `json:"expires_at"`
	// Capacity is what the capacity checks of trusted indexers
	// (market.attesters) say of the record's claims: verified,
	// unverified (a challenge failed: ranked last) or unchecked.
	Capacity string `json:"capacity"`
	// AttestedBy lists the indexers whose attestations decided Capacity.
	AttestedBy []string `json:"attested_by,omitempty"`
	// Reputation is this node's score of the provider and where it
	// comes from.
	Reputation Reputation `json:"reputation"`
}

// Reputation is what a node knows of a provider from its own jobs and
// the receipts it counted (docs/jobs.md, "Reputation").
type Reputation struct {
	// Score is the expected success rate in 0..1 that bid scoring uses:
	// 0.5 for a stranger.
	Score float64 `json:"score"`
	// Own counts this node's jobs with the provider that ended.
	Own int `json:"own"`
	// Receipts counts the receipts counted: other requesters' whose
	// escrow this node confirmed on the ledger, and its own mismatches.
	Receipts int `json:"receipts"`
	// Paid is what the ledger confirmed those receipts' escrows paid the
	// provider, in base units of their mints.
	Paid uint64 `json:"paid"`
	// Mismatches counts the provider's mismatches; Banned is set once
	// they reach the limit, after which this node refuses its bids.
	Mismatches int  `json:"mismatches"`
	Banned     bool `json:"banned,omitempty"`
}

// MarketProviders calls market.providers.
func (c *Client) MarketProviders(ctx context.Context, p ProvidersParams) ([]ProviderInfo, error) {
	var out []ProviderInfo
	err := c.Call(ctx, MethodMarketProviders, p, &out)
	return out, err
}
