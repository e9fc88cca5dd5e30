package node

import (
	"context"
	"errors"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/serving"
)

// inferAPI serves infer.*: calls to models that providers serve.
type inferAPI struct {
	host *p2p.Host
	jobs *jobs.Engine
}

func (a inferAPI) register(srv *rpc.Server) {
	srv.Register(api.MethodInferCall, rpc.Method(a.call))
}

func (a inferAPI) call(ctx context.Context, p api.InferCallParams) (api.InferCallResult, error) {
	if p.Service == "" {
		return api.InferCallResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: service is required")
	}
	if len(p.Examples) == 0 {
		return api.InferCallResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: examples is required")
	}
	provider := p.Provider
	if provider == "" {
		j, err := a.jobs.Get(p.Service)
		switch {
		case errors.Is(err, jobs.ErrNotFound):
			return api.InferCallResult{}, api.Errorf(api.CodeInvalidParams,
				"invalid params: %s is not a serve job of this node: name its provider", p.Service)
		case err != nil:
			return api.InferCallResult{}, err
		case j.Spec.Kind != market.KindServe:
			return api.InferCallResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: job %s is a %s job, not a serve job", p.Service, j.Spec.Kind)
		case j.State != market.StateRunning || j.Provider == "":
			return api.InferCallResult{}, api.Errorf(api.CodeFailed, "job %s is %s: nothing serves it now", p.Service, j.State)
		}
		provider = j.Provider
	}
	pid, err := peer.Decode(provider)
	if err != nil {
		return api.InferCallResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: provider: %v", err)
	}
	out, err := serving.Call(ctx, a.host, pid, p.Service, p.Examples)
	var re *wire.ReplyError
	if errors.As(err, &re) && re.Reply.Code == wire.CodeRejected && !strings.HasPrefix(re.Reply.Reason, "no service") {
		// The provider refused the call itself: its shape, its size.
		return api.InferCallResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: %s", re.Reply.Reason)
	}
	if err != nil {
		return api.InferCallResult{}, err
	}
	return api.InferCallResult{Outputs: out, Provider: provider}, nil
}
