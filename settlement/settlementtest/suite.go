// Package settlementtest is the conformance suite of settlement.Escrow:
// every implementation (the in-memory ledger, the Solana ledger) passes it.
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

// Env is one ledger with three funded parties.
type Env struct {
	Requester, Provider, Arbiter settlement.Escrow
	// Mint is the token escrows pay in; the requester holds Funds of it.
	Mint  string
	Funds uint64
	// Warp moves the ledger's clock forward.
	Warp func(time.Duration)
	// Now is the ledger's clock.
	Now func() time.Time
}

// Run runs the suite; newEnv returns a fresh ledger for each case.
func Run(t *testing.T, newEnv func(t *testing.T) Env) {
	ctx := context.Background()
	terms := func(e Env, amount uint64) settlement.Terms {
		return settlement.Terms{JobID: fmt.Sprintf("job-%d", mrand.Int()), Requester: e.Requester.Address(), Provider: e.Provider.Address(),
			Arbiter: e.Arbiter.Address(), Mint: e.Mint, Amount: amount, Deadline: e.Now().Add(time.Hour)}
	}
	balance := func(t *testing.T, e Env, who settlement.Escrow) uint64 {
		t.Helper()
		b, err := who.Balance(ctx, who.Address(), e.Mint)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	lock := func(t *testing.T, e Env, amount uint64) (settlement.Ref, settlement.Terms) {
		t.Helper()
		tr := terms(e, amount)
		ref, err := e.Requester.Lock(ctx, tr)
		if err != nil {
			t.Fatalf("lock: %v", err)
		}
		if err := e.Provider.Verify(ctx, ref, tr); err != nil {
			t.Fatalf("verify: %v", err)
		}
		return ref, tr
	}
	settled := func(t *testing.T, e Env, ref settlement.Ref, state settlement.State, to string) {
		t.Helper()
		st, err := e.Requester.Status(ctx, ref)
		if err != nil || st.State != state || st.Amount != 0 || st.PaidTo != to {
			t.Fatalf("status %+v, %v; want %s to %s", st, err, state, to)
		}
	}

	t.Run("lock, verify, release", func(t *testing.T) {
		e := newEnv(t)
		ref, tr := lock(t, e, 1000)
		if got := balance(t, e, e.Requester); got != e.Funds-1000 {
			t.Fatalf("requester holds %d after locking 1000 of %d", got, e.Funds)
		}
		po, err := e.Provider.Propose(ctx, ref, tr, settlement.Release)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Requester.CoSign(ctx, po, tr); err != nil {
			t.Fatalf("release: %v", err)
		}
		if got := balance(t, e, e.Provider); got != 1000 {
			t.Fatalf("provider holds %d after release, want 1000", got)
		}
		settled(t, e, ref, settlement.Released, e.Provider.Address())
		if _, err := e.Requester.CoSign(ctx, po, tr); !errors.Is(err, settlement.ErrClosed) {
			t.Fatalf("replayed payout: %v, want ErrClosed", err)
		}
		if err := e.Provider.Verify(ctx, ref, tr); err == nil {
			t.Fatal("a settled vault still verifies")
		}
	})

	t.Run("verify refuses other terms", func(t *testing.T) {
		e := newEnv(t)
		ref, tr := lock(t, e, 500)
		for name, mutate := range map[string]func(*settlement.Terms){
			"higher amount": func(x *settlement.Terms) { x.Amount = 501 },
			"other job":     func(x *settlement.Terms) { x.JobID = "other" },
			"other mint":    func(x *settlement.Terms) { x.Mint = x.Requester },
			"other arbiter": func(x *settlement.Terms) { x.Arbiter, x.Provider = x.Provider, x.Arbiter },
			"other dead":    func(x *settlement.Terms) { x.Deadline = x.Deadline.Add(time.Second) },
		} {
			bad := tr
			mutate(&bad)
			if err := e.Provider.Verify(ctx, ref, bad); err == nil {
				t.Errorf("%s: vault verified", name)
			}
		}
	})

	t.Run("refund after the deadline only", func(t *testing.T) {
		e := newEnv(t)
		ref, tr := lock(t, e, 700)
		po, err := e.Requester.Propose(ctx, ref, tr, settlement.Refund)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Arbiter.CoSign(ctx, po, tr); !errors.Is(err, settlement.ErrTooEarly) {
			t.Fatalf("refund before the deadline: %v, want ErrTooEarly", err)
		}
		e.Warp(2 * time.Hour)
		if _, err := e.Arbiter.CoSign(ctx, po, tr); err != nil {
			t.Fatalf("refund after the deadline: %v", err)
		}
		if got := balance(t, e, e.Requester); got != e.Funds {
			t.Fatalf("requester holds %d after the refund, want %d", got, e.Funds)
		}
		settled(t, e, ref, settlement.Refunded, e.Requester.Address())
	})

	t.Run("disputes", func(t *testing.T) {
		for _, kind := range []settlement.PayoutKind{settlement.AwardProvider, settlement.AwardRequester} {
			e := newEnv(t)
			ref, tr := lock(t, e, 300)
			po, err := e.Arbiter.Propose(ctx, ref, tr, kind)
			if err != nil {
				t.Fatal(err)
			}
			winner, state := e.Provider, settlement.Released
			if kind == settlement.AwardRequester {
				winner, state = e.Requester, settlement.Refunded
			}
			loser := e.Requester
			if winner == e.Requester {
				loser = e.Provider
			}
			if _, err := loser.CoSign(ctx, po, tr); err == nil {
				t.Fatalf("%s: the losing party co-signed", kind)
			}
			if _, err := winner.CoSign(ctx, po, tr); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			settled(t, e, ref, state, winner.Address())
		}
	})

	t.Run("no party alone can withdraw", func(t *testing.T) {
		e := newEnv(t)
		ref, tr := lock(t, e, 900)
		po, err := e.Provider.Propose(ctx, ref, tr, settlement.Release)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Provider.CoSign(ctx, po, tr); err == nil {
			t.Fatal("the provider released the vault alone")
		}
		if _, err := e.Arbiter.CoSign(ctx, po, tr); err == nil {
			t.Fatal("the arbiter co-signed a release")
		}
		if _, err := e.Requester.Propose(ctx, ref, tr, settlement.Release); err == nil {
			t.Fatal("the requester proposed a release to itself")
		}
		st, err := e.Requester.Status(ctx, ref)
		if err != nil || st.State != settlement.Locked || st.Amount != 900 {
			t.Fatalf("vault after failed attempts: %+v, %v", st, err)
		}
	})

	t.Run("tampered payouts are refused", func(t *testing.T) {
		e := newEnv(t)
		ref, tr := lock(t, e, 400)
		more := tr
		more.Amount = 4000
		po, err := e.Provider.Propose(ctx, ref, more, settlement.Release)
		if err == nil {
			if _, err := e.Requester.CoSign(ctx, po, tr); !errors.Is(err, settlement.ErrTampered) {
				t.Fatalf("payout of another amount: %v, want ErrTampered", err)
			}
		}
		good, err := e.Provider.Propose(ctx, ref, tr, settlement.Release)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(good.Tx); i += max(1, len(good.Tx)/20) {
			bad := good
			bad.Tx = append([]byte(nil), good.Tx...)
			bad.Tx[i] ^= 0x5a
			if _, err := e.Requester.CoSign(ctx, bad, tr); err == nil {
				t.Fatalf("a payout with byte %d flipped was accepted", i)
			}
		}
		swapped := good
		swapped.Kind = settlement.AwardProvider
		if _, err := e.Provider.CoSign(ctx, swapped, tr); err == nil {
			t.Fatal("a release relabelled as a dispute award was accepted")
		}
		if _, err := e.Requester.CoSign(ctx, good, tr); err != nil {
			t.Fatalf("the untampered payout: %v", err)
		}
	})

	t.Run("random outcomes conserve funds and settle every escrow", func(t *testing.T) {
		e := newEnv(t)
		start := balance(t, e, e.Requester) + balance(t, e, e.Provider) + balance(t, e, e.Arbiter)
		var refs []settlement.Ref
		for range 40 {
			amount := uint64(1 + mrand.IntN(50))
			ref, tr := lock(t, e, amount)
			refs = append(refs, ref)
			var err error
			switch mrand.IntN(4) {
			case 0:
				var po settlement.Payout
				if po, err = e.Provider.Propose(ctx, ref, tr, settlement.Release); err == nil {
					_, err = e.Requester.CoSign(ctx, po, tr)
				}
			case 1:
				var po settlement.Payout
				if po, err = e.Requester.Propose(ctx, ref, tr, settlement.Refund); err == nil {
					e.Warp(2 * time.Hour)
					_, err = e.Arbiter.CoSign(ctx, po, tr)
				}
			case 2:
				var po settlement.Payout
				if po, err = e.Arbiter.Propose(ctx, ref, tr, settlement.AwardProvider); err == nil {
					_, err = e.Provider.CoSign(ctx, po, tr)
				}
			default:
				var po settlement.Payout
				if po, err = e.Arbiter.Propose(ctx, ref, tr, settlement.AwardRequester); err == nil {
					_, err = e.Requester.CoSign(ctx, po, tr)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		end := balance(t, e, e.Requester) + balance(t, e, e.Provider) + balance(t, e, e.Arbiter)
		if end != start {
			t.Fatalf("token balances sum to %d after settling, %d before", end, start)
		}
		for _, ref := range refs {
			st, err := e.Requester.Status(ctx, ref)
			if err != nil || (st.State != settlement.Released && st.State != settlement.Refunded) || st.Amount != 0 {
				t.Fatalf("escrow %s ended %+v, %v", ref.Vault, st, err)
			}
		}
	})
	split(t, newEnv)
}
