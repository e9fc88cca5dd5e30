package solana

import (
	"context"
	"encoding/binary"
	"fmt"

	sol "github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/rpc"
)

// Durable nonces.
//
// A payout may wait long for its co-signer (a requester's acceptance, a
// refund's deadline), longer than a blockhash lives, so it is built on a
// durable nonce of its proposer. A nonce serves one payout at a time: once
// a transaction advances it, every other transaction built on its old
// value is void. So a party keeps a small pool of nonce accounts at
// addresses derived from its key (seeds cyxwiz-nonce-0, -1, ...), and
// leases one to each vault it has a payout in flight for. A lease ends
// when its vault is closed; the pool grows only while that many payouts
// are in flight at once, so in the common case one nonce account per party
// serves every job, created on its first payout (80 bytes of rent, which
// stays with the account for reuse). Proposals for the same vault share a
// nonce: only one of them can land anyway.
//
// Leases live in memory. After a restart a party may hand out a nonce that
// an older, still pending proposal uses; whichever lands first voids the
// other, whose co-signer gets ErrStale and asks for a new proposal.

// acquireNonce returns the nonce account leased to vault's payouts and its
// current value, creating the account when the pool needs one more.
func (l *Ledger) acquireNonce(ctx context.Context, vault sol.PublicKey) (sol.PublicKey, sol.Hash, error) {
	l.nonceMu.Lock()
	defer l.nonceMu.Unlock()
	slot := -1
	for i, v := range l.leases {
		if v.Equals(vault) {
			slot = i
			break
		}
	}
	for i := 0; slot < 0 && i < len(l.leases); i++ {
		if l.leases[i].IsZero() {
			slot = i
			break
		}
		a, err := l.account(ctx, l.leases[i])
		if err != nil {
			return sol.PublicKey{}, sol.Hash{}, err
		}
		if a == nil { // settled: the lease is over
			l.leases[i] = sol.PublicKey{}
			slot = i
		}
	}
	if slot < 0 {
		slot = len(l.leases)
		l.leases = append(l.leases, sol.PublicKey{})
	}
	s := nonceSeed(slot)
	addr := withSeed(l.addr, s, sol.SystemProgramID)
	a, err := l.account(ctx, addr)
	if err != nil {
		return sol.PublicKey{}, sol.Hash{}, err
	}
	if a == nil {
		rent, err := l.rent(ctx, NonceAccountSize)
		if err != nil {
			return sol.PublicKey{}, sol.Hash{}, err
		}
		if _, err := l.sendNew(ctx, "create nonce account "+addr.String(), []sol.Instruction{
			createAccountWithSeed(l.addr, addr, l.addr, s, rent, NonceAccountSize, sol.SystemProgramID),
			initializeNonce(addr, l.addr),
		}); err != nil {
			return sol.PublicKey{}, sol.Hash{}, err
		}
		if a, err = l.account(ctx, addr); err != nil {
			return sol.PublicKey{}, sol.Hash{}, err
		}
	}
	value, err := nonceValue(a, l.addr)
	if err != nil {
		return sol.PublicKey{}, sol.Hash{}, fmt.Errorf("nonce account %s: %w", addr, err)
	}
	l.leases[slot] = vault
	return addr, value, nil
}

// nonceValue decodes a durable nonce account with the given authority and
// returns its stored nonce.
func nonceValue(a *rpc.Account, authority sol.PublicKey) (sol.Hash, error) {
	if a == nil {
		return sol.Hash{}, fmt.Errorf("no nonce account")
	}
	data := a.Data.GetBinary()
	if !a.Owner.Equals(sol.SystemProgramID) || len(data) != NonceAccountSize {
		return sol.Hash{}, fmt.Errorf("not a nonce account")
	}
	if binary.LittleEndian.Uint32(data[4:8]) != 1 {
		return sol.Hash{}, fmt.Errorf("nonce account not initialised")
	}
	if auth := sol.PublicKeyFromBytes(data[8:40]); !auth.Equals(authority) {
		return sol.Hash{}, fmt.Errorf("nonce authority is %s, not %s", auth, authority)
	}
	return sol.HashFromBytes(data[40:72]), nil
}

// checkNonce checks that a payout's nonce is still the proposer's current
// one.
func checkNonce(a *rpc.Account, proposer sol.PublicKey, value sol.Hash) error {
	cur, err := nonceValue(a, proposer)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStale, err)
	}
	if !cur.Equals(value) {
		return fmt.Errorf("%w: the proposer's nonce has advanced (it was %s, it is %s)", ErrStale, value, cur)
	}
	return nil
}
