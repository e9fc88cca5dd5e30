package callpay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/cyxwiz/cyxwiz/settlement/memledger"
)

const (
	testMint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
	price    = 7
	model    = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
)

// world is a provider, a caller and an arbiter on one in-memory ledger.
type world struct {
	t                 *testing.T
	ledger            *memledger.Ledger
	hosts             []*p2p.Host // provider, caller, arbiter
	prov, caller, arb *memledger.Party
	keeper            *Keeper
	payer             *Payer
	keeperDB, payerDB string
	offer             market.ServiceRecord
}

func party(l *memledger.Ledger) *memledger.Party {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	p := l.Party(key)
	l.Fund(p.Address(), memledger.NativeMint, 1_000_000_000)
	return p
}

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newWorld(t *testing.T) *world {
	l := memledger.New()
	w := &world{t: t, ledger: l, hosts: p2ptest.MockNet(t, 3, 0), prov: party(l), caller: party(l), arb: party(l)}
	l.Fund(w.caller.Address(), testMint, 1_000_000)
	dir := t.TempDir()
	w.keeperDB, w.payerDB = filepath.Join(dir, "provider.db"), filepath.Join(dir, "caller.db")
	now := time.Now()
	w.offer = market.ServiceRecord{Service: "digits", Model: model, Provider: w.hosts[0].ID().String(),
		PricePerCall: price, Mint: testMint, Payee: w.prov.Address(), ArbiterPeer: w.hosts[2].ID().String(),
		InputSize: 2, OutputSize: 2, MaxExamples: 8, MaxRequestBytes: 1 << 20, MaxPerCaller: 8,
		Seq: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	w.startKeeper()
	w.startPayer(10)
	return w
}

// arbitrate is the arbiter's check of a split, as an arbiter node makes
// it: a voucher of the budget's caller that covers the amount.
func (w *world) arbitrate(ctx context.Context, terms market.EscrowTerms, po settlement.Payout, voucher market.Envelope) (string, error) {
	v, err := market.OpenVoucher(voucher, terms.JobID, terms.Amount)
	if err != nil {
		return "", err
	}
	if po.Amount > v.Amount || po.Kind != settlement.ArbiterSplit {
		return "", errors.New("the split is not covered by the voucher")
	}
	return w.arb.CoSign(ctx, po, terms.Terms)
}

func (w *world) startKeeper() {
	db := openDB(w.t, w.keeperDB)
	k, err := NewKeeper(KeeperParams{Host: w.hosts[0], Escrow: w.prov, DB: db, Tick: 20 * time.Millisecond,
		Offer:      func(s string) (market.ServiceRecord, bool) { return w.offer, s == w.offer.Service },
		AskArbiter: w.arbitrate})
	if err != nil {
		w.t.Fatal(err)
	}
	k.Start()
	w.keeper = k
	w.t.Cleanup(func() { k.Close(); db.Close() })
}

func (w *world) stopKeeper() {
	if err := w.keeper.Close(); err != nil {
		w.t.Fatal(err)
	}
	w.keeper.p.DB.Close()
}

func (w *world) startPayer(calls int) {
	db := openDB(w.t, w.payerDB)
	p, err := NewPayer(PayerParams{Host: w.hosts[1], Key: w.hosts[1].Peerstore().PrivKey(w.hosts[1].ID()), Escrow: w.caller, DB: db,
		Arbiter:        w.hosts[2].ID(),
		ArbiterAddress: func(context.Context) (string, error) { return w.arb.Address(), nil },
		Refund: func(ctx context.Context, terms market.EscrowTerms, po settlement.Payout) (string, error) {
			return w.arb.CoSign(ctx, po, terms.Terms)
		},
		Calls: calls})
	if err != nil {
		w.t.Fatal(err)
	}
	p.Start()
	w.payer = p
	w.t.Cleanup(func() { p.Close(); db.Close() })
}

func (w *world) balance(owner string) uint64 {
	b, err := w.prov.Balance(context.Background(), owner, testMint)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

// charge charges one call: a voucher, taken by the keeper; the call is
// still in flight.
func (w *world) charge(t *testing.T) (*Charge, error) {
	t.Helper()
	v, _, err := w.payer.Voucher(context.Background(), w.offer)
	if err != nil {
		t.Fatal(err)
	}
	return w.keeper.Charge(w.hosts[1].ID(), w.offer.Service, v)
}

// call makes one paid call, answered.
func (w *world) call(t *testing.T) (*Charge, error) {
	t.Helper()
	c, err := w.charge(t)
	if err == nil {
		c.Done()
	}
	return c, err
}

// TestBudgetSettlesOnce: ten calls on a budget of ten pay the provider
// exactly ten prices, in one split co-signed by the arbiter; the
// caller's other funds stay; the budget cost two transactions.
func TestBudgetSettlesOnce(t *testing.T) {
	w := newWorld(t)
	before := w.balance(w.caller.Address())
	fees := w.ledger.Fees()
	for i := range 10 {
		c, err := w.call(t)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if c.Paid() != uint64(i+1)*price {
			t.Fatalf("call %d: paid %d", i, c.Paid())
		}
	}
	waitFor(t, func() bool { return w.balance(w.prov.Address()) == 10*price })
	if got := w.balance(w.caller.Address()); got != before-10*price {
		t.Errorf("the caller has %d, want %d", got, before-10*price)
	}
	if got := w.ledger.Fees() - fees; got != 3*memledger.FeePerSignature {
		t.Errorf("fees %d: want a lock (1 signature) and a split (2)", got)
	}
	b := w.keeper.Budgets()
	if len(b) != 1 || !b[0].Settled || b[0].Earned != 10*price || b[0].SettleTx == "" {
		t.Errorf("the provider's budget: %+v", b)
	}
	// An eleventh call opens a second budget.
	if _, err := w.call(t); err != nil {
		t.Fatal(err)
	}
	if n := len(w.keeper.Budgets()); n != 2 {
		t.Errorf("%d budgets after the eleventh call, want 2", n)
	}
}

// TestUnansweredCallsAreFree: calls that were charged and then not
// answered are not paid for; the rest of the budget goes back.
func TestUnansweredCallsAreFree(t *testing.T) {
	w := newWorld(t)
	before := w.balance(w.caller.Address())
	for i := range 4 {
		c, err := w.charge(t)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			c.Undo()
			c.Done() // the first of the two counts
		} else {
			c.Done()
			c.Undo()
		}
	}
	w.keeper.settle(w.keeper.Budgets()[0].Budget.Escrow.JobID)
	if got := w.balance(w.prov.Address()); got != 2*price {
		t.Errorf("provider paid %d for 2 answered calls, want %d", got, 2*price)
	}
	if got := w.balance(w.caller.Address()); got != before-2*price {
		t.Errorf("the caller has %d, want %d", got, before-2*price)
	}
}

func sealVoucher(t *testing.T, k crypto.PrivKey, v market.Voucher) []byte {
	t.Helper()
	env, err := market.Seal(k, market.TypeVoucher, v)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := env.Marshal()
	return data
}

// TestVoucherAttacks: vouchers that are missing, reused, lowered,
// inflated, signed by someone else, for another budget or service, or
// sent by another peer are refused with ErrPayment and count nothing.
func TestVoucherAttacks(t *testing.T) {
	w := newWorld(t)
	caller := w.hosts[1].ID()
	callerKey := w.hosts[1].Peerstore().PrivKey(caller)
	for range 3 {
		if _, err := w.call(t); err != nil {
			t.Fatal(err)
		}
	}
	id := w.keeper.Budgets()[0].Budget.Escrow.JobID
	otherKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	stranger := w.hosts[2].ID()
	for name, c := range map[string]struct {
		from    peer.ID
		service string
		voucher []byte
		want    string
	}{
		"none":           {caller, "digits", nil, "carries a voucher"},
		"garbage":        {caller, "digits", []byte("{"), "envelope"},
		"reused":         {caller, "digits", sealVoucher(t, callerKey, market.Voucher{Budget: id, Amount: 3 * price}), "reused"},
		"lowered":        {caller, "digits", sealVoucher(t, callerKey, market.Voucher{Budget: id, Amount: 2 * price}), "lowered"},
		"inflated":       {caller, "digits", sealVoucher(t, callerKey, market.Voucher{Budget: id, Amount: 11 * price}), "inflated"},
		"someone else's": {caller, "digits", sealVoucher(t, otherKey, market.Voucher{Budget: id, Amount: 4 * price}), "someone else"},
		"no such budget": {caller, "digits", sealVoucher(t, callerKey, market.Voucher{Budget: market.BudgetID(caller, "x"), Amount: price}), "no budget"},
		"another peer":   {stranger, "digits", sealVoucher(t, callerKey, market.Voucher{Budget: id, Amount: 4 * price}), "not the caller's"},
		"other service":  {caller, "other", sealVoucher(t, callerKey, market.Voucher{Budget: id, Amount: 4 * price}), ""},
	} {
		ch, err := w.keeper.Charge(c.from, c.service, c.voucher)
		if c.want == "" { // a free (unknown) service takes no payment
			if err != nil || ch != nil {
				t.Errorf("%s: %v, %v", name, ch, err)
			}
			continue
		}
		if !errors.Is(err, ErrPayment) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an ErrPayment saying %q", name, err, c.want)
		}
	}
	if b := w.keeper.Budgets()[0]; b.Served != 3 || b.Paid != 3*price {
		t.Errorf("after the attacks: served %d, paid %d; want 3, %d", b.Served, b.Paid, 3*price)
	}
	// A voucher from ahead (calls in flight out of order) is taken, and
	// the one it overtook still pays for its own call.
	v5 := sealVoucher(t, callerKey, market.Voucher{Budget: id, Amount: 5 * price})
	v4 := sealVoucher(t, callerKey, market.Voucher{Budget: id, Amount: 4 * price})
	for _, v := range [][]byte{v5, v4} {
		if _, err := w.keeper.Charge(caller, "digits", v); err != nil {
			t.Fatalf("out of order: %v", err)
		}
	}
	if _, err := w.keeper.Charge(caller, "digits", v4); !errors.Is(err, market.ErrVoucherLowered) && !strings.Contains(err.Error(), "lowered") {
		t.Errorf("a third call on the two vouchers: %v", err)
	}
}

// TestBudgetAttacks: budgets that are forged, for someone else, too short
// or not locked are refused, and one caller cannot open budgets without
// bound.
func TestBudgetAttacks(t *testing.T) {
	w := newWorld(t)
	caller := w.hosts[1].ID()
	ctx := context.Background()
	lock := func(amount uint64, life time.Duration) market.EscrowTerms {
		suffix := make([]byte, 4)
		rand.Read(suffix)
		tr := settlement.Terms{JobID: market.BudgetID(caller, string(rune('a'+suffix[0]%26))+time.Now().Format("150405.000000000")),
			Requester: w.caller.Address(), Provider: w.prov.Address(), Arbiter: w.arb.Address(), Mint: testMint,
			Amount: amount, Deadline: time.Now().Add(life).Truncate(time.Second)}
		ref, err := w.caller.Lock(ctx, tr)
		if err != nil {
			t.Fatal(err)
		}
		return market.EscrowTerms{Terms: tr, Ref: ref, ArbiterPeer: w.hosts[2].ID().String()}
	}
	good := lock(70, time.Hour)
	budget := func(e market.EscrowTerms) market.Budget {
		return market.Budget{Escrow: e, Service: "digits", PricePerCall: price}
	}
	for name, c := range map[string]struct {
		b    market.Budget
		want string
	}{
		"too short": {budget(lock(70, 2*time.Minute)), "deadline"},
		"not locked": {func() market.Budget {
			b := budget(good)
			b.Escrow.Amount, b.Escrow.Vault = 71, "nothing-here"
			return b
		}(), "escrow"},
		"other service": {func() market.Budget { b := budget(good); b.Service = "other"; return b }(), "no service"},
		"cheap":         {func() market.Budget { b := budget(good); b.PricePerCall = 1; return b }(), "price"},
	} {
		err := w.payer.tell(ctx, w.hosts[0].ID(), c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	// A budget signed by one peer and sent by another.
	env, _ := market.Seal(w.hosts[2].Peerstore().PrivKey(w.hosts[2].ID()), market.TypeBudget, budget(good))
	data, _ := env.Marshal()
	if err := w.keeper.open(caller, data); err == nil || !strings.Contains(err.Error(), "signed by") {
		t.Errorf("a budget relayed by another peer: %v", err)
	}
	// A stranger cannot claim the caller's budget as its own.
	if err := w.keeper.open(w.hosts[2].ID(), data); err == nil || !strings.Contains(err.Error(), "belongs to") {
		t.Errorf("a stranger's claim on the caller's budget: %v", err)
	}
	for i := range DefaultMaxPerCaller {
		if err := w.payer.tell(ctx, w.hosts[0].ID(), budget(lock(70, time.Hour))); err != nil {
			t.Fatalf("budget %d: %v", i, err)
		}
	}
	if err := w.payer.tell(ctx, w.hosts[0].ID(), budget(lock(70, time.Hour))); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("budget %d of one caller: %v", DefaultMaxPerCaller+1, err)
	}
}

// TestRestarts: a provider that restarts keeps its budgets and their
// counts, and settles them; a caller that restarts signs no more on the
// budgets it had open (the last vouchers it signed may not have been
// saved) and opens a new one.
func TestRestarts(t *testing.T) {
	w := newWorld(t)
	for range 4 {
		if _, err := w.call(t); err != nil {
			t.Fatal(err)
		}
	}
	w.stopKeeper()
	w.startKeeper()
	w.payer.Close()
	w.payer.p.DB.Close()
	w.startPayer(10)
	for range 2 {
		if _, err := w.call(t); err != nil {
			t.Fatalf("after the restarts: %v", err)
		}
	}
	b := w.keeper.Budgets()
	served := map[uint64]bool{}
	for _, s := range b {
		served[s.Served] = true
	}
	if len(b) != 2 || !served[4] || !served[2] {
		t.Fatalf("after the restarts: %+v", b)
	}
	for _, s := range b {
		w.keeper.settle(s.Budget.Escrow.JobID)
	}
	if got := w.balance(w.prov.Address()); got != 6*price {
		t.Errorf("provider paid %d, want %d", got, 6*price)
	}
}

// TestRefundAfterDeadline: a budget the provider never settles goes back
// to the caller once its deadline passes, with the arbiter.
func TestRefundAfterDeadline(t *testing.T) {
	w := newWorld(t)
	before := w.balance(w.caller.Address())
	if _, _, err := w.payer.Voucher(context.Background(), w.offer); err != nil {
		t.Fatal(err)
	}
	w.stopKeeper()
	w.ledger.Warp(2 * time.Hour)
	b := w.payer.Budgets()[0]
	b.Escrow.Deadline = time.Now().Add(-time.Second) // the payer judges by its own clock
	w.payer.refund(b)
	if got := w.balance(w.caller.Address()); got != before {
		t.Errorf("the caller has %d after the refund, want %d", got, before)
	}
	if r := w.payer.Budgets()[0]; !r.Done || r.RefundTx == "" {
		t.Errorf("the caller's budget: %+v", r)
	}
}

// TestConcurrentCalls: calls at once from one caller share one budget and
// are all paid for, exactly.
func TestConcurrentCalls(t *testing.T) {
	w := newWorld(t)
	w.payer.Close()
	w.payer.p.DB.Close()
	w.startPayer(1000)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 8 {
				v, _, err := w.payer.Voucher(context.Background(), w.offer)
				if err == nil {
					_, err = w.keeper.Charge(w.hosts[1].ID(), "digits", v)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if b := w.keeper.Budgets(); len(b) != 1 || b[0].Served != 64 {
		t.Fatalf("budgets %+v", b)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEndedServiceSettles: when a service stops being served, its open
// budgets are settled at once, for the calls answered.
func TestEndedServiceSettles(t *testing.T) {
	w := newWorld(t)
	for range 3 {
		if _, err := w.call(t); err != nil {
			t.Fatal(err)
		}
	}
	w.keeper.Ended("other")
	time.Sleep(100 * time.Millisecond)
	if got := w.balance(w.prov.Address()); got != 0 {
		t.Fatalf("another service's end settled this one: %d", got)
	}
	w.keeper.Ended("digits")
	waitFor(t, func() bool { return w.balance(w.prov.Address()) == 3*price })
}
