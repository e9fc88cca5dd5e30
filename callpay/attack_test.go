package callpay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
)

// Tests of attacks on pay-per-call that succeed today: each fails until
// the hole it names is closed.

// lockBudget locks a budget of the world's caller with the world's
// provider and arbiter, as a caller could lock one by hand.
func (w *world) lockBudget(t *testing.T, amount uint64, life time.Duration) market.EscrowTerms {
	t.Helper()
	suffix := make([]byte, 8)
	rand.Read(suffix)
	tr := settlement.Terms{JobID: market.BudgetID(w.hosts[1].ID(), hex.EncodeToString(suffix)),
		Requester: w.caller.Address(), Provider: w.prov.Address(), Arbiter: w.arb.Address(), Mint: testMint,
		Amount: amount, Deadline: time.Now().Add(life).UTC().Truncate(time.Second)}
	ref, err := w.caller.Lock(context.Background(), tr)
	if err != nil {
		t.Fatal(err)
	}
	return market.EscrowTerms{Terms: tr, Ref: ref, ArbiterPeer: w.hosts[2].ID().String()}
}

// signedBudget is the budget message the caller sends on BudgetProtocol.
func (w *world) signedBudget(t *testing.T, e market.EscrowTerms, ppc uint64) []byte {
	t.Helper()
	env, err := market.Seal(w.hosts[1].Peerstore().PrivKey(w.hosts[1].ID()), market.TypeBudget,
		market.Budget{Escrow: e, Service: w.offer.Service, PricePerCall: ppc})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := env.Marshal()
	return data
}

// TestAttackProviderInflatesPaid: the caller's node takes the "paid" of a
// provider's answer as the amount already promised (Payer.Answered, as
// node/infer.go's callOne calls it with ans.Paid) without checking it
// against what it signed. A provider that answers its first call with
// paid = budget - price makes the caller sign, on the second call, a
// voucher for the whole budget; the arbiter co-signs a split of all of
// it. Two calls answered, a thousand paid.
func TestAttackProviderInflatesPaid(t *testing.T) {
	w := newWorld(t)
	w.payer.Close()
	w.payer.p.DB.Close()
	w.startPayer(1000)
	before := w.balance(w.caller.Address())
	ctx := context.Background()

	// Call 1: honest voucher; the malicious provider answers with an
	// inflated "paid".
	v1, budget, err := w.payer.Voucher(ctx, w.offer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.keeper.Charge(w.hosts[1].ID(), w.offer.Service, v1); err != nil {
		t.Fatal(err)
	}
	amount := w.payer.Budgets()[0].Escrow.Amount
	w.payer.Answered(budget, amount-price) // the answer's Paid, as the provider wrote it

	// Call 2: the caller signs what the provider told it.
	v2, _, err := w.payer.Voucher(ctx, w.offer)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := market.ParseEnvelope(v2)
	var v market.Voucher
	if _, err := env.Open(market.TypeVoucher, &v); err != nil {
		t.Fatal(err)
	}
	if v.Amount > 2*price {
		t.Errorf("after 2 calls the caller signed a voucher for %d (the whole budget is %d), want at most %d", v.Amount, amount, 2*price)
	}

	// The provider settles the whole budget on that voucher, and the
	// arbiter's check (a voucher that covers the split) lets it.
	terms := w.keeper.Budgets()[0].Budget.Escrow
	w.keeper.Close()
	po, err := w.prov.ProposeSplit(ctx, terms.Ref, terms.Terms, settlement.ArbiterSplit, v.Amount)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.arbitrate(ctx, terms, po, env); err != nil {
		t.Logf("the arbiter refused the inflated split: %v", err)
	}
	if got := before - w.balance(w.caller.Address()); got > 2*price {
		t.Errorf("the caller paid %d for 2 answered calls (%d each)", got, price)
	}
}

// blockingArbiter holds the split until released: a slow arbiter or ledger.
type blockingArbiter struct {
	w       *world
	entered chan struct{}
	release chan struct{}
}

func (a *blockingArbiter) ask(ctx context.Context, terms market.EscrowTerms, po settlement.Payout, voucher market.Envelope) (string, error) {
	close(a.entered)
	<-a.release
	return a.w.arbitrate(ctx, terms, po, voucher)
}

// TestAttackUndoLostWhileSettling: settle marks the budget Settled before
// it asks the arbiter, and Undo ignores a settled budget. A call charged
// before the settlement began and not answered (its batch failed, the
// caller's stream reset) is then paid for, although docs/serving.md says
// "a call charged and then not answered is given back". The budget is
// settled right when it is spent (the kick in Charge), so the last call of
// every spent budget is exposed, and a split that fails and is tried again
// keeps the call counted too.
func TestAttackUndoLostWhileSettling(t *testing.T) {
	w := newWorld(t)
	a := &blockingArbiter{w: w, entered: make(chan struct{}), release: make(chan struct{})}
	w.keeper.Close()
	w.keeper.p.DB.Close()
	db := openDB(t, filepath.Join(t.TempDir(), "p.db"))
	k, err := NewKeeper(KeeperParams{Host: w.hosts[0], Escrow: w.prov, DB: db, Tick: time.Hour,
		Offer:      func(s string) (market.ServiceRecord, bool) { return w.offer, s == w.offer.Service },
		AskArbiter: a.ask})
	if err != nil {
		t.Fatal(err)
	}
	k.Start()
	t.Cleanup(func() { k.Close(); db.Close() })
	w.keeper = k

	if _, err := w.call(t); err != nil { // answered
		t.Fatal(err)
	}
	inFlight, err := w.charge(t) // charged, being computed
	if err != nil {
		t.Fatal(err)
	}
	id := k.Budgets()[0].Budget.Escrow.JobID
	k.settle(id) // waits for the call in flight: no split yet
	select {
	case <-a.entered:
		t.Fatal("the split went out while a call charged on the budget was still in flight")
	default:
	}
	if _, err := w.call(t); err == nil {
		t.Error("a budget being settled took another call")
	}
	inFlight.Undo() // the call fails: it was not answered
	close(a.release)
	k.settle(id)
	if got := w.balance(w.prov.Address()); got != price {
		t.Errorf("the provider was paid %d for 1 answered call, want %d", got, price)
	}
}

// gatedEscrow blocks Verify of chosen vaults until released, and says
// when a Verify has begun: a slow ledger RPC.
type gatedEscrow struct {
	settlement.Escrow
	mu    sync.Mutex
	gates map[string]chan struct{}
	began chan string
}

func (g *gatedEscrow) Verify(ctx context.Context, ref settlement.Ref, t settlement.Terms) error {
	g.mu.Lock()
	gate := g.gates[ref.Vault]
	g.mu.Unlock()
	if gate != nil {
		g.began <- ref.Vault
		<-gate
	}
	return g.Escrow.Verify(ctx, ref, t)
}

// TestAttackResentBudgetClearsOpeningGate: reserveOpening lets a budget
// already open through without taking the caller's "being checked" slot,
// but open's deferred doneOpening clears that slot anyway. A caller that
// sends one of its open budgets again while another is being checked
// frees the slot, so it can have several budgets checked on the ledger at
// once and, as the bound counts only budgets already taken, end with more
// open budgets than MaxPerCaller. Sending an open budget again is itself
// never throttled: each costs the provider a ledger Verify.
func TestAttackResentBudgetClearsOpeningGate(t *testing.T) {
	w := newWorld(t)
	caller := w.hosts[1].ID()
	g := &gatedEscrow{Escrow: w.prov, gates: map[string]chan struct{}{}, began: make(chan string, 4)}
	db := openDB(t, filepath.Join(t.TempDir(), "p.db"))
	k, err := NewKeeper(KeeperParams{Host: w.hosts[0], Escrow: g, DB: db, Tick: time.Hour, MaxPerCaller: 2,
		Offer:      func(s string) (market.ServiceRecord, bool) { return w.offer, s == w.offer.Service },
		AskArbiter: w.arbitrate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	a := w.lockBudget(t, 70, time.Hour)
	if err := k.open(caller, w.signedBudget(t, a, price)); err != nil {
		t.Fatal(err)
	}
	b, c := w.lockBudget(t, 70, time.Hour), w.lockBudget(t, 70, time.Hour)
	release := make(chan struct{})
	g.mu.Lock()
	g.gates[b.Vault], g.gates[c.Vault] = release, release
	g.mu.Unlock()
	errs := make(chan error, 2)
	go func() { errs <- k.open(caller, w.signedBudget(t, b, price)) }()
	<-g.began // b is being checked: the caller's slot is taken
	if err := k.open(caller, w.signedBudget(t, a, price)); err != nil {
		t.Fatal(err) // a again: taken again, and the slot is freed
	}
	go func() { errs <- k.open(caller, w.signedBudget(t, c, price)) }()
	select {
	case <-g.began:
		t.Errorf("a second budget of one caller is checked on the ledger while the first still is")
	case err := <-errs:
		t.Logf("c refused while b is checked, as it should be: %v", err)
	case <-time.After(2 * time.Second):
	}
	close(release)
	for range 2 {
		select {
		case <-errs:
		case <-time.After(5 * time.Second):
		}
	}
	open := 0
	for _, s := range k.Budgets() {
		if !s.Settled && s.Caller == caller.String() {
			open++
		}
	}
	if open > 2 {
		t.Errorf("the caller has %d open budgets, MaxPerCaller is 2", open)
	}
}

// TestAttackBudgetDeadlineUnbounded: the keeper bounds a budget's
// deadline from below only. A caller can lock budgets of one price each
// with a deadline decades away; each is closed idle after IdleSettle (no
// call), no longer counts against MaxBudgets or MaxPerCaller, and is kept
// in memory and in the DB until KeepSettled after its deadline: the
// budgets map, every open's O(n) scan of it and Budgets() (metrics, top)
// grow without bound, for the price of one call and one lock fee each.
func TestAttackBudgetDeadlineUnbounded(t *testing.T) {
	w := newWorld(t)
	e := w.lockBudget(t, price, 20*365*24*time.Hour)
	err := w.keeper.open(w.hosts[1].ID(), w.signedBudget(t, e, price))
	if err == nil {
		w.keeper.settle(e.JobID) // idle: closed with no call
		w.keeper.prune()
		if len(w.keeper.Budgets()) == 1 {
			t.Errorf("a budget with a deadline 20 years away was taken; closed with no call, it is kept until %s",
				e.Deadline.Add(KeepSettled).Format(time.DateOnly))
		}
	}
}

// TestAttackChargeOverflow: Charge compares (Served+1)*price with what was
// paid in 64 bits. With a budget whose amount plus the price exceeds
// 2^64, the product wraps and a voucher already used pays for more calls,
// for nothing; due() wraps the same way when settling.
func TestAttackChargeOverflow(t *testing.T) {
	w := newWorld(t)
	const big = uint64(1) << 63
	w.keeper.Close() // the keeper below reads the offer; this one must not
	w.offer.PricePerCall = big
	db := openDB(t, filepath.Join(t.TempDir(), "p.db"))
	k, err := NewKeeper(KeeperParams{Host: w.hosts[0], Escrow: w.prov, DB: db, Tick: time.Hour,
		Offer:      func(s string) (market.ServiceRecord, bool) { return w.offer, s == w.offer.Service },
		AskArbiter: w.arbitrate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w.ledger.Fund(w.caller.Address(), testMint, math.MaxUint64-1_000_000)
	e := w.lockBudget(t, math.MaxUint64, time.Hour)
	if err := k.open(w.hosts[1].ID(), w.signedBudget(t, e, big)); err != nil {
		t.Fatal(err)
	}
	key := w.hosts[1].Peerstore().PrivKey(w.hosts[1].ID())
	one := sealVoucher(t, key, market.Voucher{Budget: e.JobID, Amount: big}) // pays for one call
	served := 0
	for range 4 {
		if _, err := k.Charge(w.hosts[1].ID(), w.offer.Service, one); err == nil {
			served++
		} else if !errors.Is(err, ErrPayment) {
			t.Fatal(err)
		}
	}
	if served > 1 {
		t.Errorf("a voucher for one call at %d paid for %d calls", big, served)
	}
}

// TestAttackRefusingProviderLocksCallerFunds: a provider that takes every
// budget and then refuses each call for its payment makes the caller's
// node (node/infer.go's callOne: Spent, then a new budget) lock a fresh
// budget of Calls × price for every refused call, each held until its
// deadline, an hour away, and each costing a lock and a refund. Nothing
// bounds the budgets a payer opens with one provider, or notices one that
// served nothing.
func TestAttackRefusingProviderLocksCallerFunds(t *testing.T) {
	w := newWorld(t)
	before := w.balance(w.caller.Address())
	refused := 0
	for range 6 {
		_, budget, err := w.payer.Voucher(context.Background(), w.offer)
		if err != nil {
			refused++ // no more budgets with a provider that answers none
			continue
		}
		w.payer.Spent(budget) // the provider answered CodePayment
	}
	if refused == 0 {
		t.Error("the payer kept locking budgets with a provider that refused every call")
	}
	if locked := before - w.balance(w.caller.Address()); locked > 2*10*price {
		t.Errorf("six refused calls to one provider locked %d of the caller's funds in %d budgets, none of which served a call",
			locked, len(w.payer.Budgets()))
	}
}
