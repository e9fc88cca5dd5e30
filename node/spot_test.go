package node

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/settlement/memledger"
)

// spotChecked is the test spec with spot checks at rate.
func spotChecked(module, input string, rate float64, extra map[string]any) []byte {
	m := map[string]any{"verification": map[string]any{"mode": "spot", "rate": rate}}
	for k, v := range extra {
		m[k] = v
	}
	return spec(module, input, m)
}

// A cheating provider among honest ones, on the in-memory ledger: every
// spot-checked job it takes part in catches it (a second provider, then a
// third to break the tie); it is not paid for those results and its
// receipts say mismatch. Honest providers are never marked mismatch, an
// unchecked job runs once, and no provider is told which jobs are
// checked. The share of jobs checked is TestDrawSpot's (package jobs).
func TestSpotChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	ledger := memLedger{memledger.New()}
	mint := ledger.mint()
	const funds = 100_000
	sw := startPaidSwarm(t, ledger, funds)
	req, reqAddr := sw.req, sw.reqAddr

	// The cheater is the cheapest: it wins the first award of the first
	// job, before its reputation tells against it.
	addrs := map[string]string{} // peer ID -> ledger address
	var cheaterID string
	var providers []*testNode
	for i := range 3 {
		price, params := uint64(10), func(*Params) {}
		if i == 2 {
			price, params = 1, cheat
		}
		n, id, addr := sw.startProvider(t, func(c *Config) { c.Market.PricePerCPUSecond = price }, params)
		providers = append(providers, n)
		addrs[id] = addr
		if i == 2 {
			cheaterID = id
		}
	}
	waitProviders(t, req.client, 3)

	ctx := context.Background()
	guest, err := os.ReadFile(guestModule(t))
	if err != nil {
		t.Fatal(err)
	}
	module := addFile(t, req.client, "guest.wasm", guest)
	price := map[string]any{"price": map[string]string{"max": "1000", "mint": mint}}

	// Every job of rate 1 is checked; those of rate 0.5 are checked or
	// not as drawn, and each must behave as its draw says.
	rates := []float64{1, 1, 1, 0.5, 0.5, 0.5}
	var paid uint64        // released to the honest and the unchecked
	var cheaterPaid uint64 // released to the cheater: unchecked jobs only
	var caught []api.JobReplica
	for i, rate := range rates {
		input := addFile(t, req.client, "data.txt", []byte(fmt.Sprintf("spot check %d\n", i)))
		job, err := req.client.JobSubmit(ctx, spotChecked(module, input, rate, price))
		if err != nil {
			t.Fatal(err)
		}
		done := waitJob(t, req.client, job.ID, 2*time.Minute)
		if done.Spot != "checked" && done.Spot != "unchecked" || rate == 1 && done.Spot != "checked" {
			t.Fatalf("job %d (rate %g): spot %q", i, rate, done.Spot)
		}
		if done.State != "succeeded" || done.Result == nil {
			t.Fatalf("job %d (%s): %s (%s), replicas %+v", i, done.Spot, done.State, done.Reason, done.Replicas)
		}
		v := verdicts(done)
		took := false
		for _, r := range done.Replicas {
			if r.Provider == cheaterID {
				took = true
			}
		}
		switch {
		case done.Spot == "unchecked":
			if len(done.Replicas) != 1 || v["unchecked"] != 1 {
				t.Errorf("unchecked job %d: replicas %+v", i, done.Replicas)
			}
		case took:
			// 1 vs 1, then the tie-breaker: the cheater is caught.
			if len(done.Replicas) != 3 || v["agree"] != 2 || v["mismatch"] != 1 {
				t.Errorf("checked job %d with the cheater: replicas %+v", i, done.Replicas)
			}
		default:
			if len(done.Replicas) != 2 || v["agree"] != 2 {
				t.Errorf("checked job %d of honest providers: replicas %+v", i, done.Replicas)
			}
		}
		for _, r := range done.Replicas {
			if (r.Verdict == "mismatch") != (done.Spot == "checked" && r.Provider == cheaterID) {
				t.Errorf("job %d: replica on %s: verdict %s (the cheater is %s)", i, r.Provider, r.Verdict, cheaterID)
			}
			if r.Verdict == "mismatch" {
				caught = append(caught, r)
				if r.Result == nil || done.Result.Outputs[0].CID == r.Result.Outputs[0].CID {
					t.Errorf("job %d took the cheater's result %+v", i, r.Result)
				}
				continue
			}
			info := waitEscrow(t, req.client, r.ID, "released")
			amount := info.Escrows[len(info.Escrows)-1].Amount
			paid += amount
			if r.Provider == cheaterID {
				cheaterPaid += amount
			}
		}
	}
	if len(caught) == 0 {
		t.Fatal("the cheater took part in no checked job")
	}
	t.Logf("the cheater was caught in %d of %d jobs", len(caught), len(rates))

	// The cheater's caught escrows are refunded once their deadlines have
	// passed by the ledger's clock, and their receipts say mismatch.
	var last time.Time
	for _, r := range caught {
		st, err := req.client.JobStatus(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Escrows[0].State != "locked" {
			t.Errorf("cheater's escrow is %s before its deadline, want locked", st.Escrows[0].State)
		}
		if d := st.Escrows[0].Deadline; d.After(last) {
			last = d
		}
	}
	ledger.warp(t, time.Until(last)+time.Second)
	for _, r := range caught {
		waitEscrow(t, req.client, r.ID, "refunded")
		_, receipt := waitReceipt(t, req.client, r.ID)
		if receipt.Outcome != market.OutcomeMismatch || receipt.Fault != market.FaultProvider || receipt.Escrow == nil ||
			receipt.Escrow.State != "refunded" {
			t.Errorf("cheater's receipt %+v (%+v)", receipt, receipt.Escrow)
		}
	}
	if got := ledger.balance(t, addrs[cheaterID]); got != cheaterPaid {
		t.Errorf("the cheater holds %d, want %d (its unchecked jobs only)", got, cheaterPaid)
	}
	if got := ledger.balance(t, reqAddr); got != funds-paid {
		t.Errorf("requester holds %d, want %d", got, funds-paid)
	}

	// Quietly: what each provider was given is a spec with no
	// verification, as for any job.
	for _, p := range providers {
		provided, err := p.jobs.Provided()
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range provided {
			if v := j.Spec.Verification; v == nil || *v != (market.Verification{Mode: market.VerifyNone}) {
				t.Errorf("provider got job %s with verification %+v", j.ID, v)
			}
		}
	}
}
