package solana

import (
	"fmt"

	"github.com/cyxwiz/cyxwiz/settlement"
	sol "github.com/gagliardetto/solana-go"
)

// Splits.
//
// A split (settlement.Split, settlement.ArbiterSplit) is one transaction,
// proposed by the provider on its durable nonce and co-signed by the
// requester or the arbiter:
//
//	AdvanceNonceAccount (the provider's nonce)
//	create the provider's token account if absent
//	create the requester's token account if absent   (when rest > 0)
//	TransferChecked vault -> provider, amount
//	TransferChecked vault -> requester, rest          (when rest > 0)
//	CloseAccount vault -> requester
//
// rest is everything else the vault holds, so the vault closes. The
// provider, paid by it, pays the fee, and the rent of whichever token
// account is missing. A split of the whole vault (rest 0) is the same
// transaction as a release when the requester co-signs it: both pay the
// vault to the provider.

// buildSplit builds the unsigned split transaction of pp.
func buildSplit(t settlement.Terms, p parties, pp payoutParams) (*sol.Transaction, error) {
	proposer, cosigner, err := roles(pp.kind, p)
	if err != nil {
		return nil, err
	}
	k := deriveKeys(t, p)
	signers := []sol.PublicKey{proposer, cosigner}
	prov, req := p.provider, p.requester
	ixs := []sol.Instruction{advanceNonce(pp.nonce, proposer), createATAIdempotent(prov, prov, p.mint)}
	if pp.rest > 0 {
		ixs = append(ixs, createATAIdempotent(prov, req, p.mint))
	}
	ixs = append(ixs, transferChecked(k.vault, p.mint, ata(prov, p.mint), k.multisig, signers, pp.amount, pp.decimals))
	if pp.rest > 0 {
		ixs = append(ixs, transferChecked(k.vault, p.mint, ata(req, p.mint), k.multisig, signers, pp.rest, pp.decimals))
	}
	ixs = append(ixs, closeAccount(k.vault, req, k.multisig, signers))
	tx, err := sol.NewTransaction(ixs, pp.nonceValue, sol.TransactionPayer(prov))
	if err != nil {
		return nil, fmt.Errorf("build %s payout: %w", pp.kind, err)
	}
	return tx, nil
}

// checkSplit checks a proposed split that claims to pay amount to the
// provider and returns the parameters it was built with. Its free parts
// are the proposer's nonce account and value, and the rest (checkHeld
// compares amount and rest with the vault); the check rebuilds the
// transaction from those, the terms and amount, and requires the same
// message, byte for byte, as checkPayout does.
func checkSplit(tx *sol.Transaction, t settlement.Terms, p parties, kind settlement.PayoutKind, amount uint64, decimals uint8) (payoutParams, error) {
	msg := &tx.Message
	nonce, err := nonceOf(msg)
	if err != nil {
		return payoutParams{}, err
	}
	pp := payoutParams{kind: kind, nonce: nonce, nonceValue: msg.RecentBlockhash, amount: amount, decimals: decimals}
	if len(msg.Instructions) == 6 {
		if rest, ok := transferAmount(msg, 4); ok {
			pp.rest = rest
		}
	}
	if got, ok := transferAmount(msg, 3); ok && len(msg.Instructions) == 6 && got != amount {
		return payoutParams{}, fmt.Errorf("%w: pays the provider %d, the split says %d", settlement.ErrTampered, got, amount)
	}
	if got, ok := transferAmount(msg, 2); ok && len(msg.Instructions) == 4 && got != amount {
		return payoutParams{}, fmt.Errorf("%w: pays the provider %d, the split says %d", settlement.ErrTampered, got, amount)
	}
	return pp, checkBuilt(tx, t, p, pp)
}
