package indexer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
)

// escrowCheckEvery paces the escrow checker; each round checks at most
// escrowCheckBatch receipts.
const (
	escrowCheckEvery = 5 * time.Second
	escrowCheckBatch = 64
)

// checkEscrows looks up on the ledger the escrow each paid receipt
// names, and records whether the ledger agrees: the vault settled the way
// the receipt says, and a release paid the provider's account. A ledger
// that fails ends the round; the receipts wait for the next.
func (s *Service) checkEscrows() {
	tick := time.NewTicker(escrowCheckEvery)
	defer tick.Stop()
	for {
		s.checkEscrowRound()
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Service) checkEscrowRound() {
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	rs, err := s.p.Store.UncheckedEscrows(ctx, escrowCheckBatch)
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("list unchecked escrows", "error", err)
		}
		return
	}
	for _, r := range rs {
		check, err := s.checkEscrow(ctx, r)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Debug("escrow check postponed", "receipt", r.ID, "error", err)
			}
			return
		}
		check.CheckedAt = time.Now().UTC()
		if err := s.p.Store.SetEscrowCheck(ctx, check); err != nil {
			s.log.Warn("record escrow check", "receipt", r.ID, "error", err)
			return
		}
	}
}

// checkEscrow asks the ledger about one receipt's escrow. An error means
// the ledger could not answer now.
func (s *Service) checkEscrow(ctx context.Context, r indexdb.Receipt) (indexdb.EscrowCheck, error) {
	check := indexdb.EscrowCheck{ReceiptID: r.ID}
	sr, err := market.ParseSignedReceipt(r.Record)
	if err != nil {
		return s.mismatch(check, "the stored receipt does not decode: "+err.Error()), nil
	}
	rec, _, err := sr.Open()
	if err != nil || rec.Escrow == nil {
		return s.mismatch(check, "the stored receipt names no escrow"), nil
	}
	e := rec.Escrow
	payee := e.Terms.Provider
	if d, ok := s.p.Escrow.(settlement.RefDeriver); ok {
		ref, err := d.DeriveRef(e.Terms)
		if err != nil || ref.Vault != e.Vault || ref.Multisig != e.Multisig {
			return s.mismatch(check, "the vault is not the one the receipt's terms lock into"), nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := s.p.Escrow.Status(ctx, settlement.Ref{Multisig: e.Multisig, Vault: e.Vault})
	switch {
	case errors.Is(err, settlement.ErrVaultMismatch):
		check.State, check.Detail = indexdb.CheckMissing, "the ledger knows no such vault"
		return check, nil
	case err != nil:
		return check, err
	}
	switch {
	case string(st.State) != e.State:
		return s.mismatch(check, fmt.Sprintf("the receipt says %s, the ledger says %s", e.State, st.State)), nil
	case st.State == settlement.Released && st.PaidTo != "" && st.PaidTo != payee:
		return s.mismatch(check, fmt.Sprintf("released to %s, not the provider's %s", st.PaidTo, payee)), nil
	}
	check.State, check.Detail = indexdb.CheckConfirmed, fmt.Sprintf("%s on the ledger", st.State)
	return check, nil
}

func (s *Service) mismatch(c indexdb.EscrowCheck, detail string) indexdb.EscrowCheck {
	c.State, c.Detail = indexdb.CheckMismatch, detail
	return c
}
