package node

import (
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/callpay"
)

// startCallPay builds the budgets of paid calls, once the engine is
// built: the provider's keeper when this node serves models at a price,
// and the caller's payer when it settles on a ledger with an arbiter. They
// keep their budgets in the job store.
func (s *jobStore) startCallPay() error {
	set := s.params.Settlement
	if set == nil {
		return nil
	}
	if s.deployments != nil && s.offer.PricePerCall > 0 {
		k, err := callpay.NewKeeper(callpay.KeeperParams{Host: s.params.Host, Escrow: set.Escrow, DB: s.db,
			Logger: s.log.With("system", "callpay"), Offer: s.deployments.record, AskArbiter: s.engine.AskArbiterSplit})
		if err != nil {
			return err
		}
		k.Start()
		s.keeper = k
		s.deployments.mu.Lock()
		s.deployments.ended = k.Ended
		s.deployments.mu.Unlock()
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
