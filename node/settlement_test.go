package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/cyxwiz/cyxwiz/settlement/localledger"
	"github.com/cyxwiz/cyxwiz/settlement/localledger/ledgertest"
	"github.com/cyxwiz/cyxwiz/settlement/memledger"
	"github.com/cyxwiz/cyxwiz/settlement/solana"
	sol "github.com/gagliardetto/solana-go"
)

// testLedger is a ledger the escrow test runs on.
type testLedger interface {
	// escrow opens a party's account (nil: the node's configured ledger).
	escrow() EscrowFactory
	// config points a node's settlement at the ledger.
	config(c *Config)
	// fund gives an account tokens of the mint and lamports for fees.
	fund(t *testing.T, addr string, tokens uint64)
	balance(t *testing.T, addr string) uint64
	warp(t *testing.T, d time.Duration)
	mint() string
}

// memLedger is the in-memory ledger.
type memLedger struct{ l *memledger.Ledger }

const memMint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"

func (m memLedger) escrow() EscrowFactory {
	return func(k ed25519.PrivateKey) (settlement.Escrow, error) { return m.l.Party(k), nil }
}
func (m memLedger) config(c *Config) {
	c.Settlement = SettlementConfig{Ledger: "solana", Cluster: ClusterLocal, RPCURL: "http://127.0.0.1:1", WSURL: "ws://127.0.0.1:1"}
}
func (m memLedger) fund(t *testing.T, addr string, tokens uint64) {
	m.l.Fund(addr, memMint, tokens)
	m.l.Fund(addr, memledger.NativeMint, 1_000_000)
}
func (m memLedger) balance(t *testing.T, addr string) uint64 {
	b, _ := m.l.Party(ed25519.NewKeyFromSeed(make([]byte, 32))).Balance(context.Background(), addr, memMint)
	return b
}
func (m memLedger) warp(t *testing.T, d time.Duration) { m.l.Warp(d) }
func (m memLedger) mint() string                       { return memMint }

// solLedger is the local Solana ledger: the real SPL Token program.
type solLedger struct {
	l     *localledger.Ledger
	bank  *solana.Ledger
	token string
}

func newSolLedger(t *testing.T) solLedger {
	l := ledgertest.Start(t)
	bank, token, err := newTestMint(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	return solLedger{l: l, bank: bank, token: token}
}

// testLamports is the SOL a funded account gets for fees and rent.
const testLamports = 10_000_000_000

// newTestMint creates a token on the ledger, with a throwaway key as its
// mint authority.
func newTestMint(ctx context.Context, l *localledger.Ledger) (*solana.Ledger, string, error) {
	key, err := sol.NewRandomPrivateKey()
	if err != nil {
		return nil, "", err
	}
	bank, err := solana.New(solana.Config{RPC: l.RPC(), WS: l.WS(), Key: key})
	if err != nil {
		return nil, "", err
	}
	if err := l.Airdrop(ctx, bank.Address(), testLamports); err != nil {
		return nil, "", fmt.Errorf("fund the mint authority: %w", err)
	}
	mint, err := bank.CreateMint(ctx, 6)
	if err != nil {
		return nil, "", err
	}
	return bank, mint, nil
}

func (s solLedger) escrow() EscrowFactory { return nil }
func (s solLedger) config(c *Config) {
	c.Settlement = SettlementConfig{Ledger: "solana", Cluster: ClusterLocal, RPCURL: s.l.RPC(), WSURL: s.l.WS()}
}
func (s solLedger) fund(t *testing.T, addr string, tokens uint64) {
	ctx := context.Background()
	if err := s.l.Airdrop(ctx, addr, testLamports); err != nil {
		t.Fatal(err)
	}
	if tokens > 0 {
		if err := s.bank.MintTo(ctx, s.token, addr, tokens); err != nil {
			t.Fatal(err)
		}
	}
}
func (s solLedger) balance(t *testing.T, addr string) uint64 {
	b, err := s.bank.Balance(context.Background(), addr, s.token)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
func (s solLedger) warp(t *testing.T, d time.Duration) {
	if err := s.l.WarpTime(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}
func (s solLedger) mint() string { return s.token }

// startNodeOn starts a node whose ledger account is on the test ledger,
// and returns its ledger address too.
func startNodeOn(t *testing.T, cfg Config, ledger testLedger) (*testNode, string) {
	t.Helper()
	n := startNodeWith(t, cfg, 0, ledger.escrow())
	a, err := n.client.WalletAddress(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n, a.Address
}

func waitEscrow(t *testing.T, c *api.Client, id, state string) api.JobInfo {
	t.Helper()
	for range 400 {
		info, err := c.JobStatus(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(info.Escrows); n > 0 && info.Escrows[n-1].State == state {
			return info
		}
		time.Sleep(25 * time.Millisecond)
	}
	info, _ := c.JobStatus(context.Background(), id)
	t.Fatalf("escrow of job %s never %s: %+v", id, state, info.Escrows)
	return info
}

// waitReceipt waits until the receipt of a job's last attempt is
// published and returns it, checked and opened.
func waitReceipt(t *testing.T, c *api.Client, id string) (api.JobReceipt, market.Receipt) {
	t.Helper()
	var info api.JobInfo
	for range 400 {
		var err error
		info, err = c.JobStatus(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(info.Receipts); n > 0 && info.Receipts[n-1].Published {
			rc := info.Receipts[n-1]
			sr, err := market.ParseSignedReceipt(rc.Signed)
			if err != nil {
				t.Fatal(err)
			}
			r, counter, err := sr.Open()
			if err != nil || counter != rc.Countersigned || sr.ID() != rc.ID {
				t.Fatalf("receipt %+v: %v", rc, err)
			}
			return rc, r
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("the receipt of job %s was never published: %+v", id, info.Receipts)
	return api.JobReceipt{}, market.Receipt{}
}

// Priced jobs are paid through escrows: locked at award, released to the
// provider when the requester has the outputs, refunded with the arbiter
// after the deadline when the job fails; the money is all accounted for.
func TestEscrowedJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	t.Run("in-memory ledger", func(t *testing.T) { testEscrowedJobs(t, memLedger{memledger.New()}) })
	t.Run("local Solana ledger", func(t *testing.T) { testEscrowedJobs(t, newSolLedger(t)) })
}

func testEscrowedJobs(t *testing.T, ledger testLedger) {
	mint := ledger.mint()
	const funds = 100_000
	pm := startPaidMarket(t, ledger, funds, func(c *Config) { c.Market.PricePerCPUSecond = 10 })
	arbiter, req, reqAddr, prov, provAddr := pm.arbiter, pm.req, pm.reqAddr, pm.prov, pm.provAddr
	var err error

	ctx := context.Background()
	if a, err := req.client.WalletAddress(ctx); err != nil || a.Address != reqAddr || a.Ledger != "solana" {
		t.Errorf("wallet.address = %+v, %v; want %s", a, err, reqAddr)
	}
	if b, err := req.client.WalletBalance(ctx, api.WalletBalanceParams{}); err != nil || b.Balance != funds || b.Mint != mint ||
		b.Lamports == nil || *b.Lamports == 0 {
		t.Errorf("wallet.balance = %+v, %v; want %d of %s and some lamports", b, err, funds, mint)
	}

	guest, err := os.ReadFile(guestModule(t))
	if err != nil {
		t.Fatal(err)
	}
	module := addFile(t, req.client, "guest.wasm", guest)
	input := addFile(t, req.client, "data.txt", []byte("paid work\n"))
	price := map[string]any{"price": map[string]string{"max": "1000", "mint": mint}}

	job, err := req.client.JobSubmit(ctx, spec(module, input, price))
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, req.client, job.ID, time.Minute)
	if done.State != "succeeded" {
		t.Fatalf("job %s: %+v", done.State, done)
	}
	paid := waitEscrow(t, req.client, job.ID, "released")
	amount := paid.Escrows[0].Amount
	// The requester's metrics count the escrow's states and its ledger
	// calls.
	m := scrape(t, req)
	for _, series := range []string{`cyxwiz_settlement_escrows_total{state="locked"}`, `cyxwiz_settlement_escrows_total{state="released"}`,
		`cyxwiz_settlement_ledger_calls_total{op="lock"}`} {
		wantAtLeast(t, "requester", m, series, 1)
	}
	wantAtLeast(t, "requester", m, `cyxwiz_settlement_ledger_errors_total{op="lock"}`, 0)
	if amount != 300 || paid.Escrows[0].Tx == "" {
		t.Errorf("escrow %+v, want 300 (10 per CPU-second for 30 s) released", paid.Escrows[0])
	}
	// The requester signs a receipt that names the release, and the
	// provider countersigns it.
	rc, receipt := waitReceipt(t, req.client, job.ID)
	if !rc.Countersigned || receipt.Outcome != market.OutcomeSucceeded || receipt.Price != amount ||
		receipt.Escrow == nil || receipt.Escrow.State != "released" || receipt.Escrow.Tx != paid.Escrows[0].Tx || receipt.Escrow.Terms.Provider != provAddr {
		t.Errorf("receipt %+v (%+v), want a countersigned release of %d to %s in %s", rc, receipt.Escrow, amount, provAddr, paid.Escrows[0].Tx)
	}
	// The arbiter, an indexer too, keeps the receipt and finds its
	// release on the ledger.
	var indexed indexdb.JobDetail
	poll(t, 30*time.Second, "the arbiter's index to confirm the release", func() bool {
		indexed, err = arbiter.client.IndexerJob(ctx, job.ID)
		return err == nil && indexed.EscrowCheck == indexdb.CheckConfirmed
	})
	if indexed.EscrowState != "released" || len(indexed.Checks) != 1 {
		t.Errorf("indexed job %+v, checks %+v", indexed.JobSummary, indexed.Checks)
	}
	bal := func(addr string) uint64 { return ledger.balance(t, addr) }
	if got := bal(provAddr); got != amount {
		t.Errorf("provider holds %d, want %d", got, amount)
	}
	if got := bal(reqAddr); got != funds-amount {
		t.Errorf("requester holds %d, want %d", got, funds-amount)
	}

	// A dispute: the provider says a failed job was done; the arbiter
	// decides for it, and the provider co-signs its own payment.
	bad2, err := req.client.JobSubmit(ctx, spec(module, input, map[string]any{"price": price["price"],
		"wasm": map[string]any{"module": module, "args": []string{"exit", "7"}}}))
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, req.client, bad2.ID, time.Minute)
	if _, err := req.client.JobDispute(ctx, api.JobDisputeParams{ID: "nope"}); err == nil {
		t.Error("a dispute of an unknown job was opened")
	}
	opened, err := prov.client.JobDispute(ctx, api.JobDisputeParams{ID: bad2.ID, Reason: "the program ran as asked"})
	if err != nil || opened.Side != "provider" {
		t.Fatalf("job.dispute = %+v, %v", opened, err)
	}
	ds, err := arbiter.client.ArbiterDisputes(ctx)
	if err != nil || len(ds) != 1 || ds[0].Escrow != opened.Escrow || ds[0].OpenedBy != "provider" || ds[0].Winner != "" {
		t.Fatalf("arbiter.disputes = %+v, %v", ds, err)
	}
	if _, err := req.client.ArbiterResolve(ctx, api.ArbiterResolveParams{Escrow: opened.Escrow, Winner: "requester"}); err == nil {
		t.Error("a node that is not the arbiter resolved a dispute")
	}
	decided, err := arbiter.client.ArbiterResolve(ctx, api.ArbiterResolveParams{Escrow: opened.Escrow, Winner: "provider"})
	if err != nil || decided.Winner != "provider" || decided.Tx == "" {
		t.Fatalf("arbiter.resolve = %+v, %v", decided, err)
	}
	if got := bal(provAddr); got != 2*amount {
		t.Errorf("provider holds %d after winning the dispute, want %d", got, 2*amount)
	}
	if got := bal(reqAddr); got != funds-2*amount {
		t.Errorf("requester holds %d after losing the dispute, want %d", got, funds-2*amount)
	}
	waitEscrow(t, req.client, bad2.ID, "released")
	if _, err := arbiter.client.ArbiterResolve(ctx, api.ArbiterResolveParams{Escrow: opened.Escrow, Winner: "requester"}); err == nil {
		t.Error("a decided dispute was decided again")
	}

	// A job that fails is refunded once the ledger's clock passes the
	// escrow's deadline, with the arbiter's signature.
	bad, err := req.client.JobSubmit(ctx, spec(module, input, map[string]any{"price": price["price"],
		"wasm": map[string]any{"module": module, "args": []string{"exit", "7"}}}))
	if err != nil {
		t.Fatal(err)
	}
	if failed := waitJob(t, req.client, bad.ID, time.Minute); failed.State != "failed" {
		t.Fatalf("failing job: %+v", failed)
	}
	st, _ := req.client.JobStatus(ctx, bad.ID)
	if len(st.Escrows) != 1 || st.Escrows[0].State != "locked" {
		t.Fatalf("before the deadline the escrow stays locked: %+v", st.Escrows)
	}
	if got := bal(reqAddr); got != funds-3*amount {
		t.Errorf("requester holds %d with one escrow locked, want %d", got, funds-3*amount)
	}
	ledger.warp(t, time.Until(st.Escrows[0].Deadline)+time.Second)
	refunded := waitEscrow(t, req.client, bad.ID, "refunded")
	if refunded.Escrows[0].Tx == "" {
		t.Errorf("refund without a transaction: %+v", refunded.Escrows[0])
	}
	if got := bal(reqAddr); got != funds-2*amount {
		t.Errorf("requester holds %d after the refund, want %d", got, funds-2*amount)
	}
	// The job's own failure: the provider agrees, and the receipt names
	// the refund.
	rc, receipt = waitReceipt(t, req.client, bad.ID)
	if !rc.Countersigned || receipt.Outcome != market.OutcomeFailed || receipt.Fault != market.FaultRequester ||
		receipt.Escrow == nil || receipt.Escrow.State != "refunded" || receipt.Escrow.Tx != refunded.Escrows[0].Tx {
		t.Errorf("receipt of the failed job %+v (%+v), want a countersigned refund", rc, receipt.Escrow)
	}
	if got := bal(provAddr); got != 2*amount {
		t.Errorf("provider holds %d, want %d", got, 2*amount)
	}

	// A job priced beyond the requester's funds fails at the lock.
	poor, err := req.client.JobSubmit(ctx, spec(module, input, map[string]any{
		"price": map[string]string{"max": "100000000", "mint": mint}, "limits": map[string]int{"wall_seconds": 60000}}))
	if err != nil {
		t.Fatal(err)
	}
	if out := waitJob(t, req.client, poor.ID, time.Minute); out.State != "failed" {
		t.Errorf("a job the requester cannot pay for: %+v", out)
	}
	if out, _ := req.client.JobStatus(ctx, poor.ID); !strings.Contains(out.Reason, "insufficient funds") {
		t.Errorf("the reason should say why: %q", out.Reason)
	}
}

// paidSwarm is an arbiter and a requester (no capacity) on one test
// ledger, the requester funded, and the config its providers start from.
type paidSwarm struct {
	ledger               testLedger
	arbiter, req         *testNode
	arbiterAddr, reqAddr string
	// provider is a provider's config: the ledger, the mint, the arbiter
	// and the swarm's address.
	provider Config
}

// startPaidSwarm starts a paidSwarm whose requester holds funds.
func startPaidSwarm(t *testing.T, ledger testLedger, funds uint64) paidSwarm {
	t.Helper()
	base := testConfig()
	base.Market.Mint = ledger.mint()
	ledger.config(&base)
	s := paidSwarm{ledger: ledger}
	acfg := base
	acfg.Role, acfg.Market.Provider = RoleArbiter, false
	s.arbiter, s.arbiterAddr = startNodeOn(t, acfg, ledger)
	ledger.fund(t, s.arbiterAddr, 0)
	info, err := s.arbiter.client.NodeInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	base.Swarm.Bootstrap = info.Addresses
	base.Settlement.Arbiter = info.ID
	rcfg := base
	rcfg.Market.Provider = false
	metricsConfig(&rcfg)
	s.req, s.reqAddr = startNodeOn(t, rcfg, ledger)
	ledger.fund(t, s.reqAddr, funds)
	s.provider = base
	return s
}

// startProvider starts a provider of the swarm, its config changed by
// config and its Params by params (either may be nil), with lamports for
// its fees; it returns the node, its peer ID and its ledger address.
func (s paidSwarm) startProvider(t *testing.T, config func(*Config), params func(*Params)) (*testNode, string, string) {
	t.Helper()
	cfg := s.provider
	if config != nil {
		config(&cfg)
	}
	n := startNodeEdit(t, cfg, 0, func(p *Params) {
		p.Escrow = s.ledger.escrow()
		if params != nil {
			params(p)
		}
	})
	a, err := n.client.WalletAddress(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.ledger.fund(t, a.Address, 0)
	return n, n.Host().ID().String(), a.Address
}

// paidMarket is a paidSwarm with one provider.
type paidMarket struct {
	arbiter, req, prov             *testNode
	arbiterAddr, reqAddr, provAddr string
}

// startPaidMarket starts a paidSwarm whose requester holds funds and one
// provider, its config changed by provider.
func startPaidMarket(t *testing.T, ledger testLedger, funds uint64, provider func(*Config)) paidMarket {
	t.Helper()
	s := startPaidSwarm(t, ledger, funds)
	prov, _, provAddr := s.startProvider(t, provider, nil)
	waitProviders(t, s.req.client, 1)
	return paidMarket{arbiter: s.arbiter, req: s.req, prov: prov, arbiterAddr: s.arbiterAddr, reqAddr: s.reqAddr, provAddr: provAddr}
}
