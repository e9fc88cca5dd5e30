package solana

import (
	"context"
	"errors"
	"testing"

	"github.com/cyxwiz/cyxwiz/settlement"
	sol "github.com/gagliardetto/solana-go"
)

// checkSplitRaw runs the co-signer's checks of a split that claims to pay
// amount to the provider out of a vault that holds held.
func (f fixture) checkSplitRaw(raw []byte, kind settlement.PayoutKind, amount, held uint64) error {
	tx, err := decodeTx(raw)
	if err != nil {
		return err
	}
	pp, err := checkSplit(tx, f.terms, f.parties, kind, amount, 6)
	if err != nil {
		return err
	}
	return checkHeld(pp, held)
}

// Hand-built splits that differ from the one the terms and the amount
// describe are refused, each with ErrTampered.
func TestCheckSplitRefusesTampering(t *testing.T) {
	f := newFixture(t)
	p := f.parties
	k := deriveKeys(f.terms, p)
	prov, req := p.provider, p.requester
	nonce := withSeed(prov, nonceSeed(0), sol.SystemProgramID)
	signers := []sol.PublicKey{prov, req}
	build := func(ixs []sol.Instruction, payer sol.PublicKey) []byte {
		tx, err := sol.NewTransaction(ixs, sol.Hash{7}, sol.TransactionPayer(payer))
		if err != nil {
			t.Fatal(err)
		}
		return f.signAs(t, tx, prov)
	}
	pay := func(to sol.PublicKey, n uint64) sol.Instruction {
		return transferChecked(k.vault, p.mint, ata(to, p.mint), k.multisig, signers, n, 6)
	}
	// f.terms lock 1000; the split pays 300 and returns 700.
	split := func(toProvider, toRequester sol.Instruction) []sol.Instruction {
		return []sol.Instruction{
			advanceNonce(nonce, prov),
			createATAIdempotent(prov, prov, p.mint),
			createATAIdempotent(prov, req, p.mint),
			toProvider, toRequester,
			closeAccount(k.vault, req, k.multisig, signers),
		}
	}
	good := split(pay(prov, 300), pay(req, 700))
	if err := f.checkSplitRaw(build(good, prov), settlement.Split, 300, 1000); err != nil {
		t.Fatalf("hand-built split refused: %v", err)
	}
	thief := sol.PublicKey{9}
	with := func(i int, ix sol.Instruction) []sol.Instruction {
		out := append([]sol.Instruction(nil), good...)
		out[i] = ix
		return out
	}
	cases := map[string][]byte{
		"more to the provider, less back":               build(split(pay(prov, 400), pay(req, 600)), prov),
		"rest to the provider":                          build(split(pay(prov, 300), pay(prov, 700)), prov),
		"rest to a thief":                               build(split(pay(prov, 300), pay(thief, 700)), prov),
		"amount to a thief":                             build(split(pay(thief, 300), pay(req, 700)), prov),
		"more back than the vault holds":                build(split(pay(prov, 300), pay(req, 701)), prov),
		"rent to the provider":                          build(with(5, closeAccount(k.vault, prov, k.multisig, signers)), prov),
		"the requester's account paid by the requester": build(with(2, createATAIdempotent(req, req, p.mint)), prov),
		"the requester pays the fee":                    build(good, req),
		"extra instruction":                             build(append(append([]sol.Instruction(nil), good...), memoInstruction([]byte("hi"))), prov),
		"arbiter signs instead": build(with(3, transferChecked(k.vault, p.mint, ata(prov, p.mint), k.multisig,
			[]sol.PublicKey{prov, p.arbiter}, 300, 6)), prov),
		"an arbiter split":            f.proposeSplit(t, settlement.ArbiterSplit, 300, 700),
		"a split of another amount":   f.proposeSplit(t, settlement.Split, 299, 701),
		"a release":                   f.propose(t, f.terms, settlement.Release),
		"no rest, the vault holds it": f.proposeSplit(t, settlement.Split, 300, 0),
	}
	for name, raw := range cases {
		err := f.checkSplitRaw(raw, settlement.Split, 300, 1000)
		if name == "no rest, the vault holds it" {
			// It could not close the vault: stale, like a payout that a
			// deposit overtook.
			if !errors.Is(err, ErrStale) {
				t.Errorf("%s: %v, want ErrStale", name, err)
			}
			continue
		}
		if !errors.Is(err, settlement.ErrTampered) {
			t.Errorf("%s: %v, want ErrTampered", name, err)
		}
	}
	// A deposit since the proposal: stale, proposed again.
	if err := f.checkSplitRaw(build(good, prov), settlement.Split, 300, 1007); !errors.Is(err, ErrStale) {
		t.Errorf("split of a vault that holds more now: %v, want ErrStale", err)
	}
	// A rest past what the vault holds, to the last unit.
	if err := f.checkSplitRaw(f.proposeSplit(t, settlement.Split, 300, 1<<64-300), settlement.Split, 300, 1000); !errors.Is(err, settlement.ErrTampered) {
		t.Errorf("a rest that overflows the sum: %v, want ErrTampered", err)
	}
}

// proposeSplit builds and signs a split as the provider would.
func (f fixture) proposeSplit(t *testing.T, kind settlement.PayoutKind, amount, rest uint64) []byte {
	t.Helper()
	tx, err := buildPayout(f.terms, f.parties, payoutParams{kind: kind, nonce: withSeed(f.parties.provider, nonceSeed(0), sol.SystemProgramID),
		nonceValue: sol.Hash{7}, amount: amount, rest: rest, decimals: 6})
	if err != nil {
		t.Fatal(err)
	}
	return f.signAs(t, tx, f.parties.provider)
}

// A split parses as a payout to the provider with the rest returned, and
// fits in a packet; both kinds, with and without a rest.
func TestSplitLayout(t *testing.T) {
	f := newFixture(t)
	vault := deriveKeys(f.terms, f.parties).vault
	for _, kind := range []settlement.PayoutKind{settlement.Split, settlement.ArbiterSplit} {
		for _, amount := range []uint64{1, 300, 1000} {
			raw := f.proposeSplit(t, kind, amount, 1000-amount)
			if err := f.checkSplitRaw(raw, kind, amount, 1000); err != nil {
				t.Fatalf("%s of %d refused: %v", kind, amount, err)
			}
			if len(raw) > 1232 {
				t.Errorf("%s of %d is %d bytes, over 1232", kind, amount, len(raw))
			}
			tx, _ := decodeTx(raw)
			if !tx.Message.AccountKeys[0].Equals(f.parties.provider) {
				t.Errorf("%s of %d: fee payer %s, want the provider", kind, amount, tx.Message.AccountKeys[0])
			}
			s, ok := payoutOf(&tx.Message, vault)
			if !ok || !s.paidTo.Equals(f.parties.provider) || s.refunded || s.returned != 1000-amount {
				t.Errorf("%s of %d: parsed as %+v (ok %v)", kind, amount, s, ok)
			}
		}
	}
}

// A budget costs one lock and one split, three transactions at most (the
// first also creates the provider's nonce account), whatever the split
// amount, on the real SPL Token program; and each party ends with exactly
// what the split says: tokens, and lamports (the requester pays the lock's
// fee and gets the vault's rent back, the provider pays the split's fee).
func TestSplitBudget(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	sent := func() int64 { return e.r.sent.Load() + e.p.sent.Load() + e.a.sent.Load() }
	lamports := func(l *Ledger) uint64 {
		t.Helper()
		v, err := l.NativeBalance(ctx, l.Address())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tokens := func(l *Ledger) uint64 {
		t.Helper()
		v, err := l.Balance(ctx, l.Address(), e.mint.String())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for i, c := range []struct {
		kind           settlement.PayoutKind
		budget, amount uint64
	}{
		{settlement.Split, 1000, 1}, // the provider's first: its nonce account and token account
		{settlement.Split, 1000, 400},
		{settlement.ArbiterSplit, 1000, 999},
		{settlement.ArbiterSplit, 1000, 1000},
		{settlement.Split, 5000, 5000},
		{settlement.ArbiterSplit, 1_000_000, 1},
	} {
		before := sent()
		rTok, pTok, rLam, pLam, aLam := tokens(e.r), tokens(e.p), lamports(e.r), lamports(e.p), lamports(e.a)
		tr := e.terms(c.budget, e.mint)
		ref, err := e.r.Lock(ctx, tr)
		if err != nil {
			t.Fatal(err)
		}
		po, err := e.p.ProposeSplit(ctx, ref, tr, c.kind, c.amount)
		if err != nil {
			t.Fatal(err)
		}
		cosigner := e.r
		if c.kind == settlement.ArbiterSplit {
			cosigner = e.a
		}
		if _, err := cosigner.CoSign(ctx, po, tr); err != nil {
			t.Fatalf("%s of %d of %d: %v", c.kind, c.amount, c.budget, err)
		}
		n := sent() - before
		t.Logf("%s of %d of %d: %d transactions", c.kind, c.amount, c.budget, n)
		if n > 3 || (i > 0 && n != 2) {
			t.Fatalf("%s of %d of %d took %d transactions, want 2 after set-up, 3 at most", c.kind, c.amount, c.budget, n)
		}
		if got := tokens(e.p) - pTok; got != c.amount {
			t.Fatalf("%s of %d: the provider got %d", c.kind, c.amount, got)
		}
		if got := rTok - tokens(e.r); got != c.amount {
			t.Fatalf("%s of %d: the requester spent %d", c.kind, c.amount, got)
		}
		if got := rLam - lamports(e.r); i > 0 && got != 5000 { // the first lock also creates the multisig
			t.Fatalf("%s of %d: the requester spent %d lamports, want 5000 (the lock's fee)", c.kind, c.amount, got)
		}
		if got := aLam - lamports(e.a); got != 0 {
			t.Fatalf("%s of %d: the arbiter spent %d lamports", c.kind, c.amount, got)
		}
		if got := pLam - lamports(e.p); i > 0 && got != 10_000 {
			t.Fatalf("%s of %d: the provider spent %d lamports, want 10000 (the split's fee)", c.kind, c.amount, got)
		}
		st, err := e.r.Status(ctx, ref)
		want := settlement.Status{State: settlement.Released, PaidTo: e.p.Address(), Returned: c.budget - c.amount}
		if err != nil || st != want {
			t.Fatalf("status %+v, %v; want %+v", st, err, want)
		}
	}
}

// A split in SOL creates both recipients' wrapped-SOL accounts, paid for
// by the provider, in the same transaction.
func TestSplitNativeMint(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	tr := e.terms(250_000_000, nativeMint)
	ref, err := e.r.Lock(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	po, err := e.p.ProposeSplit(ctx, ref, tr, settlement.Split, 100_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.CoSign(ctx, po, tr); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who  *Ledger
		want uint64
	}{{e.p, 100_000_000}, {e.r, 150_000_000}} {
		if got, err := c.who.Balance(ctx, c.who.Address(), NativeMint); err != nil || got != c.want {
			t.Fatalf("wrapped SOL of %s: %d, %v; want %d", c.who.Address(), got, err, c.want)
		}
	}
	if st, err := e.p.Status(ctx, ref); err != nil || st.State != settlement.Released || st.PaidTo != e.p.Address() || st.Returned != 150_000_000 {
		t.Fatalf("status %+v, %v", st, err)
	}
}
