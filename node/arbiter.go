package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
)

// disputeAPI serves job.dispute and arbiter.*: disputes of the jobs
// engine's escrows.
type disputeAPI struct {
	jobs    *jobs.Engine
	settles bool   // the node has a ledger account
	role    string // arbiter.* answer on an arbiter only
}

func (a disputeAPI) register(srv *rpc.Server) {
	srv.Register(api.MethodJobDispute, rpc.Method(a.dispute))
	srv.Register(api.MethodArbiterDisputes, rpc.NoParams(a.disputes))
	srv.Register(api.MethodArbiterResolve, rpc.Method(a.resolve))
}

func (a disputeAPI) dispute(ctx context.Context, p api.JobDisputeParams) (api.JobDisputeResult, error) {
	if p.ID == "" {
		return api.JobDisputeResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: id: required")
	}
	if !a.settles {
		return api.JobDisputeResult{}, api.Errorf(api.CodeFailed, "this node settles no payments (settlement.ledger is empty)")
	}
	j, err := a.jobs.Dispute(ctx, p.ID, p.Reason)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return api.JobDisputeResult{}, api.Errorf(api.CodeNotFound, "%v", err)
	case err != nil:
		return api.JobDisputeResult{}, api.Errorf(api.CodeFailed, "%v", err)
	}
	side := jobs.SideProvider
	if j.Role == jobs.RoleRequester {
		side = jobs.SideRequester
	}
	return api.JobDisputeResult{Escrow: j.Escrows[len(j.Escrows)-1].Terms.JobID, Side: side}, nil
}

func (a disputeAPI) disputes(context.Context) ([]api.DisputeInfo, error) {
	if a.role != RoleArbiter {
		return nil, api.Errorf(api.CodeFailed, "this node is not an arbiter (role %s)", a.role)
	}
	ds, err := a.jobs.Disputes()
	if err != nil {
		return nil, err
	}
	out := []api.DisputeInfo{}
	for _, d := range ds {
		out = append(out, disputeInfo(d))
	}
	return out, nil
}

func (a disputeAPI) resolve(ctx context.Context, p api.ArbiterResolveParams) (api.DisputeInfo, error) {
	if p.Winner != jobs.SideRequester && p.Winner != jobs.SideProvider {
		return api.DisputeInfo{}, api.Errorf(api.CodeInvalidParams, "invalid params: winner: %q is not requester or provider", p.Winner)
	}
	if a.role != RoleArbiter {
		return api.DisputeInfo{}, api.Errorf(api.CodeFailed, "this node is not an arbiter (role %s)", a.role)
	}
	d, err := a.jobs.Resolve(ctx, p.Escrow, p.Winner)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return api.DisputeInfo{}, api.Errorf(api.CodeNotFound, "%v", err)
	case err != nil:
		return api.DisputeInfo{}, api.Errorf(api.CodeFailed, "%v", err)
	}
	return disputeInfo(d), nil
}

func disputeInfo(d jobs.Dispute) api.DisputeInfo {
	info := api.DisputeInfo{Escrow: d.Terms.JobID, Vault: d.Terms.Vault, Requester: d.RequesterPeer, Provider: d.ProviderPeer, OpenedBy: d.OpenedBy,
		Reason: d.Reason, Amount: d.Terms.Amount, Mint: d.Terms.Mint, Deadline: d.Terms.Deadline,
		HasEvidence: len(d.Evidence) > 0, OpenedAt: d.OpenedAt, Winner: d.Winner, Tx: d.Tx}
	if len(d.Evidence) > 0 {
		var r market.Result
		if env, err := market.ParseEnvelope(d.Evidence); err == nil {
			if signer, err := env.Open(market.TypeResult, &r); err == nil && strings.HasPrefix(d.Terms.JobID, r.JobID+"/") {
				by := "signed by " + signer.String()
				if signer.String() == d.Proven[jobs.SideProvider] {
					by = "signed by the provider" // the peer that proved it is the provider
				}
				info.ResultSummary = fmt.Sprintf("%s: %s, exit code %d, %d outputs", by, r.Status, r.ExitCode, len(r.Outputs))
			}
		}
	}
	return info
}
