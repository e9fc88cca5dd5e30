package node

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/settlement/memledger"
)

// TestServeSettlesHosting: a priced serve job is paid through its escrow
// for the time served. One that runs its whole wall time is released in
// full; one its requester undeploys early pays the provider pro rata, by
// a split, and the rest comes back; the balances account for all of it.
func TestServeSettlesHosting(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	t.Run("in-memory ledger", func(t *testing.T) { testServeSettlesHosting(t, memLedger{memledger.New()}) })
	t.Run("local Solana ledger", func(t *testing.T) { testServeSettlesHosting(t, newSolLedger(t)) })
}

func testServeSettlesHosting(t *testing.T, ledger testLedger) {
	mint := ledger.mint()
	const funds = 100_000
	m := startPaidMarket(t, ledger, funds, func(c *Config) { c.Market.PricePerCPUSecond = 10 })
	req, reqAddr, provAddr := m.req, m.reqAddr, m.provAddr

	ctx := context.Background()
	w := classifierWeights(t)
	model, err := req.client.AddReader(ctx, "model.safetensors", bytes.NewReader(w), int64(len(w)), api.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	serveSpec := func(wall int) []byte {
		return []byte(fmt.Sprintf(`{"kind":"serve","serve":{"model":%q},"resources":{"cpu":1},"limits":{"wall_seconds":%d},"price":{"max":"10000","mint":%q}}`,
			model.CID, wall, mint))
	}
	bal := func(addr string) uint64 { return ledger.balance(t, addr) }

	// The whole wall time: released in full, 10 per CPU-second for 3 s.
	full, err := req.client.JobSubmit(ctx, serveSpec(3))
	if err != nil {
		t.Fatal(err)
	}
	if done := waitJob(t, req.client, full.ID, time.Minute); done.State != "succeeded" {
		t.Fatalf("a deployment that ran its wall time: %+v", done)
	}
	paid := waitEscrow(t, req.client, full.ID, "released").Escrows[0]
	if paid.Amount != 30 || paid.Paid != 0 || paid.Tx == "" {
		t.Errorf("escrow %+v, want 30 released in full", paid)
	}
	if got, want := bal(provAddr), uint64(30); got != want {
		t.Errorf("provider holds %d, want %d", got, want)
	}
	if got, want := bal(reqAddr), uint64(funds-30); got != want {
		t.Errorf("requester holds %d, want %d", got, want)
	}

	// Undeployed early: paid for the time served, by the requester's clock.
	early, err := req.client.JobSubmit(ctx, serveSpec(60))
	if err != nil {
		t.Fatal(err)
	}
	submitted := time.Now()
	waitRunning(t, req.client, early.ID)
	time.Sleep(3 * time.Second)
	if _, err := req.client.JobCancel(ctx, early.ID); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(submitted)
	if st := waitJob(t, req.client, early.ID, time.Minute); st.State != "cancelled" {
		t.Fatalf("an undeployed job: %+v", st)
	}
	split := waitEscrow(t, req.client, early.ID, "released").Escrows[0]
	// At least the 3 s it surely served, at most what the requester saw
	// from submission to cancellation and the margin: 600 over 60 s.
	if least, most := uint64(600*3/60), uint64(600*(elapsed+2*time.Second)/(60*time.Second)); split.Amount != 600 ||
		split.Paid < least || split.Paid > most || split.Tx == "" {
		t.Errorf("escrow %+v, want a split of 600 paying %d..%d", split, least, most)
	}
	if got, want := bal(provAddr), 30+split.Paid; got != want {
		t.Errorf("provider holds %d, want %d", got, want)
	}
	if got, want := bal(reqAddr), funds-30-split.Paid; got != want {
		t.Errorf("requester holds %d, want %d", got, want)
	}
}
