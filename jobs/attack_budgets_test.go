package jobs

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/cyxwiz/cyxwiz/settlement/memledger"
)

// TestAttackArbiterSplitOnJobEscrow: coSignSplit trusts the terms the
// provider sends: it opens the voucher against req.Terms.JobID and never
// checks on the ledger (Verify, as the refund path does) that the vault
// holds those terms. A job's provider relabels its job escrow as a budget
// of a peer it made up, signs a "voucher" with that peer's key for the
// whole vault, and the arbiter co-signs an ArbiterSplit that pays the
// provider the job's escrow without the requester. The memory ledger
// accepts it (its CoSign does not bind the JobID or deadline to the
// vault); the Solana ledger refuses it only because the vault address
// is derived from the JobID.
func TestAttackArbiterSplitOnJobEscrow(t *testing.T) {
	l := memledger.New()
	party := func() *memledger.Party {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		p := l.Party(key)
		l.Fund(p.Address(), memledger.NativeMint, 1_000_000_000)
		return p
	}
	req, prov, arb := party(), party(), party()
	const mint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
	l.Fund(req.Address(), mint, 1000)
	ctx := context.Background()
	job := settlement.Terms{JobID: "job-7f3a/1", Requester: req.Address(), Provider: prov.Address(), Arbiter: arb.Address(),
		Mint: mint, Amount: 1000, Deadline: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
	ref, err := req.Lock(ctx, job)
	if err != nil {
		t.Fatal(err)
	}

	// The provider's made-up caller, and its voucher for the whole vault.
	fakeKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	fake, _ := peer.IDFromPrivateKey(fakeKey)
	forged := job
	forged.JobID = market.BudgetID(fake, "x")
	venv, err := market.Seal(fakeKey, market.TypeVoucher, market.Voucher{Budget: forged.JobID, Amount: job.Amount})
	if err != nil {
		t.Fatal(err)
	}
	po, err := prov.ProposeSplit(ctx, ref, job, settlement.ArbiterSplit, job.Amount)
	if err != nil {
		t.Fatal(err)
	}

	pay := &settler{core: &core{p: Params{Settlement: &Settlement{Escrow: arb, Serve: true}}, log: slog.Default()}}
	arbPeer := peer.ID("arbiter")
	_, err = pay.coSignSplit(ctx, "provider", arbiterRequest{Op: opSplit,
		Terms: &market.EscrowTerms{Terms: forged, Ref: ref, ArbiterPeer: arbPeer.String()},
		Kind:  string(settlement.ArbiterSplit), Tx: po.Tx, Amount: po.Amount, Voucher: &venv})
	if err == nil {
		t.Errorf("the arbiter co-signed a split of job escrow %s, relabelled as budget %s on a voucher of a made-up peer", job.JobID, forged.JobID)
	}
	if got, _ := prov.Balance(ctx, prov.Address(), mint); got != 0 {
		t.Errorf("the job's provider took %d of the job's escrow without the requester", got)
	}
}
