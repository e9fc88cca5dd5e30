package settlementtest

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
)

// splitEnv is one case's ledger with the helpers of the split cases.
type splitEnv struct {
	Env
	t *testing.T
}

func (e splitEnv) balance(who settlement.Escrow) uint64 {
	e.t.Helper()
	b, err := who.Balance(context.Background(), who.Address(), e.Mint)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// lock locks amount and has the provider verify the vault.
func (e splitEnv) lock(amount uint64) (settlement.Ref, settlement.Terms) {
	e.t.Helper()
	ctx := context.Background()
	tr := settlement.Terms{JobID: fmt.Sprintf("job-%d", mrand.Int()), Requester: e.Requester.Address(), Provider: e.Provider.Address(),
		Arbiter: e.Arbiter.Address(), Mint: e.Mint, Amount: amount, Deadline: e.Now().Add(time.Hour)}
	ref, err := e.Requester.Lock(ctx, tr)
	if err != nil {
		e.t.Fatalf("lock: %v", err)
	}
	if err := e.Provider.Verify(ctx, ref, tr); err != nil {
		e.t.Fatalf("verify: %v", err)
	}
	return ref, tr
}

// propose has the provider propose a split.
func (e splitEnv) propose(ref settlement.Ref, tr settlement.Terms, kind settlement.PayoutKind, amount uint64) settlement.Payout {
	e.t.Helper()
	po, err := e.Provider.ProposeSplit(context.Background(), ref, tr, kind, amount)
	if err != nil {
		e.t.Fatalf("propose %s of %d: %v", kind, amount, err)
	}
	if po.Kind != kind || po.Amount != amount || po.Ref != ref {
		e.t.Fatalf("proposed %s of %d on %+v, want %s of %d on %+v", po.Kind, po.Amount, po.Ref, kind, amount, ref)
	}
	return po
}

// cosigner returns the party that co-signs a split of kind.
func (e splitEnv) cosigner(kind settlement.PayoutKind) settlement.Escrow {
	if kind == settlement.ArbiterSplit {
		return e.Arbiter
	}
	return e.Requester
}

// locked requires the vault untouched: locked, with amount in it.
func (e splitEnv) locked(ref settlement.Ref, amount uint64) {
	e.t.Helper()
	st, err := e.Requester.Status(context.Background(), ref)
	if err != nil || st.State != settlement.Locked || st.Amount != amount {
		e.t.Fatalf("vault after refused splits: %+v, %v; want locked with %d", st, err, amount)
	}
}

// split runs the cases of the split payouts: the hostile ones first,
// then the payouts that must go through.
func split(t *testing.T, newEnv func(t *testing.T) Env) {
	ctx := context.Background()
	env := func(t *testing.T) splitEnv { return splitEnv{Env: newEnv(t), t: t} }
	kinds := []settlement.PayoutKind{settlement.Split, settlement.ArbiterSplit}

	t.Run("split: only the provider proposes, only the kind's co-signer signs", func(t *testing.T) {
		e := env(t)
		ref, tr := e.lock(1000)
		for _, kind := range kinds {
			for _, who := range []settlement.Escrow{e.Requester, e.Arbiter} {
				if _, err := who.ProposeSplit(ctx, ref, tr, kind, 400); !errors.Is(err, settlement.ErrNotMember) {
					t.Fatalf("%s proposed by %s: %v, want ErrNotMember", kind, who.Address(), err)
				}
			}
			po := e.propose(ref, tr, kind, 400)
			for _, who := range []settlement.Escrow{e.Requester, e.Provider, e.Arbiter} {
				if who == e.cosigner(kind) {
					continue
				}
				if _, err := who.CoSign(ctx, po, tr); !errors.Is(err, settlement.ErrNotMember) {
					t.Fatalf("%s co-signed by %s: %v, want ErrNotMember", kind, who.Address(), err)
				}
			}
		}
		e.locked(ref, 1000)
	})

	t.Run("split: amounts of 0 and over the vault are refused", func(t *testing.T) {
		e := env(t)
		ref, tr := e.lock(1000)
		for _, kind := range kinds {
			for _, amount := range []uint64{0, 1001, 1 << 63} {
				if _, err := e.Provider.ProposeSplit(ctx, ref, tr, kind, amount); !errors.Is(err, settlement.ErrInvalidTerms) {
					t.Fatalf("propose %s of %d: %v, want ErrInvalidTerms", kind, amount, err)
				}
			}
			good := e.propose(ref, tr, kind, 600)
			for _, amount := range []uint64{0, 1001, 1 << 63} {
				bad := good
				bad.Amount = amount
				if _, err := e.cosigner(kind).CoSign(ctx, bad, tr); !errors.Is(err, settlement.ErrInvalidTerms) {
					t.Fatalf("co-sign %s claiming %d: %v, want ErrInvalidTerms", kind, amount, err)
				}
			}
		}
		if _, err := e.Provider.Propose(ctx, ref, tr, settlement.Split); !errors.Is(err, settlement.ErrInvalidTerms) {
			t.Fatalf("a split through Propose, without an amount: %v, want ErrInvalidTerms", err)
		}
		if _, err := e.Provider.ProposeSplit(ctx, ref, tr, settlement.Release, 600); !errors.Is(err, settlement.ErrInvalidTerms) {
			t.Fatalf("ProposeSplit of a release: %v, want ErrInvalidTerms", err)
		}
		e.locked(ref, 1000)
	})

	t.Run("split: tampered splits are refused", func(t *testing.T) {
		e := env(t)
		ref, tr := e.lock(1000)
		for _, kind := range kinds {
			good := e.propose(ref, tr, kind, 300)
			for _, amount := range []uint64{1, 299, 301, 700, 1000} {
				bad := good
				bad.Amount = amount
				if _, err := e.cosigner(kind).CoSign(ctx, bad, tr); !errors.Is(err, settlement.ErrTampered) {
					t.Fatalf("%s built for 300, claiming %d: %v, want ErrTampered", kind, amount, err)
				}
			}
			for i := 0; i < len(good.Tx); i += max(1, len(good.Tx)/20) {
				bad := good
				bad.Tx = append([]byte(nil), good.Tx...)
				bad.Tx[i] ^= 0x5a
				if _, err := e.cosigner(kind).CoSign(ctx, bad, tr); err == nil {
					t.Fatalf("%s with byte %d flipped was accepted", kind, i)
				}
			}
		}
		// Relabelled: a split co-signed as another kind.
		asArbiter := e.propose(ref, tr, settlement.Split, 300)
		asArbiter.Kind = settlement.ArbiterSplit
		if _, err := e.Arbiter.CoSign(ctx, asArbiter, tr); !errors.Is(err, settlement.ErrTampered) {
			t.Fatalf("a split relabelled for the arbiter: %v, want ErrTampered", err)
		}
		asSplit := e.propose(ref, tr, settlement.ArbiterSplit, 300)
		asSplit.Kind = settlement.Split
		if _, err := e.Requester.CoSign(ctx, asSplit, tr); !errors.Is(err, settlement.ErrTampered) {
			t.Fatalf("an arbiter split relabelled for the requester: %v, want ErrTampered", err)
		}
		asRelease := e.propose(ref, tr, settlement.Split, 300)
		asRelease.Kind, asRelease.Amount = settlement.Release, 0
		if _, err := e.Requester.CoSign(ctx, asRelease, tr); !errors.Is(err, settlement.ErrTampered) {
			t.Fatalf("a split relabelled as a release: %v, want ErrTampered", err)
		}
		e.locked(ref, 1000)
		// The untampered split still goes through.
		po := e.propose(ref, tr, settlement.Split, 300)
		if _, err := e.Requester.CoSign(ctx, po, tr); err != nil {
			t.Fatalf("the untampered split: %v", err)
		}
		if got := e.balance(e.Provider); got != 300 {
			t.Fatalf("provider holds %d, want 300", got)
		}
	})

	t.Run("split: a settled escrow splits no more", func(t *testing.T) {
		for _, kind := range kinds {
			e := env(t)
			ref, tr := e.lock(1000)
			early := e.propose(ref, tr, kind, 250)
			po, err := e.Provider.Propose(ctx, ref, tr, settlement.Release)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Requester.CoSign(ctx, po, tr); err != nil {
				t.Fatalf("release: %v", err)
			}
			if _, err := e.cosigner(kind).CoSign(ctx, early, tr); !errors.Is(err, settlement.ErrClosed) {
				t.Fatalf("%s proposed before the release, co-signed after: %v, want ErrClosed", kind, err)
			}
			if _, err := e.Provider.ProposeSplit(ctx, ref, tr, kind, 250); !errors.Is(err, settlement.ErrClosed) {
				t.Fatalf("%s proposed after the release: %v, want ErrClosed", kind, err)
			}
			if got := e.balance(e.Provider); got != 1000 {
				t.Fatalf("provider holds %d after the release, want 1000", got)
			}
		}
	})

	t.Run("split: a landed split is not replayed", func(t *testing.T) {
		for _, kind := range kinds {
			e := env(t)
			ref, tr := e.lock(1000)
			po := e.propose(ref, tr, kind, 100)
			if _, err := e.cosigner(kind).CoSign(ctx, po, tr); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			if _, err := e.cosigner(kind).CoSign(ctx, po, tr); !errors.Is(err, settlement.ErrClosed) {
				t.Fatalf("%s replayed: %v, want ErrClosed", kind, err)
			}
			if p, r := e.balance(e.Provider), e.balance(e.Requester); p != 100 || r != e.Funds-100 {
				t.Fatalf("%s replayed: provider holds %d, requester %d; want 100 and %d", kind, p, r, e.Funds-100)
			}
		}
	})

	t.Run("split: pays the amount to the provider and the rest to the requester", func(t *testing.T) {
		for _, kind := range kinds {
			e := env(t)
			sum := func() uint64 { return e.balance(e.Requester) + e.balance(e.Provider) + e.balance(e.Arbiter) }
			start := sum()
			for _, amount := range []uint64{1, 300, 999, 1000} {
				prov, req := e.balance(e.Provider), e.balance(e.Requester)
				ref, tr := e.lock(1000)
				po := e.propose(ref, tr, kind, amount)
				if _, err := e.cosigner(kind).CoSign(ctx, po, tr); err != nil {
					t.Fatalf("%s of %d: %v", kind, amount, err)
				}
				if got := e.balance(e.Provider) - prov; got != amount {
					t.Fatalf("%s of %d: the provider got %d", kind, amount, got)
				}
				if got := req - e.balance(e.Requester); got != amount {
					t.Fatalf("%s of %d: the requester spent %d", kind, amount, got)
				}
				st, err := e.Requester.Status(ctx, ref)
				want := settlement.Status{State: settlement.Released, PaidTo: e.Provider.Address(), Returned: 1000 - amount}
				if err != nil || st != want {
					t.Fatalf("%s of %d: status %+v, %v; want %+v", kind, amount, st, err, want)
				}
			}
			if end := sum(); end != start {
				t.Fatalf("%s: balances sum to %d, %d before", kind, end, start)
			}
		}
	})
}
