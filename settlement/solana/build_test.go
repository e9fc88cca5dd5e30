package solana

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
	sol "github.com/gagliardetto/solana-go"
)

// Tests that need no ledger: derivations, instruction layouts, and the
// co-signer's checks on hand-built and tampered payouts.

type fixture struct {
	r, p, a sol.PrivateKey
	mint    sol.PublicKey
	terms   settlement.Terms
	parties parties
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	var keys [4]sol.PrivateKey
	for i := range keys {
		k, err := sol.NewRandomPrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	f := fixture{r: keys[0], p: keys[1], a: keys[2], mint: keys[3].PublicKey()}
	f.terms = settlement.Terms{JobID: "job-1", Requester: f.r.PublicKey().String(), Provider: f.p.PublicKey().String(),
		Arbiter: f.a.PublicKey().String(), Mint: f.mint.String(), Amount: 1000, Deadline: time.Unix(1_800_000_000, 0)}
	var err error
	if f.parties, err = parseTerms(f.terms); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f fixture) key(k sol.PublicKey) *sol.PrivateKey {
	for _, s := range []sol.PrivateKey{f.r, f.p, f.a} {
		if s.PublicKey().Equals(k) {
			return &s
		}
	}
	return nil
}

// propose builds and signs a payout as the proposer would, from possibly
// other terms.
func (f fixture) propose(t *testing.T, terms settlement.Terms, kind settlement.PayoutKind) []byte {
	t.Helper()
	p, err := parseTerms(terms)
	if err != nil {
		t.Fatal(err)
	}
	proposer, _, _ := roles(kind, p)
	tx, err := buildPayout(terms, p, payoutParams{kind: kind, nonce: withSeed(proposer, nonceSeed(0), sol.SystemProgramID),
		nonceValue: sol.Hash{7}, amount: terms.Amount, decimals: 6})
	if err != nil {
		t.Fatal(err)
	}
	return f.signAs(t, tx, proposer)
}

func (f fixture) signAs(t *testing.T, tx *sol.Transaction, who sol.PublicKey) []byte {
	t.Helper()
	if _, err := tx.PartialSign(func(k sol.PublicKey) *sol.PrivateKey {
		if k.Equals(who) {
			return f.key(k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	raw, err := tx.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (f fixture) check(raw []byte, kind settlement.PayoutKind) error {
	tx, err := decodeTx(raw)
	if err != nil {
		return err
	}
	pp, err := checkPayout(tx, f.terms, f.parties, kind, 6)
	if err != nil {
		return err
	}
	return checkHeld(pp, f.terms.Amount) // the vault holds the amount
}

func TestSeedsAndAddresses(t *testing.T) {
	f := newFixture(t)
	k := deriveKeys(f.terms, f.parties)
	if len(k.multisigSeed) != 32 || len(k.vaultSeed) != 32 {
		t.Fatalf("seeds of %d and %d bytes, want 32", len(k.multisigSeed), len(k.vaultSeed))
	}
	if k2 := deriveKeys(f.terms, f.parties); k2 != k {
		t.Fatal("derivation is not deterministic")
	}
	for name, mutate := range map[string]func(*settlement.Terms){
		"job":      func(x *settlement.Terms) { x.JobID += "x" },
		"amount":   func(x *settlement.Terms) { x.Amount++ },
		"deadline": func(x *settlement.Terms) { x.Deadline = x.Deadline.Add(time.Nanosecond) },
		"mint":     func(x *settlement.Terms) { x.Mint = NativeMint },
		"roles":    func(x *settlement.Terms) { x.Provider, x.Arbiter = x.Arbiter, x.Provider },
	} {
		other := f.terms
		mutate(&other)
		p, err := parseTerms(other)
		if err != nil {
			t.Fatal(err)
		}
		if deriveKeys(other, p).vault == k.vault {
			t.Errorf("other %s, same vault", name)
		}
	}
	// The multisig depends on the triple only.
	other := f.terms
	other.JobID = "job-2"
	if deriveKeys(other, f.parties).multisig != k.multisig {
		t.Error("the multisig changes with the job")
	}
	ref, err := DeriveRef(f.terms)
	if err != nil || ref.Vault != k.vault.String() || ref.Multisig != k.multisig.String() {
		t.Fatalf("DeriveRef = %+v, %v", ref, err)
	}
	if _, err := DeriveRef(settlement.Terms{}); !errors.Is(err, settlement.ErrInvalidTerms) {
		t.Fatalf("DeriveRef of empty terms: %v", err)
	}
	bad := f.terms
	bad.Mint = "not-base58-0OIl"
	if _, err := parseTerms(bad); !errors.Is(err, settlement.ErrInvalidTerms) {
		t.Fatalf("bad mint: %v", err)
	}
}

func TestMultisigMembersDoNotSign(t *testing.T) {
	f := newFixture(t)
	ix := initializeMultisig2(sol.PublicKey{1}, 2, f.parties.requester, f.parties.provider, f.parties.arbiter)
	for i, m := range ix.Accounts() {
		if m.IsSigner {
			t.Errorf("account %d of InitializeMultisig2 signs", i)
		}
	}
	if d, _ := ix.Data(); len(d) != 2 || d[0] != 19 || d[1] != 2 {
		t.Fatalf("InitializeMultisig2 data %v", d)
	}
}

func TestTransactionSizes(t *testing.T) {
	f := newFixture(t)
	f.terms.JobID = strings.Repeat("j", 64)
	k := deriveKeys(f.terms, f.parties)
	r := f.parties.requester
	ixs := []sol.Instruction{
		createAccountWithSeed(r, k.multisig, r, k.multisigSeed, 1, MultisigSize, sol.TokenProgramID),
		initializeMultisig2(k.multisig, 2, r, f.parties.provider, f.parties.arbiter),
		createAccountWithSeed(r, k.vault, r, k.vaultSeed, 1, TokenAccountSize, sol.TokenProgramID),
		initializeAccount3(k.vault, f.mint, k.multisig),
		transferChecked(ata(r, f.mint), f.mint, k.vault, r, nil, 1, 6),
		memoInstruction(memo(f.terms)),
	}
	tx, err := sol.NewTransaction(ixs, sol.Hash{1}, sol.TransactionPayer(r))
	if err != nil {
		t.Fatal(err)
	}
	raw := f.signAs(t, tx, r)
	if len(raw) > 1232 {
		t.Errorf("first lock of a 64-byte job id is %d bytes, over 1232", len(raw))
	}
	t.Logf("first lock (with the multisig): %d bytes", len(raw))
	payout := f.propose(t, f.terms, settlement.Release)
	if len(payout) > 1232 {
		t.Errorf("payout is %d bytes", len(payout))
	}
	t.Logf("payout: %d bytes", len(payout))
}

func TestCheckPayout(t *testing.T) {
	f := newFixture(t)
	for _, kind := range []settlement.PayoutKind{settlement.Release, settlement.Refund, settlement.AwardProvider, settlement.AwardRequester} {
		raw := f.propose(t, f.terms, kind)
		if err := f.check(raw, kind); err != nil {
			t.Fatalf("%s: untampered payout refused: %v", kind, err)
		}
		tx, _ := decodeTx(raw)
		if n := tx.Message.Header.NumRequiredSignatures; n != 2 {
			t.Fatalf("%s: %d signers", kind, n)
		}
		to := recipient(kind, f.parties)
		if !tx.Message.AccountKeys[0].Equals(to) {
			t.Fatalf("%s: fee payer %s, want the recipient", kind, tx.Message.AccountKeys[0])
		}
		s, ok := payoutOf(&tx.Message, deriveKeys(f.terms, f.parties).vault)
		if !ok || !s.paidTo.Equals(to) || s.refunded != to.Equals(f.parties.requester) || s.returned != 0 {
			t.Fatalf("%s: parsed as %+v (ok %v)", kind, s, ok)
		}
	}
}

func TestCheckPayoutRefusesTampering(t *testing.T) {
	f := newFixture(t)
	p := f.parties
	k := deriveKeys(f.terms, p)
	provider := p.provider
	nonce := withSeed(provider, nonceSeed(0), sol.SystemProgramID)
	signers := []sol.PublicKey{provider, p.requester}
	build := func(ixs []sol.Instruction, payer sol.PublicKey) []byte {
		tx, err := sol.NewTransaction(ixs, sol.Hash{7}, sol.TransactionPayer(payer))
		if err != nil {
			t.Fatal(err)
		}
		return f.signAs(t, tx, provider)
	}
	good := func() []sol.Instruction {
		return []sol.Instruction{
			advanceNonce(nonce, provider),
			createATAIdempotent(provider, provider, p.mint),
			transferChecked(k.vault, p.mint, ata(provider, p.mint), k.multisig, signers, f.terms.Amount, 6),
			closeAccount(k.vault, p.requester, k.multisig, signers),
		}
	}
	if err := f.check(build(good(), provider), settlement.Release); err != nil {
		t.Fatalf("hand-built release refused: %v", err)
	}
	thief := sol.PublicKey{9}
	cases := map[string][]byte{
		"extra instruction": build(append(good(), memoInstruction([]byte("hi"))), provider),
		"extra transfer": build(append(good()[:3], transferChecked(ata(p.requester, p.mint), p.mint, ata(provider, p.mint), p.requester, nil, 5, 6),
			good()[3]), provider),
		"other recipient": build([]sol.Instruction{good()[0], good()[1],
			transferChecked(k.vault, p.mint, ata(thief, p.mint), k.multisig, signers, f.terms.Amount, 6), good()[3]}, provider),
		"other amount": build([]sol.Instruction{good()[0], good()[1],
			transferChecked(k.vault, p.mint, ata(provider, p.mint), k.multisig, signers, f.terms.Amount+1, 6), good()[3]}, provider),
		"less": build([]sol.Instruction{good()[0], good()[1],
			transferChecked(k.vault, p.mint, ata(provider, p.mint), k.multisig, signers, f.terms.Amount-1, 6), good()[3]}, provider),
		"other decimals": build([]sol.Instruction{good()[0], good()[1],
			transferChecked(k.vault, p.mint, ata(provider, p.mint), k.multisig, signers, f.terms.Amount, 9), good()[3]}, provider),
		"rent to the provider": build([]sol.Instruction{good()[0], good()[1], good()[2],
			closeAccount(k.vault, provider, k.multisig, signers)}, provider),
		"requester pays the fee": build(good(), p.requester),
		"no nonce":               build(good()[1:], provider),
		"nonce of the requester": build(append([]sol.Instruction{advanceNonce(nonce, p.requester)}, good()[1:]...), provider),
		"arbiter signs instead": build([]sol.Instruction{good()[0], good()[1],
			transferChecked(k.vault, p.mint, ata(provider, p.mint), k.multisig, []sol.PublicKey{provider, p.arbiter}, f.terms.Amount, 6), good()[3]}, provider),
		"other terms": f.propose(t, func() settlement.Terms { x := f.terms; x.Amount = 4000; return x }(), settlement.Release),
		"other kind":  f.propose(t, f.terms, settlement.AwardProvider),
	}
	unsigned, _ := sol.NewTransaction(good(), sol.Hash{7}, sol.TransactionPayer(provider))
	unsigned.Signatures = make([]sol.Signature, 2)
	cases["unsigned"], _ = unsigned.MarshalBinary()
	both, _ := sol.NewTransaction(good(), sol.Hash{7}, sol.TransactionPayer(provider))
	if _, err := both.Sign(f.key); err != nil {
		t.Fatal(err)
	}
	cases["already co-signed"], _ = both.MarshalBinary()
	valid := build(good(), provider)
	cases["trailing byte"] = append(append([]byte(nil), valid...), 0)
	for name, raw := range cases {
		if err := f.check(raw, settlement.Release); !errors.Is(err, settlement.ErrTampered) {
			t.Errorf("%s: %v, want ErrTampered", name, err)
		}
	}
	for i := range valid {
		bad := append([]byte(nil), valid...)
		bad[i] ^= 0x5a
		if err := f.check(bad, settlement.Release); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
}

func TestKeypairFile(t *testing.T) {
	key, err := sol.NewRandomPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "wallet.json")
	if err := SaveKeypair(path, key); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKeypair(path)
	if err != nil || !got.PublicKey().Equals(key.PublicKey()) {
		t.Fatalf("load: %v", err)
	}
	cli, err := sol.PrivateKeyFromSolanaKeygenFile(path)
	if err != nil || !cli.PublicKey().Equals(key.PublicKey()) {
		t.Fatalf("solana-go reads it as %v, %v", cli, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	os.WriteFile(path, []byte("[1,2,3]"), 0o600)
	if _, err := LoadKeypair(path); err == nil {
		t.Fatal("a short key loaded")
	}
}
