package api

import (
	"context"
	"time"
)

// Dispute method names.
const (
	MethodJobDispute      = "job.dispute"
	MethodArbiterDisputes = "arbiter.disputes"
	MethodArbiterResolve  = "arbiter.resolve"
)

// JobDisputeParams are the parameters of job.dispute.
type JobDisputeParams struct {
	// ID is a job this node requested, or one it provided.
	ID string `json:"id"`
	// Reason says what is wrong, for the arbiter (at most 1000 bytes).
	Reason string `json:"reason,omitempty"`
}

// JobDisputeResult says which side opened the dispute of which escrow.
type JobDisputeResult struct {
	Escrow string `json:"escrow"`
	Side   string `json:"side"` // requester or provider
}

// DisputeInfo is one dispute an arbiter was asked to decide.
type DisputeInfo struct {
	// Escrow is the escrow's ID (job ID and award number), Vault its
	// vault's address.
	Escrow        string    `json:"escrow"`
	Vault         string    `json:"vault"`
	Requester     string    `json:"requester"` // peer IDs
	Provider      string    `json:"provider"`
	OpenedBy      string    `json:"opened_by"`
	Reason        string    `json:"reason,omitempty"`
	Amount        uint64    `json:"amount"`
	Mint          string    `json:"mint"`
	Deadline      time.Time `json:"deadline"`
	HasEvidence   bool      `json:"has_evidence"`
	OpenedAt      time.Time `json:"opened_at"`
	Winner        string    `json:"winner,omitempty"`
	Tx            string    `json:"tx,omitempty"`
	ResultSummary string    `json:"result_summary,omitempty"`
}

// ArbiterResolveParams are the parameters of arbiter.resolve.
type ArbiterResolveParams struct {
	// Escrow is the escrow's ID, or its vault's address when several
	// disputes name the same ID.
	Escrow string `json:"escrow"`
	// Winner is requester (refunded) or provider (paid).
	Winner string `json:"winner"`
}

// JobDispute calls job.dispute.
func (c *Client) JobDispute(ctx context.Context, p JobDisputeParams) (JobDisputeResult, error) {
	var out JobDisputeResult
	err := c.Call(ctx, MethodJobDispute, p, &out)
	return out, err
}

// ArbiterDisputes calls arbiter.disputes.
func (c *Client) ArbiterDisputes(ctx context.Context) ([]DisputeInfo, error) {
	var out []DisputeInfo
	err := c.Call(ctx, MethodArbiterDisputes, nil, &out)
	return out, err
}

// ArbiterResolve calls arbiter.resolve.
func (c *Client) ArbiterResolve(ctx context.Context, p ArbiterResolveParams) (DisputeInfo, error) {
	var out DisputeInfo
	err := c.Call(ctx, MethodArbiterResolve, p, &out)
	return out, err
}
