package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/callpay"
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
	host   *p2p.Host
	jobs   *jobs.Engine
	client *serving.Client // the node's: it keeps streams open to providers
	// offers and payer pay for calls to priced services; payer is nil on
	// a node that pays for none.
	offers *offers
	payer  *callpay.Payer
	// stats answers infer.stats.
	stats func() api.InferStats
}

func (a inferAPI) register(srv *rpc.Server) {
	srv.Register(api.MethodInferCall, rpc.Method(a.call))
	srv.Register(api.MethodInferStats, rpc.NoParams(func(context.Context) (api.InferStats, error) { return a.stats(), nil }))
}

// maxServiceProviders bounds the providers of a service looked up in the
// DHT for one call; maxAttempts, those one call tries.
const (
	maxServiceProviders = 16
	maxAttempts         = 4
)

func (a inferAPI) call(ctx context.Context, p api.InferCallParams) (api.InferCallResult, error) {
	if p.Service == "" {
		return api.InferCallResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: service is required")
	}
	if len(p.Examples) == 0 {
		return api.InferCallResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: examples is required")
	}
	replicas := max(p.Replicas, 1)
	if replicas > maxReplicas {
		return api.InferCallResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: replicas is 1 to %d", maxReplicas)
	}
	providers, err := a.providers(ctx, p)
	if err != nil {
		return api.InferCallResult{}, err
	}
	if len(providers) == 0 {
		return api.InferCallResult{}, api.Errorf(api.CodeNotFound, "no provider serves %s", p.Service)
	}
	if replicas > len(providers) {
		return api.InferCallResult{}, api.Errorf(api.CodeNotFound, "%d replicas asked, and %d providers of %s are known", replicas, len(providers), p.Service)
	}
	// Calls take turns among the replicas, and go to the next one when a
	// provider fails, has gone or no longer serves the service.
	rand.Shuffle(len(providers), func(i, j int) { providers[i], providers[j] = providers[j], providers[i] })
	budget := min(len(providers), maxAttempts*replicas)
	var answers []api.InferCallResult
	var errs []error
	for _, pid := range providers[:budget] {
		if len(answers) == replicas {
			break
		}
		ans, err := a.callOne(ctx, pid, p.Service, p.Examples)
		if err == nil {
			answers = append(answers, api.InferCallResult{Outputs: ans.Outputs, Provider: pid.String(), Paid: ans.Paid})
			continue
		}
		if errors.Is(err, serving.ErrBadCall) {
			return api.InferCallResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: %v", err)
		}
		var re *wire.ReplyError
		if errors.As(err, &re) && re.Reply.Code == wire.CodeRejected && !strings.HasPrefix(re.Reply.Reason, "no service") {
			// The provider refused the call itself: its shape, its size.
			return api.InferCallResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: %s", re.Reply.Reason)
		}
		if ctx.Err() != nil {
			return api.InferCallResult{}, err
		}
		errs = append(errs, err)
	}
	if len(answers) < replicas {
		if len(answers) == 0 {
			return api.InferCallResult{}, fmt.Errorf("no provider of %s answered: %w", p.Service, errors.Join(errs...))
		}
		return api.InferCallResult{}, fmt.Errorf("%d of the %d replicas of %s answered: %w", len(answers), replicas, p.Service, errors.Join(errs...))
	}
	return agree(p.Service, answers)
}

// maxReplicas bounds the providers one call asks at once.
const maxReplicas = 5

// agreeTolerance is how far two replicas' outputs may differ and still
// agree: the same weights on another CPU round differently.
const agreeTolerance = 1e-4

// agree picks the answer a strict majority of the replicas agree on, and
// names the providers that answered otherwise; without a majority, the
// call fails naming every provider.
func agree(service string, answers []api.InferCallResult) (api.InferCallResult, error) {
	if len(answers) == 1 {
		return answers[0], nil
	}
	best, bestVotes := 0, 0
	for i := range answers {
		votes := 0
		for j := range answers {
			if sameOutputs(answers[i].Outputs, answers[j].Outputs) {
				votes++
			}
		}
		if votes > bestVotes {
			best, bestVotes = i, votes
		}
	}
	if 2*bestVotes <= len(answers) {
		var who []string
		for _, a := range answers {
			who = append(who, a.Provider)
		}
		return api.InferCallResult{}, fmt.Errorf("the %d replicas of %s disagree, with no majority: %s", len(answers), service, strings.Join(who, ", "))
	}
	out := answers[best]
	out.Replicas = len(answers)
	for _, a := range answers {
		if !sameOutputs(a.Outputs, out.Outputs) {
			out.Mismatched = append(out.Mismatched, a.Provider)
		}
	}
	return out, nil
}

// sameOutputs reports whether two answers agree: the same shape, and
// every value within agreeTolerance.
func sameOutputs(a, b [][]float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if math.Abs(float64(a[i][j])-float64(b[i][j])) > agreeTolerance {
				return false
			}
		}
	}
	return true
}

// providers lists the peers to call for p: the one it names; else the
// providers of this node's running serve jobs of the service; else, for a
// service this node did not deploy, those the DHT knows to serve it.
func (a inferAPI) providers(ctx context.Context, p api.InferCallParams) ([]peer.ID, error) {
	if p.Provider != "" {
		pid, err := peer.Decode(p.Provider)
		if err != nil {
			return nil, api.Errorf(api.CodeInvalidParams, "invalid params: provider: %v", err)
		}
		return []peer.ID{pid}, nil
	}
	if j, err := a.jobs.Get(p.Service); err == nil && j.Spec.Kind != market.KindServe {
		return nil, api.Errorf(api.CodeInvalidParams, "invalid params: job %s is a %s job, not a serve job", p.Service, j.Spec.Kind)
	}
	seen := map[peer.ID]bool{a.host.ID(): true}
	var out []peer.ID
	add := func(id peer.ID) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	all, err := a.jobs.List()
	if err != nil {
		return nil, err
	}
	for _, j := range all {
		if j.Spec.Kind != market.KindServe || j.State != market.StateRunning || j.Provider == "" || serviceOf(j) != p.Service {
			continue
		}
		if id, err := peer.Decode(j.Provider); err == nil {
			add(id)
		}
	}
	// Anyone can announce any service name in the DHT: a deployment of
	// this node is called on its own jobs' providers only.
	if len(out) > 0 {
		return out, nil
	}
	lookup, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for info := range a.host.DHT.FindProvidersAsync(lookup, serving.ServiceKey(p.Service), maxServiceProviders) {
		add(info.ID)
	}
	return out, nil
}

// serviceOf is the service a serve job deploys.
func serviceOf(j *jobs.Job) string {
	if j.Spec.Serve != nil && j.Spec.Serve.Service != "" {
		return j.Spec.Serve.Service
	}
	return j.ID
}

// inferClient is the node's serving.Client as a service: the node owns
// it, and Close ends its streams.
type inferClient struct{ c *serving.Client }

// Start implements service; the client needs no start.
func (inferClient) Start(context.Context) error { return nil }

// Close ends the client's streams.
func (s inferClient) Close() error { return s.c.Close() }
