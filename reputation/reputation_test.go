package reputation

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/cyxwiz/cyxwiz/settlement/memledger"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

const mint = "USDC"

// party is a peer with its ledger account.
type party struct {
	key crypto.PrivKey
	id  peer.ID
	acc *memledger.Party
}

func newParty(t *testing.T, l *memledger.Ledger) party {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	_, sk, _ := ed25519.GenerateKey(rand.Reader)
	p := party{key: k, id: id, acc: l.Party(sk)}
	l.Fund(p.acc.Address(), mint, 100_000_000)
	l.Fund(p.acc.Address(), memledger.NativeMint, 100_000_000)
	return p
}

type world struct {
	t       *testing.T
	l       *memledger.Ledger
	arbiter party
	book    *Book
	self    party
	n       int
}

func newWorld(t *testing.T) *world {
	l := memledger.New()
	w := &world{t: t, l: l}
	w.arbiter = newParty(t, l)
	w.self = newParty(t, l)
	w.book = New(w.self.acc)
	return w
}

func (w *world) jobID() string {
	w.n++
	return fmt.Sprintf("01JOB%021d", w.n)
}

// receipt builds a receipt by req about prov; settle, when not "", locks
// an escrow of price and settles it so ("released", "refunded"), or
// leaves it locked ("locked") while the receipt says released.
func (w *world) receipt(req, prov party, outcome, fault string, price uint64, settle string) market.Receipt {
	t := w.t
	now := time.Now().UTC()
	r := market.Receipt{JobID: w.jobID(), Attempt: 1, Requester: req.id.String(), Provider: prov.id.String(),
		Kind: "wasm", Outcome: outcome, Fault: fault, Price: price, Mint: mint,
		StartedAt: now.Add(-time.Minute), EndedAt: now, IssuedAt: now}
	if settle == "" {
		return r
	}
	terms := settlement.Terms{JobID: r.JobID + "/1", Requester: req.acc.Address(), Provider: prov.acc.Address(),
		Arbiter: w.arbiter.acc.Address(), Mint: mint, Amount: price, Deadline: w.l.Now().Add(time.Hour)}
	ctx := context.Background()
	ref, err := req.acc.Lock(ctx, terms)
	if err != nil {
		t.Fatal(err)
	}
	state := settle
	switch settle {
	case "released":
		po, err := prov.acc.Propose(ctx, ref, terms, settlement.Release)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := req.acc.CoSign(ctx, po, terms); err != nil {
			t.Fatal(err)
		}
	case "refunded":
		w.l.Warp(2 * time.Hour)
		po, err := req.acc.Propose(ctx, ref, terms, settlement.Refund)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.arbiter.acc.CoSign(ctx, po, terms); err != nil {
			t.Fatal(err)
		}
	case "locked":
		state = "released"
	}
	r.Escrow = &market.ReceiptEscrow{Terms: terms, Multisig: ref.Multisig, Vault: ref.Vault, State: state}
	return r
}

// sign seals r with key and, when counter is set, countersigns it with
// prov's key.
func sign(t *testing.T, r market.Receipt, key crypto.PrivKey, counter crypto.PrivKey) market.SignedReceipt {
	t.Helper()
	env, err := market.Seal(key, market.TypeReceipt, r)
	if err != nil {
		t.Fatal(err)
	}
	sr := market.SignedReceipt{Receipt: env}
	if counter != nil {
		if sr.Countersignature, err = market.Countersign(counter.Sign, env); err != nil {
			t.Fatal(err)
		}
	}
	return sr
}

func (w *world) add(sr market.SignedReceipt) error {
	return w.book.Add(context.Background(), sr, w.self.id.String())
}

func TestSybilPraiseCountsForNothing(t *testing.T) {
	w := newWorld(t)
	req, prov := newParty(t, w.l), newParty(t, w.l)
	for i, c := range []struct {
		name   string
		settle string
		want   error
	}{
		{"no escrow", "", ErrUnpaid},
		{"escrow never settled", "locked", ErrUnconfirmed},
	} {
		r := w.receipt(req, prov, market.OutcomeSucceeded, market.FaultNone, 5_000_000, c.settle)
		if err := w.add(sign(t, r, req.key, prov.key)); !errors.Is(err, c.want) {
			t.Errorf("%d %s: Add = %v, want %v", i, c.name, err, c.want)
		}
	}
	// Praise with an escrow refunded to the requester: nothing was paid.
	r0 := w.receipt(req, prov, market.OutcomeSucceeded, market.FaultNone, 5_000_000, "refunded")
	r0.Escrow.State = "refunded"
	if err := w.add(sign(t, r0, req.key, prov.key)); !errors.Is(err, ErrUnconfirmed) {
		t.Errorf("refunded praise: Add = %v, want %v", err, ErrUnconfirmed)
	}
	// An escrow on no ledger: a vault made up.
	r := w.receipt(req, prov, market.OutcomeSucceeded, market.FaultNone, 5_000_000, "released")
	r.Escrow.Terms.Amount, r.Price = 9_000_000, 9_000_000
	if err := w.add(sign(t, r, req.key, prov.key)); !errors.Is(err, ErrUnconfirmed) {
		t.Errorf("inflated escrow: Add = %v, want %v", err, ErrUnconfirmed)
	}
	if s := w.book.Summarize(prov.id.String(), market.Outcomes{}); s.Score != 0.5 || s.Receipts != 0 {
		t.Errorf("after sybil praise: %+v, want a stranger's 0.5 and no receipts", s)
	}
}

func TestBadReceiptsIgnored(t *testing.T) {
	w := newWorld(t)
	req, prov, other := newParty(t, w.l), newParty(t, w.l), newParty(t, w.l)
	r := w.receipt(req, prov, market.OutcomeSucceeded, market.FaultNone, 5_000_000, "released")
	good := sign(t, r, req.key, prov.key)

	forged := good
	forged.Receipt.Signature = append([]byte(nil), good.Receipt.Signature...)
	forged.Receipt.Signature[0] ^= 1
	wrongSigner := sign(t, r, other.key, prov.key) // signed by a party it does not name
	wrongCounter := sign(t, r, req.key, other.key) // countersigned by another
	selfPraise := sign(t, r, req.key, nil)         // the provider never agreed
	for name, sr := range map[string]market.SignedReceipt{
		"forged": forged, "wrong signer": wrongSigner, "wrong countersigner": wrongCounter, "uncountersigned": selfPraise,
	} {
		if err := w.add(sr); err == nil {
			t.Errorf("%s receipt: Add = nil, want an error", name)
		}
	}
	if err := w.add(good); err != nil {
		t.Fatalf("good receipt: %v", err)
	}
	// Replayed as is, or re-signed by its requester, or with another
	// outcome: the attempt was counted.
	r2 := r
	r2.IssuedAt = r.IssuedAt.Add(time.Second)
	for name, sr := range map[string]market.SignedReceipt{"replayed": good, "re-signed": sign(t, r2, req.key, prov.key)} {
		if err := w.add(sr); !errors.Is(err, ErrSeen) {
			t.Errorf("%s: Add = %v, want %v", name, err, ErrSeen)
		}
	}
	s := w.book.Summarize(prov.id.String(), market.Outcomes{})
	if s.Receipts != 1 || s.Paid != 5_000_000 || s.Score <= 0.5 {
		t.Errorf("after one paid success: %+v, want 1 receipt, 5000000 paid, a score above 0.5", s)
	}
}

// ack is key's signed ack of r's award, naming vault.
func ack(t *testing.T, key crypto.PrivKey, r market.Receipt, vault string) *market.Envelope {
	t.Helper()
	id, _ := peer.IDFromPrivateKey(key)
	env, err := market.Seal(key, market.TypeAck, market.Ack{JobID: r.JobID, Attempt: r.Attempt, Provider: id.String(), Accepted: true, Vault: vault})
	if err != nil {
		t.Fatal(err)
	}
	return &env
}

func TestPaidMismatchesBan(t *testing.T) {
	w := newWorld(t)
	req, prov, other := newParty(t, w.l), newParty(t, w.l), newParty(t, w.l)
	blame := func() market.Receipt {
		return w.receipt(req, prov, market.OutcomeMismatch, market.FaultProvider, 2_000_000, "refunded")
	}
	// Blame for a job the provider never took, or took without that
	// escrow: a requester may lock and refund any escrow it likes.
	r := blame()
	noAck := sign(t, r, req.key, nil)
	forgedAck := sign(t, r, req.key, nil)
	forgedAck.Ack = ack(t, other.key, r, r.Escrow.Vault)
	otherVault := sign(t, r, req.key, nil)
	otherVault.Ack = ack(t, prov.key, r, "another vault")
	r2 := r
	r2.Attempt = 2
	otherAttempt := sign(t, r, req.key, nil)
	otherAttempt.Ack = ack(t, prov.key, r2, r.Escrow.Vault)
	if err := w.add(noAck); !errors.Is(err, ErrNotAcked) {
		t.Errorf("unacked mismatch: Add = %v, want %v", err, ErrNotAcked)
	}
	for name, sr := range map[string]market.SignedReceipt{"forged ack": forgedAck, "ack of another vault": otherVault, "ack of another attempt": otherAttempt} {
		if err := w.add(sr); err == nil {
			t.Errorf("mismatch with %s: Add = nil, want an error", name)
		}
	}
	if s := w.book.Summarize(prov.id.String(), market.Outcomes{}); s.Receipts != 0 {
		t.Fatalf("after unproven blame: %+v, want nothing counted", s)
	}
	for i := range MaxMismatches {
		if w.book.Summarize(prov.id.String(), market.Outcomes{}).Banned {
			t.Fatalf("banned after %d mismatches, want %d", i, MaxMismatches)
		}
		r := blame()
		sr := sign(t, r, req.key, nil)
		sr.Ack = ack(t, prov.key, r, r.Escrow.Vault)
		if err := w.add(sr); err != nil {
			t.Fatalf("mismatch %d: %v", i, err)
		}
	}
	s := w.book.Summarize(prov.id.String(), market.Outcomes{})
	if !s.Banned || s.Mismatches != MaxMismatches || s.Score >= 0.5 {
		t.Errorf("after %d paid mismatches: %+v, want banned, a score below 0.5", MaxMismatches, s)
	}
	// A mismatch whose escrow the ledger says is still locked counts not.
	r = w.receipt(req, other, market.OutcomeMismatch, market.FaultProvider, 2_000_000, "locked")
	r.Escrow.State = "refunded"
	sr := sign(t, r, req.key, nil)
	sr.Ack = ack(t, other.key, r, r.Escrow.Vault)
	if err := w.add(sr); !errors.Is(err, ErrUnconfirmed) {
		t.Errorf("unsettled mismatch: Add = %v, want %v", err, ErrUnconfirmed)
	}
}

func TestOwnReceiptsNeedNoEscrow(t *testing.T) {
	w := newWorld(t)
	prov := newParty(t, w.l)
	for range MaxMismatches {
		r := w.receipt(w.self, prov, market.OutcomeMismatch, market.FaultProvider, 0, "")
		if err := w.add(sign(t, r, w.self.key, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if s := w.book.Summarize(prov.id.String(), market.Outcomes{Failed: 2}); !s.Banned || s.Own != 2 {
		t.Errorf("after own mismatches: %+v, want banned, 2 own", s)
	}
}

func TestDecay(t *testing.T) {
	w := newWorld(t)
	req, prov := newParty(t, w.l), newParty(t, w.l)
	if err := w.add(sign(t, w.receipt(req, prov, market.OutcomeSucceeded, market.FaultNone, RefPaid, "released"), req.key, prov.key)); err != nil {
		t.Fatal(err)
	}
	fresh := w.book.Summarize(prov.id.String(), market.Outcomes{})
	if d := fresh.Succeeded - 1; d > 1e-6 || d < -1e-6 {
		t.Fatalf("a fresh receipt of RefPaid weighs %v, want 1", fresh.Succeeded)
	}
	start := time.Now()
	w.book.now = func() time.Time { return start.Add(HalfLife) }
	old := w.book.Summarize(prov.id.String(), market.Outcomes{})
	if d := old.Succeeded - 0.5; d > 1e-3 || d < -1e-3 {
		t.Errorf("after a half-life it weighs %v, want 0.5", old.Succeeded)
	}
	if old.Score >= fresh.Score {
		t.Errorf("score after a half-life %v, want below the fresh %v", old.Score, fresh.Score)
	}
}

func TestWeight(t *testing.T) {
	for _, c := range []struct {
		amount uint64
		want   float64
	}{{0, 0}, {RefPaid, 1}, {1 << 62, MaxWeight}} {
		if got := Weight(c.amount); got-c.want > 1e-9 || c.want-got > 1e-9 {
			t.Errorf("Weight(%d) = %v, want %v", c.amount, got, c.want)
		}
	}
}

// A book full of providers from heard receipts still counts this node's
// own.
func TestFullBookKeepsOwn(t *testing.T) {
	w := newWorld(t)
	for i := range MaxProviders {
		w.book.providers[fmt.Sprintf("p%d", i)] = &entry{at: time.Now()}
	}
	req, prov := newParty(t, w.l), newParty(t, w.l)
	r := w.receipt(req, prov, market.OutcomeMismatch, market.FaultProvider, 2_000_000, "refunded")
	sr := sign(t, r, req.key, nil)
	sr.Ack = ack(t, prov.key, r, r.Escrow.Vault)
	if err := w.add(sr); !errors.Is(err, ErrFull) {
		t.Errorf("heard receipt about a new provider in a full book: Add = %v, want %v", err, ErrFull)
	}
	own := w.receipt(w.self, prov, market.OutcomeMismatch, market.FaultProvider, 0, "")
	if err := w.add(sign(t, own, w.self.key, nil)); err != nil {
		t.Errorf("own receipt in a full book: %v", err)
	}
	if s := w.book.Summarize(prov.id.String(), market.Outcomes{}); s.Mismatches != 1 {
		t.Errorf("after an own mismatch in a full book: %+v", s)
	}
}
