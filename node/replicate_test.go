package node

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/reputation"
	"github.com/cyxwiz/cyxwiz/settlement/memledger"
)

// cheater is an executor that runs the job, then alters every file it
// wrote to /out: a provider that returns wrong results. Only these tests
// build one.
type cheater struct{ compute.Executor }

func (c cheater) Run(ctx context.Context, job compute.Job) (compute.Outcome, error) {
	out, err := c.Executor.Run(ctx, job)
	if err != nil {
		return out, err
	}
	filepath.WalkDir(job.OutDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0); err == nil {
				f.WriteString("not what was computed\n")
				f.Close()
			}
		}
		return nil
	})
	return out, nil
}

func cheat(p *Params) {
	p.wrapExecutor = func(e compute.Executor) compute.Executor { return cheater{e} }
}

// replicated is the test spec with verification by n replicas.
func replicated(module, input string, n int, extra map[string]any) []byte {
	m := map[string]any{"verification": map[string]any{"mode": "replicate", "replicas": n}}
	for k, v := range extra {
		m[k] = v
	}
	return spec(module, input, m)
}

// verdicts counts a replicated job's replicas by verdict.
func verdicts(info api.JobInfo) map[string]int {
	out := map[string]int{}
	for _, r := range info.Replicas {
		out[r.Verdict]++
	}
	return out
}

// Honest replicas always agree; a cheating provider is caught in every
// replicated job it takes part in, and its receipt says mismatch.
func TestReplicatedJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	nodes := swarm(t, 4)
	req := nodes[0].client
	ctx := context.Background()
	guest, err := os.ReadFile(guestModule(t))
	if err != nil {
		t.Fatal(err)
	}
	module := addFile(t, req, "guest.wasm", guest)
	waitProviders(t, req, 3)

	// Many small honest jobs: no mismatch.
	const honest = 8
	var wg sync.WaitGroup
	infos := make([]api.JobInfo, honest)
	for i := range honest {
		input := addFile(t, req, "data.txt", []byte(strings.Repeat("replica ", i+1)))
		n := 2 + i%2
		job, err := req.JobSubmit(ctx, replicated(module, input, n, nil))
		if err != nil {
			t.Fatal(err)
		}
		if len(job.Replicas) != n {
			t.Fatalf("job.submit shows %d replicas, want %d", len(job.Replicas), n)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			infos[i] = waitJob(t, req, job.ID, 2*time.Minute)
		}()
	}
	wg.Wait()
	for i, info := range infos {
		n := 2 + i%2
		if info.State != "succeeded" || len(info.Replicas) != n || verdicts(info)["agree"] != n || info.Result == nil {
			t.Errorf("honest job %d: %s (%s), replicas %+v", i, info.State, info.Reason, info.Replicas)
			continue
		}
		seen := map[string]bool{}
		for _, r := range info.Replicas {
			if seen[r.Provider] {
				t.Errorf("honest job %d: provider %s ran two replicas", i, r.Provider)
			}
			seen[r.Provider] = true
		}
	}
	list, err := req.JobList(ctx)
	if err != nil || len(list) != honest {
		t.Errorf("job.list shows %d jobs, want the %d replicated ones: %v", len(list), honest, err)
	}

	// A cheater joins. With one replica per provider it takes part in
	// every job, and is caught in every one, until its mismatches ban it
	// from this requester's auctions.
	info, err := nodes[0].client.NodeInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ccfg := testConfig()
	ccfg.Swarm.Bootstrap = info.Addresses
	cheatNode := startNodeEdit(t, ccfg, 0, cheat)
	cinfo, err := cheatNode.client.NodeInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitProviders(t, req, 4)
	for i := range reputation.MaxMismatches {
		input := addFile(t, req, "data.txt", []byte(strings.Repeat("cheat ", i+1)))
		job, err := req.JobSubmit(ctx, replicated(module, input, 4, nil))
		if err != nil {
			t.Fatal(err)
		}
		done := waitJob(t, req, job.ID, 2*time.Minute)
		if done.State != "succeeded" || verdicts(done)["agree"] != 3 || verdicts(done)["mismatch"] != 1 {
			t.Fatalf("job with a cheater: %s (%s), replicas %+v", done.State, done.Reason, done.Replicas)
		}
		for _, r := range done.Replicas {
			if (r.Verdict == "mismatch") != (r.Provider == cinfo.ID) {
				t.Errorf("replica on %s: verdict %s (the cheater is %s)", r.Provider, r.Verdict, cinfo.ID)
			}
			if r.Verdict != "mismatch" {
				continue
			}
			rc, receipt := waitReceipt(t, req, r.ID)
			if receipt.Outcome != market.OutcomeMismatch || receipt.Fault != market.FaultProvider || rc.Countersigned || rc.Refusal == "" ||
				len(receipt.Outputs) == 0 {
				t.Errorf("cheater's receipt %+v: %+v", rc, receipt)
			}
		}
	}
}

// On a ledger: the agreeing replicas are paid, the cheater's escrow is
// refunded.
func TestReplicatedPaidJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	t.Run("in-memory ledger", func(t *testing.T) { testReplicatedPaid(t, memLedger{memledger.New()}) })
	t.Run("local Solana ledger", func(t *testing.T) { testReplicatedPaid(t, newSolLedger(t)) })
}

func testReplicatedPaid(t *testing.T, ledger testLedger) {
	mint := ledger.mint()
	const funds = 100_000
	sw := startPaidSwarm(t, ledger, funds)
	req, reqAddr := sw.req, sw.reqAddr
	addrs := map[string]string{} // peer ID -> ledger address
	var cheaterID string
	for i := range 3 {
		var params func(*Params)
		if i == 2 {
			params = cheat
		}
		_, id, addr := sw.startProvider(t, func(c *Config) { c.Market.PricePerCPUSecond = 10 }, params)
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
	input := addFile(t, req.client, "data.txt", []byte("paid replicas\n"))
	price := map[string]any{"price": map[string]string{"max": "1000", "mint": mint}}
	job, err := req.client.JobSubmit(ctx, replicated(module, input, 3, price))
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, req.client, job.ID, 2*time.Minute)
	if done.State != "succeeded" || verdicts(done)["agree"] != 2 || verdicts(done)["mismatch"] != 1 {
		t.Fatalf("job: %s (%s), replicas %+v", done.State, done.Reason, done.Replicas)
	}
	var paid uint64
	var cheat api.JobReplica
	for _, r := range done.Replicas {
		if r.Provider == cheaterID {
			cheat = r
			continue
		}
		info := waitEscrow(t, req.client, r.ID, "released")
		paid += info.Escrows[0].Amount
		if got := ledger.balance(t, addrs[r.Provider]); got != info.Escrows[0].Amount {
			t.Errorf("honest provider holds %d, want %d", got, info.Escrows[0].Amount)
		}
	}
	if cheat.Verdict != "mismatch" || cheat.Escrow == nil {
		t.Fatalf("cheater's replica %+v", cheat)
	}
	// The cheater's escrow is not released: it is refunded once its
	// deadline has passed by the ledger's clock.
	st, err := req.client.JobStatus(ctx, cheat.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Escrows[0].State != "locked" {
		t.Errorf("cheater's escrow is %s before its deadline, want locked", st.Escrows[0].State)
	}
	ledger.warp(t, time.Until(st.Escrows[0].Deadline)+time.Second)
	refunded := waitEscrow(t, req.client, cheat.ID, "refunded")
	if got := ledger.balance(t, addrs[cheaterID]); got != 0 {
		t.Errorf("the cheater holds %d, want 0", got)
	}
	if got := ledger.balance(t, reqAddr); got != funds-paid {
		t.Errorf("requester holds %d, want %d", got, funds-paid)
	}
	_, receipt := waitReceipt(t, req.client, cheat.ID)
	if receipt.Outcome != market.OutcomeMismatch || receipt.Escrow == nil || receipt.Escrow.State != "refunded" ||
		receipt.Escrow.Tx != refunded.Escrows[0].Tx {
		t.Errorf("cheater's receipt %+v (%+v)", receipt, receipt.Escrow)
	}
}
