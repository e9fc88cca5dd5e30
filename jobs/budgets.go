package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
)

// opSplit asks an arbiter to co-sign an ArbiterSplit of a call budget on
// the strength of the caller's voucher.
const opSplit arbiterOp = "split"

// ErrNoSettlement: the node settles no payments.
var ErrNoSettlement = errors.New("this node settles no payments")

// ArbiterAddress returns the ledger account of the arbiter this node
// trusts (settlement.arbiter), asking it once.
func (e *Engine) ArbiterAddress(ctx context.Context) (string, error) {
	if e.pay.p.Settlement == nil {
		return "", ErrNoSettlement
	}
	return e.pay.arbiterAddress(ctx)
}

// AskArbiterSplit sends a provider's ArbiterSplit of a call budget, with
// the caller's latest voucher, to the budget's arbiter, which co-signs and
// submits it; it returns the transaction.
func (e *Engine) AskArbiterSplit(ctx context.Context, terms market.EscrowTerms, p settlement.Payout, voucher market.Envelope) (string, error) {
	var res arbiterResponse
	err := e.pay.askArbiterPeer(ctx, terms.ArbiterPeer, arbiterRequest{Op: opSplit, Terms: &terms, Kind: string(p.Kind),
		Tx: p.Tx, Amount: p.Amount, Voucher: &voucher}, &res)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		return "", fmt.Errorf("arbiter split: %w", err)
	}
	return res.Tx, nil
}

// AskArbiterRefund sends a caller's refund of a call budget past its
// deadline to the budget's arbiter, which co-signs and submits it; it
// returns the transaction.
func (e *Engine) AskArbiterRefund(ctx context.Context, terms market.EscrowTerms, p settlement.Payout) (string, error) {
	var res arbiterResponse
	err := e.pay.askArbiterPeer(ctx, terms.ArbiterPeer, arbiterRequest{Op: opRefund, Terms: &terms, Tx: p.Tx}, &res)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		return "", fmt.Errorf("arbiter refund: %w", err)
	}
	return res.Tx, nil
}

// coSignSplit is the arbiter's side of opSplit. It co-signs only a split
// of a call budget (an escrow whose ID names its caller) that this node
// arbitrates, for no more than a voucher signed by that caller promises;
// the escrow's CoSign checks the rest: the vault, the amounts and who is
// paid.
func (pay *settler) coSignSplit(ctx context.Context, from peer.ID, req arbiterRequest) (string, error) {
	esc := pay.p.Settlement.Escrow
	switch {
	case req.Terms == nil || req.Voucher == nil:
		return "", errors.New("a split names its terms and carries a voucher")
	case settlement.PayoutKind(req.Kind) != settlement.ArbiterSplit:
		return "", fmt.Errorf("an arbiter co-signs splits of kind %s, not %q", settlement.ArbiterSplit, req.Kind)
	case req.Terms.Arbiter != esc.Address():
		return "", errors.New("this arbiter is not a member of the escrow")
	}
	t := *req.Terms
	// The vault must hold these very terms: a job's escrow named a budget
	// in the request is another vault, or none.
	if err := esc.Verify(ctx, t.Ref, t.Terms); err != nil {
		return "", err
	}
	v, err := market.OpenVoucher(*req.Voucher, t.JobID, t.Amount)
	if err != nil {
		return "", err
	}
	if req.Amount > v.Amount {
		return "", fmt.Errorf("%w: the split pays %d, the caller's voucher promises %d", market.ErrVoucherInflated, req.Amount, v.Amount)
	}
	tx, err := esc.CoSign(ctx, settlement.Payout{Kind: settlement.ArbiterSplit, Ref: t.Ref, Amount: req.Amount, Tx: req.Tx}, t.Terms)
	if err != nil {
		return "", err
	}
	pay.log.Info("budget split co-signed", "escrow", t.JobID, "provider", from, "paid", req.Amount, "refunded", t.Amount-req.Amount, "tx", tx)
	return tx, nil
}
