package solana

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/cyxwiz/cyxwiz/settlement/localledger/ledgertest"
	"github.com/cyxwiz/cyxwiz/settlement/settlementtest"
	sol "github.com/gagliardetto/solana-go"
)

// The tests below run against the local ledger: the real System, SPL Token,
// Associated Token Account and Memo programs in LiteSVM behind the Solana
// JSON-RPC.

const (
	testFunds    = 1_000_000_000 // base units of the test mint the requester holds
	testLamports = 10_000_000_000
)

// testEnv is a local ledger with three funded parties and a mint. The
// requester and the arbiter wait for confirmations over PubSub as well,
// the provider polls only.
type testEnv struct {
	ledger interface {
		WarpTime(context.Context, time.Duration) error
	}
	r, p, a *Ledger
	mint    sol.PublicKey
}

func newParty(t testing.TB, rpcURL, wsURL string, airdrop func(context.Context, string, uint64) error) *Ledger {
	t.Helper()
	key, err := sol.NewRandomPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Config{RPC: rpcURL, WS: wsURL, Key: key, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := airdrop(context.Background(), l.Address(), testLamports); err != nil {
		t.Fatalf("airdrop: %v", err)
	}
	return l
}

// newTestEnv starts a ledger with three funded parties and a mint of 6
// decimals of which the requester holds testFunds, made with the real
// instructions: CreateAccount, InitializeMint2, the requester's associated
// account, MintTo.
func newTestEnv(t testing.TB) testEnv {
	t.Helper()
	ctx := context.Background()
	led := ledgertest.Start(t)
	e := testEnv{ledger: led}
	e.r, e.p, e.a = newParty(t, led.RPC(), led.WS(), led.Airdrop), newParty(t, led.RPC(), "", led.Airdrop), newParty(t, led.RPC(), led.WS(), led.Airdrop)
	mint, err := e.r.CreateMint(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	e.mint = sol.MustPublicKeyFromBase58(mint)
	if err := e.r.MintTo(ctx, mint, e.r.Address(), testFunds); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e testEnv) suiteEnv(t *testing.T) settlementtest.Env {
	return settlementtest.Env{
		Requester: e.r, Provider: e.p, Arbiter: e.a, Mint: e.mint.String(), Funds: testFunds,
		Warp: func(d time.Duration) {
			if err := e.ledger.WarpTime(context.Background(), d); err != nil {
				t.Fatalf("warp: %v", err)
			}
		},
		Now: func() time.Time {
			now, err := e.r.LedgerTime(context.Background())
			if err != nil {
				t.Fatalf("ledger time: %v", err)
			}
			return now
		},
	}
}

func TestConformance(t *testing.T) {
	settlementtest.Run(t, func(t *testing.T) settlementtest.Env { return newTestEnv(t).suiteEnv(t) })
}

func (e testEnv) terms(amount uint64, mint sol.PublicKey) settlement.Terms {
	now, _ := e.r.LedgerTime(context.Background())
	return settlement.Terms{JobID: "job-" + time.Now().Format(time.RFC3339Nano), Requester: e.r.Address(), Provider: e.p.Address(),
		Arbiter: e.a.Address(), Mint: mint.String(), Amount: amount, Deadline: now.Add(time.Hour)}
}

// job locks and releases one escrow.
func (e testEnv) job(t testing.TB, amount uint64) {
	t.Helper()
	e.lockAndRelease(t, e.terms(amount, e.mint))
}

// lockAndRelease locks the terms, has the provider verify the vault and
// propose the release, and the requester co-sign it.
func (e testEnv) lockAndRelease(t testing.TB, tr settlement.Terms) settlement.Ref {
	t.Helper()
	ctx := context.Background()
	ref, err := e.r.Lock(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.Verify(ctx, ref, tr); err != nil {
		t.Fatal(err)
	}
	po, err := e.p.Propose(ctx, ref, tr, settlement.Release)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.CoSign(ctx, po, tr); err != nil {
		t.Fatal(err)
	}
	return ref
}

// costs measures the transactions and the lamports in fees of n jobs after
// set-up (the triple's multisig, the provider's nonce account and token
// account, made by a first job).
func costs(t testing.TB, e testEnv, n int) (txs int64, fees uint64) {
	t.Helper()
	ctx := context.Background()
	e.job(t, 10)
	lamports := func() (sum uint64) {
		for _, l := range []*Ledger{e.r, e.p, e.a} {
			v, err := l.NativeBalance(ctx, l.Address())
			if err != nil {
				t.Fatal(err)
			}
			sum += v
		}
		return sum
	}
	before, sent := lamports(), e.r.sent.Load()+e.p.sent.Load()+e.a.sent.Load()
	for range n {
		e.job(t, 10)
	}
	return e.r.sent.Load() + e.p.sent.Load() + e.a.sent.Load() - sent, before - lamports()
}

func TestCostPerJob(t *testing.T) {
	e := newTestEnv(t)
	const n = 5
	txs, fees := costs(t, e, n)
	t.Logf("per job after set-up: %.1f transactions, %d lamports in fees", float64(txs)/n, fees/n)
	if txs != 2*n || fees > 20_000*n {
		t.Fatalf("%d jobs took %d transactions and %d lamports, want 2 and at most 20,000 each", n, txs, fees)
	}
}

func BenchmarkJob(b *testing.B) {
	e := newTestEnv(b)
	txs, fees := costs(b, e, b.N)
	b.ReportMetric(float64(txs)/float64(b.N), "tx/job")
	b.ReportMetric(float64(fees)/float64(b.N), "lamports/job")
}

// The provider alone cannot move the vault on chain: SPL Token wants two
// of the multisig's members.
func TestProviderAloneOnChain(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	tr := e.terms(500, e.mint)
	ref, err := e.r.Lock(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	k := deriveKeys(tr, mustParties(t, tr))
	p := e.p.addr
	_, err = e.p.sendNew(ctx, "provider alone", []sol.Instruction{
		createATAIdempotent(p, p, e.mint),
		transferChecked(k.vault, e.mint, ata(p, e.mint), k.multisig, []sol.PublicKey{p}, tr.Amount, 6),
	})
	if !errors.Is(err, settlement.ErrSignatures) {
		t.Fatalf("a transfer signed by the provider alone: %v, want ErrSignatures", err)
	}
	if st, err := e.r.Status(ctx, ref); err != nil || st.State != settlement.Locked || st.Amount != 500 {
		t.Fatalf("after the attempt: %+v, %v", st, err)
	}
}

func mustParties(t testing.TB, tr settlement.Terms) parties {
	t.Helper()
	p, err := parseTerms(tr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// An escrow in SOL: the vault is a wrapped-SOL account funded with rent and
// amount, and the payout arrives wrapped.
func TestNativeMint(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	tr := e.terms(250_000_000, nativeMint)
	ref := e.lockAndRelease(t, tr)
	if got, err := e.p.Balance(ctx, e.p.Address(), NativeMint); err != nil || got != tr.Amount {
		t.Fatalf("provider's wrapped SOL: %d, %v", got, err)
	}
	if st, err := e.p.Status(ctx, ref); err != nil || st.State != settlement.Released || st.PaidTo != e.p.Address() {
		t.Fatalf("status %+v, %v", st, err)
	}
}

// Two payouts in flight from the same proposer use two nonce accounts, so
// neither voids the other.
func TestConcurrentPayouts(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	var pos []settlement.Payout
	var trs []settlement.Terms
	for i := range 3 {
		tr := e.terms(uint64(100+i), e.mint)
		ref, err := e.r.Lock(ctx, tr)
		if err != nil {
			t.Fatal(err)
		}
		po, err := e.p.Propose(ctx, ref, tr, settlement.Release)
		if err != nil {
			t.Fatal(err)
		}
		pos, trs = append(pos, po), append(trs, tr)
	}
	for i := len(pos) - 1; i >= 0; i-- {
		if _, err := e.r.CoSign(ctx, pos[i], trs[i]); err != nil {
			t.Fatalf("payout %d: %v", i, err)
		}
	}
	if len(e.p.leases) != 3 {
		t.Fatalf("%d nonce accounts for 3 payouts in flight", len(e.p.leases))
	}
	// All settled: the next payout reuses the first nonce account.
	tr := e.terms(7, e.mint)
	ref, err := e.r.Lock(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	po, err := e.p.Propose(ctx, ref, tr, settlement.Release)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.p.leases) != 3 {
		t.Fatalf("the pool grew to %d with nothing in flight", len(e.p.leases))
	}
	if _, err := e.r.CoSign(ctx, po, tr); err != nil {
		t.Fatal(err)
	}
}

// Locking the same terms twice finds the same vault and moves nothing more.
func TestLockIsIdempotent(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	tr := e.terms(300, e.mint)
	ref1, err := e.r.Lock(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	ref2, err := e.r.Lock(ctx, tr)
	if err != nil || ref2 != ref1 {
		t.Fatalf("second lock: %+v, %v", ref2, err)
	}
	if got, _ := e.r.Balance(ctx, e.r.Address(), e.mint.String()); got != testFunds-300 {
		t.Fatalf("requester holds %d after locking twice", got)
	}
	if _, err := e.p.Lock(ctx, tr); !errors.Is(err, settlement.ErrNotMember) {
		t.Fatalf("provider locking: %v", err)
	}
}

// A signatureSubscribe notification wakes a confirmation wait.
func TestPubSubNotifies(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := e.p.addr
	sig, err := e.p.sendNew(ctx, "create token account", []sol.Instruction{createATAIdempotent(p, p, e.mint)})
	if err != nil {
		t.Fatal(err)
	}
	wake := e.r.subscribe(ctx, sig)
	if wake == nil {
		t.Fatal("no subscription")
	}
	select {
	case <-wake:
	case <-ctx.Done():
		t.Fatal("no notification for a landed transaction")
	}
}

// A payout whose nonce another payout used is refused as stale, before
// signing, and a new proposal goes through. (Within one process nonces are
// leased per vault; this happens after the proposer restarts.)
func TestStalePayout(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	tr1, tr2 := e.terms(11, e.mint), e.terms(12, e.mint)
	ref1, err := e.r.Lock(ctx, tr1)
	if err != nil {
		t.Fatal(err)
	}
	ref2, err := e.r.Lock(ctx, tr2)
	if err != nil {
		t.Fatal(err)
	}
	po1, err := e.p.Propose(ctx, ref1, tr1, settlement.Release)
	if err != nil {
		t.Fatal(err)
	}
	restarted, err := New(e.p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	po2, err := restarted.Propose(ctx, ref2, tr2, settlement.Release)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.CoSign(ctx, po2, tr2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.CoSign(ctx, po1, tr1); !errors.Is(err, ErrStale) {
		t.Fatalf("payout on a used nonce: %v, want ErrStale", err)
	}
	again, err := restarted.Propose(ctx, ref1, tr1, settlement.Release)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.CoSign(ctx, again, tr1); err != nil {
		t.Fatal(err)
	}
}

func TestLockWithoutFunds(t *testing.T) {
	e := newTestEnv(t)
	if _, err := e.r.Lock(context.Background(), e.terms(testFunds+1, e.mint)); !errors.Is(err, settlement.ErrFunds) {
		t.Fatalf("lock over the balance: %v, want ErrFunds", err)
	}
}

// Tokens sent into a vault on top of the amount do not block its payout:
// the payout sweeps them to the recipient. A payout proposed before such a
// deposit is refused as stale.
func TestSurplusInVault(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	tr := e.terms(500, e.mint)
	ref, err := e.r.Lock(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	vault := deriveKeys(tr, mustParties(t, tr)).vault
	r := e.r.addr
	deposit := func(n uint64) {
		t.Helper()
		if _, err := e.r.sendNew(ctx, "deposit", []sol.Instruction{transferChecked(ata(r, e.mint), e.mint, vault, r, nil, n, 6)}); err != nil {
			t.Fatal(err)
		}
	}
	deposit(7)
	po, err := e.a.Propose(ctx, ref, tr, settlement.AwardProvider)
	if err != nil {
		t.Fatal(err)
	}
	deposit(3)
	if _, err := e.p.CoSign(ctx, po, tr); !errors.Is(err, ErrStale) {
		t.Fatalf("payout proposed before a deposit: %v, want ErrStale", err)
	}
	if po, err = e.a.Propose(ctx, ref, tr, settlement.AwardProvider); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.CoSign(ctx, po, tr); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.p.Balance(ctx, e.p.Address(), e.mint.String()); got != 510 {
		t.Fatalf("provider holds %d, want 510", got)
	}
	if st, err := e.p.Status(ctx, ref); err != nil || st.State != settlement.Released || st.PaidTo != e.p.Address() {
		t.Fatalf("status %+v, %v", st, err)
	}
}
