package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/serving"
)

// recordCacheFor is how long a service record read from the DHT is used
// for calls, unless it expires sooner.
const recordCacheFor = time.Minute

// offers keeps the service records of the priced services this node
// calls, so that a call to one carries a voucher from the start.
type offers struct {
	host *p2p.Host

	mu    sync.Mutex
	known map[string]cachedOffer // by provider and service
}

type cachedOffer struct {
	rec   market.ServiceRecord
	until time.Time
}

func offerKey(provider peer.ID, service string) string { return provider.String() + "/" + service }

// cached returns the record of a priced service known to provider.
func (o *offers) cached(provider peer.ID, service string) (market.ServiceRecord, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, ok := o.known[offerKey(provider, service)]
	if !ok || time.Now().After(c.until) {
		return market.ServiceRecord{}, false
	}
	return c.rec, true
}

// lookup reads provider's service record from the DHT and keeps it.
func (o *offers) lookup(ctx context.Context, provider peer.ID, service string) (market.ServiceRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rec, err := findServiceRecord(ctx, o.host, provider, service)
	if err != nil {
		return market.ServiceRecord{}, err
	}
	until := time.Now().Add(recordCacheFor)
	if rec.ExpiresAt.Before(until) {
		until = rec.ExpiresAt
	}
	o.mu.Lock()
	if len(o.known) >= 4096 {
		o.known = map[string]cachedOffer{} // a bound, not a policy: they are read again
	}
	o.known[offerKey(provider, service)] = cachedOffer{rec: rec, until: until}
	o.mu.Unlock()
	return rec, nil
}

// isPayment reports whether err is a provider's refusal of a call for its
// payment.
func isPayment(err error) bool {
	var re *wire.ReplyError
	return errors.As(err, &re) && re.Reply.Code == wire.CodePayment
}

// callOne calls one provider: free services as they are; priced ones
// with a voucher of a budget with that provider, opened on the first
// call. A call refused for its payment is made once more on a new budget.
func (a inferAPI) callOne(ctx context.Context, pid peer.ID, service string, examples [][]float32) (serving.Answer, error) {
	rec, priced := a.offers.cached(pid, service)
	if !priced {
		ans, err := a.client.CallPaid(ctx, pid, service, examples, nil)
		if !isPayment(err) {
			return ans, err
		}
		if rec, err = a.offers.lookup(ctx, pid, service); err != nil {
			return serving.Answer{}, fmt.Errorf("%s on %s is priced, and its service record cannot be read: %w", service, pid, err)
		}
		if rec.PricePerCall == 0 {
			return serving.Answer{}, fmt.Errorf("%s on %s refuses unpaid calls, and its service record names no price", service, pid)
		}
	}
	if a.payer == nil {
		return serving.Answer{}, fmt.Errorf("%s on %s costs %d of %s a call, and this node pays for no call: it needs settlement.ledger and settlement.arbiter",
			service, pid, rec.PricePerCall, rec.Mint)
	}
	var ans serving.Answer
	var err error
	for try := range 2 {
		var voucher []byte
		var budget string
		voucher, budget, err = a.payer.Voucher(ctx, rec)
		if err != nil {
			return serving.Answer{}, fmt.Errorf("pay for a call to %s on %s: %w", service, pid, err)
		}
		ans, err = a.client.CallPaid(ctx, pid, service, examples, voucher)
		if err == nil {
			a.payer.Answered(budget, ans.Paid)
			return ans, nil
		}
		if !isPayment(err) || try == 1 {
			break
		}
		a.payer.Spent(budget) // spent, settled or refused there: a new one
	}
	return ans, err
}

// inferStats is infer.stats: the serve jobs this node runs, with what they
// answered, and its budgets of paid calls on both sides.
func (s *jobStore) inferStats() api.InferStats {
	out := api.InferStats{Served: []api.ServedModel{}, Budgets: []api.CallBudget{}}
	if d := s.deployments; d != nil {
		d.mu.Lock()
		ids := make(map[string]deployment, len(d.byID))
		maps.Copy(ids, d.byID)
		d.mu.Unlock()
		for id, dep := range ids {
			st, ok := d.srv.Stats(id)
			if !ok {
				continue
			}
			m := api.ServedModel{Job: id, Service: dep.name, Model: dep.model, Calls: st.Calls, Examples: st.Examples,
				Batches: st.Batches, PricePerCall: d.offer.PricePerCall}
			if st.Calls > 0 {
				m.MeanLatencyMS = float64(st.Latency.Microseconds()) / 1000 / float64(st.Calls)
			}
			out.Served = append(out.Served, m)
		}
		slices.SortFunc(out.Served, func(a, b api.ServedModel) int { return strings.Compare(a.Job, b.Job) })
	}
	if s.keeper != nil {
		for _, b := range s.keeper.Budgets() {
			state := "open"
			if b.Settled {
				state = "settled"
			}
			out.Budgets = append(out.Budgets, api.CallBudget{ID: b.Budget.Escrow.JobID, Role: "provider", Peer: b.Caller,
				Service: b.Budget.Service, Amount: b.Budget.Escrow.Amount, PricePerCall: b.Budget.PricePerCall,
				Calls: b.Served, Promised: b.Paid, Earned: b.Earned, State: state, Tx: b.SettleTx,
				Deadline: b.Budget.Escrow.Deadline, Error: b.Error})
		}
	}
	if s.payer != nil {
		for _, b := range s.payer.Budgets() {
			state := "open"
			switch {
			case b.RefundTx != "":
				state = "refunded"
			case b.Done:
				state = "done"
			}
			calls := uint64(0)
			if b.Price > 0 {
				calls = b.Signed / b.Price
			}
			out.Budgets = append(out.Budgets, api.CallBudget{ID: b.Escrow.JobID, Role: "caller", Peer: b.Provider,
				Service: b.Service, Amount: b.Escrow.Amount, PricePerCall: b.Price, Calls: calls, Promised: b.Signed,
				State: state, Tx: b.RefundTx, Deadline: b.Escrow.Deadline, Error: b.Error})
		}
	}
	slices.SortFunc(out.Budgets, func(a, b api.CallBudget) int { return b.Deadline.Compare(a.Deadline) })
	return out
}
