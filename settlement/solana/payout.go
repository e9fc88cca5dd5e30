package solana

import (
	"context"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
)

// Propose builds a payout of everything in the vault (the terms' amount,
// and any surplus someone sent in) on one of this party's durable nonces,
// and signs it. Proposing again for the same vault reuses
// the same nonce account, so at most one of the proposals can land.
func (l *Ledger) Propose(ctx context.Context, ref settlement.Ref, t settlement.Terms, kind settlement.PayoutKind) (settlement.Payout, error) {
	if kind.IsSplit() {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w: a split takes an amount (ProposeSplit)", kind, settlement.ErrInvalidTerms)
	}
	return l.propose(ctx, ref, t, kind, 0)
}

// ProposeSplit builds a split on one of this party's durable nonces, as
// Propose does, and signs it: amount to the provider, the rest of the
// vault (the terms' amount less amount, and any surplus someone sent in)
// back to the requester, then the vault closed.
func (l *Ledger) ProposeSplit(ctx context.Context, ref settlement.Ref, t settlement.Terms, kind settlement.PayoutKind, amount uint64) (settlement.Payout, error) {
	if !kind.IsSplit() {
		return settlement.Payout{}, fmt.Errorf("propose split: %w: %q is not a split kind", settlement.ErrInvalidTerms, kind)
	}
	if err := settlement.CheckSplit(t, amount); err != nil {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w", kind, err)
	}
	return l.propose(ctx, ref, t, kind, amount)
}

// propose builds and signs a payout of kind; split is the provider's part
// of a split.
func (l *Ledger) propose(ctx context.Context, ref settlement.Ref, t settlement.Terms, kind settlement.PayoutKind, split uint64) (settlement.Payout, error) {
	p, err := parseTerms(t)
	if err != nil {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w", kind, err)
	}
	proposer, _, err := roles(kind, p)
	if err != nil {
		return settlement.Payout{}, fmt.Errorf("propose: %w", err)
	}
	if !proposer.Equals(l.addr) {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w: this party does not propose it", kind, settlement.ErrNotMember)
	}
	k := deriveKeys(t, p)
	if ref.Multisig != k.multisig.String() || ref.Vault != k.vault.String() {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w: the escrow is not the one these terms lock into", kind, settlement.ErrVaultMismatch)
	}
	v, err := l.account(ctx, k.vault)
	if err != nil {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w", kind, err)
	}
	if v == nil {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w: no vault at %s", kind, settlement.ErrClosed, k.vault)
	}
	vault, err := checkVault(v, k.multisig, p, t.Amount)
	if err != nil {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w", kind, err)
	}
	decimals, err := l.decimals(ctx, p.mint)
	if err != nil {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w", kind, err)
	}
	nonce, value, err := l.acquireNonce(ctx, k.vault)
	if err != nil {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w", kind, err)
	}
	pp := payoutParams{kind: kind, nonce: nonce, nonceValue: value, amount: vault.amount, decimals: decimals}
	if kind.IsSplit() { // checkVault saw vault.amount >= t.Amount >= split
		pp.amount, pp.rest = split, vault.amount-split
	}
	tx, err := buildPayout(t, p, pp)
	if err != nil {
		return settlement.Payout{}, fmt.Errorf("propose: %w", err)
	}
	if err := l.sign(tx); err != nil {
		return settlement.Payout{}, fmt.Errorf("propose %s: sign: %w", kind, err)
	}
	raw, err := tx.MarshalBinary()
	if err != nil {
		return settlement.Payout{}, fmt.Errorf("propose %s: encode: %w", kind, err)
	}
	return settlement.Payout{Kind: kind, Ref: ref, Amount: split, Tx: raw}, nil
}

// CoSign checks a proposed payout against the terms, refusing any
// difference with settlement.ErrTampered, signs it, submits it and waits
// for its confirmation. It returns the transaction's signature. A payout
// the ledger has moved past (its nonce used, or more sent into the vault
// since) is refused with ErrStale: the proposer proposes again.
//
// A split must pay exactly po.Amount to the provider and the rest of the
// vault to the requester (an amount of 0 or over the terms' amount is
// refused with settlement.ErrInvalidTerms). A refund is co-signed only
// once the cluster's clock is past the deadline. A payout of a vault already settled fails with
// settlement.ErrClosed; when this very payout settled it, the signature is
// returned along with that error, so a co-sign whose outcome was lost can
// be repeated.
func (l *Ledger) CoSign(ctx context.Context, po settlement.Payout, t settlement.Terms) (string, error) {
	p, err := parseTerms(t)
	if err != nil {
		return "", fmt.Errorf("co-sign %s: %w", po.Kind, err)
	}
	proposer, cosigner, err := roles(po.Kind, p)
	if err != nil {
		return "", fmt.Errorf("co-sign: %w: %w", settlement.ErrTampered, err)
	}
	if !cosigner.Equals(l.addr) {
		return "", fmt.Errorf("co-sign %s: %w: this party does not co-sign it", po.Kind, settlement.ErrNotMember)
	}
	k := deriveKeys(t, p)
	if po.Ref.Multisig != k.multisig.String() || po.Ref.Vault != k.vault.String() {
		return "", fmt.Errorf("co-sign %s: %w: the payout names another escrow", po.Kind, settlement.ErrTampered)
	}
	tx, err := decodeTx(po.Tx)
	if err != nil {
		return "", fmt.Errorf("co-sign %s: %w", po.Kind, err)
	}
	decimals, err := l.decimals(ctx, p.mint)
	if err != nil {
		return "", fmt.Errorf("co-sign %s: %w", po.Kind, err)
	}
	var pp payoutParams
	if po.Kind.IsSplit() {
		if err := settlement.CheckSplit(t, po.Amount); err != nil {
			return "", fmt.Errorf("co-sign %s: %w", po.Kind, err)
		}
		pp, err = checkSplit(tx, t, p, po.Kind, po.Amount, decimals)
	} else {
		pp, err = checkPayout(tx, t, p, po.Kind, decimals)
	}
	if err != nil {
		return "", fmt.Errorf("co-sign %s: %w", po.Kind, err)
	}
	v, err := l.account(ctx, k.vault)
	if err != nil {
		return "", fmt.Errorf("co-sign %s: %w", po.Kind, err)
	}
	if v == nil {
		// Settled. If by this very payout, say so with its signature.
		if err := l.sign(tx); err == nil {
			if done, err := l.landed(ctx, tx.Signatures[0]); err == nil && done {
				return tx.Signatures[0].String(), fmt.Errorf("co-sign %s: %w: by this payout, %s", po.Kind, settlement.ErrClosed, tx.Signatures[0])
			}
		}
		return "", fmt.Errorf("co-sign %s: %w: no vault at %s", po.Kind, settlement.ErrClosed, k.vault)
	}
	vault, err := checkVault(v, k.multisig, p, t.Amount)
	if err != nil {
		return "", fmt.Errorf("co-sign %s: %w", po.Kind, err)
	}
	if err := checkHeld(pp, vault.amount); err != nil {
		return "", fmt.Errorf("co-sign %s: %w", po.Kind, err)
	}
	if po.Kind == settlement.Refund {
		now, err := l.LedgerTime(ctx)
		if err != nil {
			return "", fmt.Errorf("co-sign refund: %w", err)
		}
		if !now.After(t.Deadline) {
			return "", fmt.Errorf("co-sign refund: %w: the cluster's clock says %s, the deadline is %s",
				settlement.ErrTooEarly, now.UTC().Format(time.RFC3339), t.Deadline.UTC().Format(time.RFC3339))
		}
	}
	n, err := l.account(ctx, pp.nonce)
	if err != nil {
		return "", fmt.Errorf("co-sign %s: %w", po.Kind, err)
	}
	if err := checkNonce(n, proposer, pp.nonceValue); err != nil {
		return "", fmt.Errorf("co-sign %s: %w", po.Kind, err)
	}
	if err := l.sign(tx); err != nil {
		return "", fmt.Errorf("co-sign %s: sign: %w", po.Kind, err)
	}
	sig, err := l.submit(ctx, "co-sign "+string(po.Kind), tx)
	if err != nil {
		return "", err
	}
	return sig.String(), nil
}
