package memledger

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/cyxwiz/cyxwiz/settlement/settlementtest"
)

// testMint is a token mint address for the tests.
const testMint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"

func newParty(l *Ledger) *Party {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	p := l.Party(key)
	l.Fund(p.Address(), NativeMint, 1_000_000_000) // fees
	return p
}

func TestConformance(t *testing.T) {
	settlementtest.Run(t, func(t *testing.T) settlementtest.Env {
		l := New()
		req, prov, arb := newParty(l), newParty(l), newParty(l)
		const funds = 1_000_000
		l.Fund(req.Address(), testMint, funds)
		return settlementtest.Env{Requester: req, Provider: prov, Arbiter: arb, Mint: testMint, Funds: funds, Warp: l.Warp, Now: l.Now}
	})
}

// TestFees: two transactions per job after set-up (lock, payout), and the
// fees are what their signatures cost.
func TestFees(t *testing.T) {
	l := New()
	req, prov, arb := newParty(l), newParty(l), newParty(l)
	l.Fund(req.Address(), testMint, 100)
	ctx := context.Background()
	tr := settlement.Terms{JobID: "j", Requester: req.Address(), Provider: prov.Address(), Arbiter: arb.Address(),
		Mint: testMint, Amount: 100, Deadline: l.Now().Add(time.Hour)}
	ref, err := req.Lock(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	po, err := prov.Propose(ctx, ref, tr, settlement.Release)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := req.CoSign(ctx, po, tr); err != nil {
		t.Fatal(err)
	}
	if got, want := l.Fees(), uint64(3*FeePerSignature); got != want {
		t.Fatalf("fees = %d lamports, want %d (lock: 1 signature, payout: 2)", got, want)
	}
	poor := newParty(l)
	tr2 := tr
	tr2.Requester, tr2.JobID = poor.Address(), "j2"
	if _, err := poor.Lock(ctx, tr2); err == nil {
		t.Fatal("a requester without tokens locked funds")
	}
}
