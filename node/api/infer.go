package api

import (
	"context"
	"time"
)

// Inference method names.
const (
	MethodInferCall = "infer.call"
)

// InferCallParams are the parameters of infer.call.
type InferCallParams struct {
	// Service names the deployment: the ID of the serve job.
	Service string `json:"service"`
	// Provider is the peer serving it; for a serve job this node
	// submitted, it may be left out and the job's provider is called.
	Provider string `json:"provider,omitempty"`
	// Examples are the inputs, each a flat row of the model's input
	// values (images NHWC, scaled as the training data was).
	Examples [][]float32 `json:"examples"`
	// Replicas, 1 to 5 (default 1), asks that many distinct providers and
	// takes the answer a strict majority of them agree on, to catch a
	// provider that answers wrongly. Each replica is paid for its call.
	Replicas int `json:"replicas,omitempty"`
}

// InferCallResult is the result of infer.call.
type InferCallResult struct {
	// Outputs has one row per example: class probabilities for a
	// classifier, checked to be signed by Provider for this call.
	Outputs  [][]float32 `json:"outputs"`
	Provider string      `json:"provider"`
	// Paid is, for a priced service, the cumulative amount this node's
	// budget with the provider has promised it, in base units of the
	// service's mint.
	Paid uint64 `json:"paid,omitempty"`
	// Replicas is how many providers answered, with more than one asked;
	// Mismatched names those whose outputs differ from the majority's.
	Replicas   int      `json:"replicas,omitempty"`
	Mismatched []string `json:"mismatched,omitempty"`
}

// InferCall calls infer.call.
func (c *Client) InferCall(ctx context.Context, p InferCallParams) (InferCallResult, error) {
	var out InferCallResult
	err := c.Call(ctx, MethodInferCall, p, &out)
	return out, err
}

// MethodInferStats names infer.stats.
const MethodInferStats = "infer.stats"

// InferStats is the result of infer.stats: what this node serves and what
// its calls cost.
type InferStats struct {
	// Served lists the serve jobs this node runs as a provider.
	Served []ServedModel `json:"served"`
	// Budgets lists the budgets of paid calls this node takes as a
	// provider and pays from as a caller.
	Budgets []CallBudget `json:"budgets"`
}

// ServedModel is one serve job this node runs, with what it answered.
type ServedModel struct {
	Job     string `json:"job"`
	Service string `json:"service"`
	Model   string `json:"model"`
	// Calls and Examples answered, in Batches forward passes; the mean
	// time from a request's arrival to its answer.
	Calls         int64   `json:"calls"`
	Examples      int64   `json:"examples"`
	Batches       int64   `json:"batches"`
	MeanLatencyMS float64 `json:"mean_latency_ms"`
	// PricePerCall is what a call costs (0: free).
	PricePerCall uint64 `json:"price_per_call,omitempty"`
}

// CallBudget is one budget of paid calls, as the provider or the caller
// sees it.
type CallBudget struct {
	// ID is the budget's escrow ID.
	ID string `json:"id"`
	// Role is this node's: "provider" or "caller"; Peer the other side.
	Role    string `json:"role"`
	Peer    string `json:"peer"`
	Service string `json:"service"`
	// Amount is the budget; PricePerCall what a call costs.
	Amount       uint64 `json:"amount"`
	PricePerCall uint64 `json:"price_per_call"`
	// Calls counts the calls answered on it (provider) or paid for
	// (caller).
	Calls uint64 `json:"calls"`
	// Promised is the cumulative amount of the latest voucher.
	Promised uint64 `json:"promised"`
	// Earned is what its settlement paid the provider.
	Earned uint64 `json:"earned,omitempty"`
	// State is "open", "settled" or, on the caller, "refunded" or "done".
	State    string    `json:"state"`
	Tx       string    `json:"tx,omitempty"`
	Deadline time.Time `json:"deadline"`
	Error    string    `json:"error,omitempty"`
}

// InferStats calls infer.stats.
func (c *Client) InferStats(ctx context.Context) (InferStats, error) {
	var out InferStats
	err := c.Call(ctx, MethodInferStats, nil, &out)
	return out, err
}
