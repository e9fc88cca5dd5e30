package indexer

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/cyxwiz/cyxwiz/settlement/memledger"
)

// tokenMint is the token escrows pay in (fees are in memledger.NativeMint).
const tokenMint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"

// ledger is an in-memory ledger with a requester, a provider, an arbiter
// and an observer (the indexer's view).
type ledger struct {
	l                       *memledger.Ledger
	req, prov, arb, watcher *memledger.Party
}

func newLedger(t *testing.T) ledger {
	t.Helper()
	l := memledger.New()
	party := func() *memledger.Party {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		p := l.Party(key)
		l.Fund(p.Address(), memledger.NativeMint, 1_000_000_000)
		return p
	}
	lg := ledger{l: l, req: party(), prov: party(), arb: party(), watcher: party()}
	l.Fund(lg.req.Address(), tokenMint, 1_000_000)
	return lg
}

// lock locks amount for job; settle, when not "", settles it: "released"
// pays the provider, "refunded" the requester (the arbiter's award). It
// returns the escrow as a receipt names it.
func (lg ledger) lock(t *testing.T, job string, amount uint64, settle string) market.ReceiptEscrow {
	t.Helper()
	tr := settlement.Terms{JobID: job + "/1", Requester: lg.req.Address(), Provider: lg.prov.Address(), Arbiter: lg.arb.Address(),
		Mint: tokenMint, Amount: amount, Deadline: lg.l.Now().Add(time.Hour)}
	ref, err := lg.req.Lock(bg, tr)
	if err != nil {
		t.Fatal(err)
	}
	e := market.ReceiptEscrow{Multisig: ref.Multisig, Vault: ref.Vault, State: settle, Terms: tr}
	var po settlement.Payout
	switch settle {
	case "":
		return e
	case "released":
		po, err = lg.prov.Propose(bg, ref, tr, settlement.Release)
	case "refunded":
		po, err = lg.arb.Propose(bg, ref, tr, settlement.AwardRequester)
	}
	if err != nil {
		t.Fatal(err)
	}
	if e.Tx, err = lg.req.CoSign(bg, po, tr); err != nil {
		t.Fatal(err)
	}
	return e
}

// flakyEscrow is a ledger view whose reads fail while down is set.
type flakyEscrow struct {
	settlement.Escrow
	down  atomic.Bool
	reads atomic.Int64
}

func (f *flakyEscrow) Status(ctx context.Context, ref settlement.Ref) (settlement.Status, error) {
	f.reads.Add(1)
	if f.down.Load() {
		return settlement.Status{}, errors.New("rpc: 503 service unavailable")
	}
	return f.Escrow.Status(ctx, ref)
}

// storeReceipt signs a receipt of job that names escrow e and stores its
// row; outcome and fault follow e's state.
func storeReceipt(t *testing.T, st indexdb.Store, job string, e market.ReceiptEscrow) indexdb.Receipt {
	t.Helper()
	reqKey, req := newKey(t)
	provKey, prov := newKey(t)
	r := goodReceipt(req, prov, job, time.Now().Add(-time.Second))
	r.Escrow = &e
	r.Price, r.Mint = e.Terms.Amount, e.Terms.Mint
	if e.State == "refunded" {
		r.Outcome, r.Fault = market.OutcomeFailed, market.FaultProvider
	}
	row, err := ReceiptRow(marshalReceipt(t, signReceipt(t, reqKey, provKey, r)), time.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddReceipts(bg, []indexdb.Receipt{row}); err != nil {
		t.Fatal(err)
	}
	return row
}

func checksOf(t *testing.T, st indexdb.Store, job string) []indexdb.EscrowCheck {
	t.Helper()
	j, err := st.Job(bg, job)
	if err != nil {
		t.Fatal(err)
	}
	return j.Checks
}

// TestEscrowChecker attacks the escrow checker with receipts that lie
// about their escrow, on a ledger with the real escrow rules: a release
// the ledger shows paying the receipt's payee is confirmed, and so is a
// refund; a receipt claiming a release of a refunded vault, of a vault
// still locked, or one paid to another account than the receipt names is
// a mismatch; one naming a vault the ledger does not know is missing.
// Each receipt is checked once: a second round records nothing more.
func TestEscrowChecker(t *testing.T) {
	st := openStore(t)
	lg := newLedger(t)

	released := lg.lock(t, jobID(1), 100, "released")
	refunded := lg.lock(t, jobID(2), 100, "refunded")
	claimsRelease := lg.lock(t, jobID(3), 100, "refunded")
	claimsRelease.State = "released"
	otherPayee := lg.lock(t, jobID(4), 100, "released")
	otherPayee.Terms.Provider = lg.arb.Address() // the ledger paid the provider, not this account
	madeUp := lg.lock(t, jobID(5), 100, "released")
	madeUp.Vault = "NoSuchVau1t1111111111111111111111111111111" // not where its terms lock
	// Terms that were never locked: their vault is where it should be,
	// and the ledger knows nothing of it.
	neverLocked := released
	neverLocked.Terms.JobID = jobID(8) + "/1"
	ref, err := lg.watcher.DeriveRef(neverLocked.Terms)
	if err != nil {
		t.Fatal(err)
	}
	neverLocked.Multisig, neverLocked.Vault = ref.Multisig, ref.Vault
	locked := lg.lock(t, jobID(6), 100, "")
	locked.State, locked.Tx = "released", "0123456789abcdef"
	want := map[string]string{
		jobID(1): indexdb.CheckConfirmed,
		jobID(2): indexdb.CheckConfirmed,
		jobID(3): indexdb.CheckMismatch,
		jobID(4): indexdb.CheckMismatch,
		jobID(5): indexdb.CheckMismatch,
		jobID(6): indexdb.CheckMismatch,
		jobID(8): indexdb.CheckMissing,
	}
	for job, e := range map[string]market.ReceiptEscrow{jobID(1): released, jobID(2): refunded, jobID(3): claimsRelease,
		jobID(4): otherPayee, jobID(5): madeUp, jobID(6): locked, jobID(8): neverLocked} {
		storeReceipt(t, st, job, e)
	}
	noTx := lg.lock(t, jobID(7), 100, "released")
	noTx.Tx = ""
	storeReceipt(t, st, jobID(7), noTx)

	s := New(Params{Store: st, Escrow: lg.watcher, Logger: quiet()})
	defer s.Close()
	s.checkEscrowRound()
	for job, state := range want {
		cs := checksOf(t, st, job)
		if len(cs) != 1 || cs[0].State != state {
			t.Errorf("job %s: checks %+v, want one %s", job, cs, state)
			continue
		}
		if cs[0].Detail == "" || cs[0].CheckedAt.IsZero() {
			t.Errorf("job %s: check without detail or time: %+v", job, cs[0])
		}
		j, _ := st.Job(bg, job)
		if j.EscrowCheck != state {
			t.Errorf("job %s: summary says escrow check %q, want %q", job, j.EscrowCheck, state)
		}
	}
	// A receipt whose escrow names no settling transaction (a payout
	// that landed while its requester was away) is checked all the same.
	if cs := checksOf(t, st, jobID(7)); len(cs) != 1 || cs[0].State != indexdb.CheckConfirmed {
		t.Errorf("a receipt naming no transaction: checks %+v, want it confirmed", cs)
	}
	if left, err := st.UncheckedEscrows(bg, 0); err != nil || len(left) != 0 {
		t.Errorf("unchecked after a round: %d, %v", len(left), err)
	}
	s.checkEscrowRound()
	if n := stats(t, st).EscrowChecks; n != int64(len(want)+1) {
		t.Errorf("%d checks after a second round, want %d (each receipt once)", n, len(want))
	}
}

// TestEscrowCheckerLedgerDown attacks the checker with a ledger that
// fails: no check is recorded (a failing ledger is not evidence against
// a receipt), the receipt stays unchecked, and the next round, with the
// ledger back, confirms it.
func TestEscrowCheckerLedgerDown(t *testing.T) {
	st := openStore(t)
	lg := newLedger(t)
	row := storeReceipt(t, st, jobID(1), lg.lock(t, jobID(1), 100, "released"))
	storeReceipt(t, st, jobID(2), lg.lock(t, jobID(2), 100, "released"))
	esc := &flakyEscrow{Escrow: lg.watcher}
	esc.down.Store(true)
	s := New(Params{Store: st, Escrow: esc, Logger: quiet()})
	defer s.Close()

	s.checkEscrowRound()
	if esc.reads.Load() == 0 {
		t.Fatal("the round never read the ledger")
	}
	if n := stats(t, st).EscrowChecks; n != 0 {
		t.Fatalf("%d checks recorded while the ledger was down", n)
	}
	left, err := st.UncheckedEscrows(bg, 0)
	if err != nil || len(left) != 2 || left[0].ID != row.ID {
		t.Fatalf("unchecked while the ledger was down: %d, %v; want both, oldest first", len(left), err)
	}

	esc.down.Store(false)
	s.checkEscrowRound()
	for _, job := range []string{jobID(1), jobID(2)} {
		if cs := checksOf(t, st, job); len(cs) != 1 || cs[0].State != indexdb.CheckConfirmed {
			t.Errorf("job %s after the ledger came back: %+v, want confirmed", job, cs)
		}
	}
}

// TestEscrowCheckerVaultOfAnotherJob attacks the checker with a receipt
// that borrows the settled escrow of another job (its vault, transaction
// and payee are all real) and claims a price far above what that vault
// held: the ledger does not bear it out, so it must not be confirmed.
func TestEscrowCheckerVaultOfAnotherJob(t *testing.T) {
	st := openStore(t)
	lg := newLedger(t)
	e := lg.lock(t, jobID(1), 100, "released")
	storeReceipt(t, st, jobID(1), e)
	// Named as it is, job 1's escrow is refused in job 2's receipt at
	// once; with its terms rewritten for job 2 and a higher price, its
	// vault is not the one those terms lock into.
	reqKey, req := newKey(t)
	_, prov := newKey(t)
	r := goodReceipt(req, prov, jobID(2), time.Now())
	r.Escrow, r.Price, r.Mint = &e, e.Terms.Amount, e.Terms.Mint
	if _, err := ReceiptRow(marshalReceipt(t, signReceipt(t, reqKey, nil, r)), time.Now(), true); err == nil {
		t.Error("a receipt naming another job's escrow was taken")
	}
	borrowed := e
	borrowed.Terms.JobID, borrowed.Terms.Amount = jobID(2)+"/1", 500
	storeReceipt(t, st, jobID(2), borrowed)
	s := New(Params{Store: st, Escrow: lg.watcher, Logger: quiet()})
	defer s.Close()
	s.checkEscrowRound()
	if cs := checksOf(t, st, jobID(2)); len(cs) != 1 || cs[0].State == indexdb.CheckConfirmed {
		t.Errorf("a receipt naming another job's vault: %+v, want it not confirmed", cs)
	}
}
