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

// TestPaidCalls: calls to a priced service are paid from one budget the
// caller locks with the provider, a voucher a call; when the deployment
// ends, the provider settles once and is paid exactly the calls it
// answered, and the rest of the budget goes back to the caller.
func TestPaidCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	t.Run("in-memory ledger", func(t *testing.T) { testPaidCalls(t, memLedger{memledger.New()}) })
	t.Run("local Solana ledger", func(t *testing.T) { testPaidCalls(t, newSolLedger(t)) })
}

func testPaidCalls(t *testing.T, ledger testLedger) {
	const price, calls = 5, 40
	const funds = 100_000
	m := startPaidMarket(t, ledger, funds, func(c *Config) {
		c.Market.PricePerCall = price
		metricsConfig(c)
	})
	req, reqAddr, prov, provAddr := m.req, m.reqAddr, m.prov, m.provAddr

	ctx := context.Background()
	w := classifierWeights(t)
	model, err := req.client.AddReader(ctx, "model.safetensors", bytes.NewReader(w), int64(len(w)), api.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	job, err := req.client.JobSubmit(ctx, []byte(fmt.Sprintf(`{"kind":"serve","serve":{"model":%q,"service":"digits"},"limits":{"wall_seconds":300}}`, model.CID)))
	if err != nil {
		t.Fatal(err)
	}
	if st := waitRunning(t, req.client, job.ID); st.Provider != prov.Host().ID().String() {
		t.Fatalf("served by %s", st.Provider)
	}
	// The first call opens the budget, once the service record is out.
	call := func() (api.InferCallResult, error) {
		return req.client.InferCall(ctx, api.InferCallParams{Service: "digits", Examples: [][]float32{{1, -1}}})
	}
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := call()
		if err == nil {
			if r.Paid != price {
				t.Fatalf("the first call paid %d, want %d", r.Paid, price)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the priced service never answered: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := 2; i <= calls; i++ {
		r, err := call()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if r.Paid != uint64(i)*price || r.Outputs[0][1] < 0.9 {
			t.Fatalf("call %d: paid %d, outputs %v", i, r.Paid, r.Outputs)
		}
	}
	// The budget is locked: the caller's funds went into it.
	if got := ledger.balance(t, reqAddr); got != funds-1000*price {
		t.Errorf("the caller holds %d while its budget is open, want %d", got, funds-1000*price)
	}
	// The provider's stats show the deployment and the budget's calls.
	ps, err := prov.client.InferStats(ctx)
	if err != nil || len(ps.Served) != 1 || ps.Served[0].Calls != calls || ps.Served[0].PricePerCall != price || ps.Served[0].MeanLatencyMS <= 0 ||
		len(ps.Budgets) != 1 || ps.Budgets[0].Role != "provider" || ps.Budgets[0].Calls != calls || ps.Budgets[0].State != "open" {
		t.Errorf("the provider's infer.stats: %+v, %v", ps, err)
	}
	// Undeploying ends the service: the provider settles at once.
	if _, err := req.client.JobCancel(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	poll(t, time.Minute, "the provider to be paid for the calls", func() bool { return ledger.balance(t, provAddr) == calls*price })
	if got := ledger.balance(t, reqAddr); got != funds-calls*price {
		t.Errorf("the caller holds %d after the settlement, want %d", got, funds-calls*price)
	}
	cs, err := req.client.InferStats(ctx)
	if err != nil || len(cs.Budgets) != 1 || cs.Budgets[0].Role != "caller" || cs.Budgets[0].Calls != calls || cs.Budgets[0].Promised != calls*price {
		t.Errorf("the caller's infer.stats: %+v, %v", cs, err)
	}
	poll(t, 30*time.Second, "the provider's budget to read settled", func() bool {
		ps, err := prov.client.InferStats(ctx)
		return err == nil && len(ps.Budgets) == 1 && ps.Budgets[0].State == "settled" && ps.Budgets[0].Earned == calls*price && ps.Budgets[0].Tx != ""
	})
	pm := scrape(t, prov)
	if pm["cyxwiz_serving_earned_total"] != calls*price || pm[`cyxwiz_serving_budgets{role="provider"}`] != 0 || pm[`cyxwiz_serving_calls_total{result="payment"}`] < 1 {
		t.Errorf("the provider's metrics: earned %v, open budgets %v, calls refused for payment %v", pm["cyxwiz_serving_earned_total"],
			pm[`cyxwiz_serving_budgets{role="provider"}`], pm[`cyxwiz_serving_calls_total{result="payment"}`])
	}
}
