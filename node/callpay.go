package node

import (
	"context"
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/callpay"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/metrics"
	"github.com/cyxwiz/cyxwiz/settlement"
)

// newKeeper builds the provider's keeper of call budgets when this node
// serves models at a price and settles on a ledger; it keeps its budgets
// in the job store. It starts with the engine (startCallPay).
func (s *jobStore) newKeeper() error {
	set := s.params.Settlement
	if set == nil || s.offer.PricePerCall == 0 {
		return nil
	}
	var settled func(uint64)
	if s.metrics != nil {
		settled = s.metrics.ObserveEarned
	}
	k, err := callpay.NewKeeper(callpay.KeeperParams{Host: s.params.Host, Escrow: set.Escrow, DB: s.db,
		Logger: s.log.With("system", "callpay"), Offer: s.deployments.record, Settled: settled,
		AskArbiter: func(ctx context.Context, t market.EscrowTerms, p settlement.Payout, v market.Envelope) (string, error) {
			return s.engine.AskArbiterSplit(ctx, t, p, v)
		}})
	if err != nil {
		return err
	}
	s.keeper = k
	s.deployments.ended = k.Ended
	return nil
}

// budgetLoad is what the budgets of paid calls hold now, for the metrics.
func (s *jobStore) budgetLoad() metrics.BudgetLoad {
	var l metrics.BudgetLoad
	if s.keeper != nil {
		for _, b := range s.keeper.Budgets() {
			if !b.Settled {
				l.OpenProvider++
				l.Owed += b.Served * b.Budget.PricePerCall
			}
		}
	}
	if s.payer != nil {
		for _, b := range s.payer.Budgets() {
			if !b.Done {
				l.OpenCaller++
			}
		}
	}
	return l
}

// startCallPay starts the keeper, once the engine is built, and builds
// and starts the caller's payer when this node settles on a ledger with
// an arbiter.
func (s *jobStore) startCallPay() error {
	if s.keeper != nil {
		s.keeper.Start()
	}
	set := s.params.Settlement
	if set == nil {
		return nil
	}
	arbiter, err := peer.Decode(s.cfg.Settlement.Arbiter)
	if err != nil {
		return nil // a node that names no arbiter pays for no call
	}
	p, err := callpay.NewPayer(callpay.PayerParams{Host: s.params.Host, Key: s.params.Key, Escrow: set.Escrow, DB: s.db,
		Logger: s.log.With("system", "callpay"), Arbiter: arbiter, ArbiterAddress: s.engine.ArbiterAddress,
		Refund: s.engine.AskArbiterRefund})
	if err != nil {
		return err
	}
	p.Start()
	s.payer = p
	return nil
}

// closeCallPay stops the budgets' loops and saves them.
func (s *jobStore) closeCallPay() error {
	var errs []error
	if s.keeper != nil {
		errs = append(errs, s.keeper.Close())
	}
	if s.payer != nil {
		errs = append(errs, s.payer.Close())
	}
	return errors.Join(errs...)
}
