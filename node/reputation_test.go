package node

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/reputation"
	"github.com/cyxwiz/cyxwiz/settlement/memledger"
)

// reputationOf returns what a node's market.providers says of a provider.
func reputationOf(t *testing.T, c *api.Client, provider string) (api.Reputation, bool) {
	t.Helper()
	ps, err := c.MarketProviders(context.Background(), api.ProvidersParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == provider {
			return p.Reputation, true
		}
	}
	return api.Reputation{}, false
}

// waitReputation polls a node's view of a provider until ok holds.
func waitReputation(t *testing.T, c *api.Client, provider string, ok func(api.Reputation) bool) api.Reputation {
	t.Helper()
	var r api.Reputation
	for range 400 {
		var found bool
		if r, found = reputationOf(t, c, provider); found && ok(r) {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("reputation of %s: %+v", provider, r)
	return r
}

// A cheater caught in paid replicated jobs is banned by their requester
// and, from its published receipts confirmed on the ledger, by another
// node that never dealt with it: that node's jobs go to honest providers
// although the cheater bids far cheaper. The honest providers' paid
// receipts raise their scores there.
func TestReputationFromPaidReceipts(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	t.Run("in-memory ledger", func(t *testing.T) { testReputationFromPaid(t, memLedger{memledger.New()}) })
	t.Run("local Solana ledger", func(t *testing.T) { testReputationFromPaid(t, newSolLedger(t)) })
}

func testReputationFromPaid(t *testing.T, ledger testLedger) {
	mint := ledger.mint()
	sw := startPaidSwarm(t, ledger, 100_000)
	req := sw.req
	ocfg := sw.provider
	ocfg.Market.Provider = false
	observer, obsAddr := startNodeOn(t, ocfg, ledger)
	ledger.fund(t, obsAddr, 100_000)

	var cheaterID string
	var honest []string
	for i := range 3 {
		price, params := uint64(30), func(*Params) {}
		if i == 2 {
			price, params = 1, cheat // far the cheapest
		}
		_, id, _ := sw.startProvider(t, func(c *Config) { c.Market.PricePerCPUSecond = price }, params)
		if i == 2 {
			cheaterID = id
		} else {
			honest = append(honest, id)
		}
	}
	waitProviders(t, req.client, 3)
	waitProviders(t, observer.client, 3)

	ctx := context.Background()
	guest, err := os.ReadFile(guestModule(t))
	if err != nil {
		t.Fatal(err)
	}
	module := addFile(t, req.client, "guest.wasm", guest)
	price := map[string]any{"price": map[string]string{"max": "1000", "mint": mint}}
	var cheats []string
	var deadline time.Time
	for i := range reputation.MaxMismatches {
		input := addFile(t, req.client, "data.txt", []byte("paid replicas "+string(rune('a'+i))+"\n"))
		job, err := req.client.JobSubmit(ctx, replicated(module, input, 3, price))
		if err != nil {
			t.Fatal(err)
		}
		done := waitJob(t, req.client, job.ID, 2*time.Minute)
		if done.State != "succeeded" || verdicts(done)["mismatch"] != 1 {
			t.Fatalf("job %d: %s (%s), replicas %+v", i, done.State, done.Reason, done.Replicas)
		}
		for _, r := range done.Replicas {
			if r.Provider == cheaterID {
				cheats = append(cheats, r.ID)
				st, err := req.client.JobStatus(ctx, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				deadline = st.Escrows[0].Deadline
			}
		}
	}
	if len(cheats) != reputation.MaxMismatches {
		t.Fatalf("the cheater ran %d replicas, want %d", len(cheats), reputation.MaxMismatches)
	}
	// The cheater's escrows are refunded after their deadlines; then
	// their receipts are signed, with the cheater's acks, and published.
	ledger.warp(t, time.Until(deadline)+time.Second)
	for _, id := range cheats {
		waitEscrow(t, req.client, id, "refunded")
		waitReceipt(t, req.client, id)
	}
	own := waitReputation(t, req.client, cheaterID, func(r api.Reputation) bool { return r.Banned })
	if own.Mismatches != reputation.MaxMismatches || own.Score >= 0.5 {
		t.Errorf("the requester's view of the cheater: %+v", own)
	}
	heard := waitReputation(t, observer.client, cheaterID, func(r api.Reputation) bool { return r.Banned })
	if heard.Own != 0 || heard.Receipts != reputation.MaxMismatches || heard.Score >= 0.5 {
		t.Errorf("the observer's view of the cheater: %+v", heard)
	}
	for _, p := range honest {
		r := waitReputation(t, observer.client, p, func(r api.Reputation) bool { return r.Receipts > 0 })
		if r.Paid == 0 || r.Score <= 0.5 || r.Banned {
			t.Errorf("the observer's view of honest %s: %+v", p, r)
		}
	}

	// The observer's jobs go to honest providers, though the cheater
	// bids 30 times cheaper.
	omodule := addFile(t, observer.client, "guest.wasm", guest)
	for i := range 2 {
		input := addFile(t, observer.client, "data.txt", []byte("observer "+string(rune('a'+i))+"\n"))
		job, err := observer.client.JobSubmit(ctx, spec(omodule, input, price))
		if err != nil {
			t.Fatal(err)
		}
		done := waitJob(t, observer.client, job.ID, time.Minute)
		if done.State != "succeeded" || done.Provider == cheaterID {
			t.Errorf("observer's job %d: %s on %s (the cheater is %s)", i, done.State, done.Provider, cheaterID)
		}
	}
}
