package node

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	bolt "go.etcd.io/bbolt"
)

// lazy is an executor that runs nothing and reports a failure of the job
// itself: exit code 1. Only these tests build one.
type lazy struct{ compute.Executor }

func (lazy) Run(context.Context, compute.Job) (compute.Outcome, error) {
	return compute.Outcome{ExitCode: 1, Reason: compute.ReasonExit, Detail: "exit code 1"}, nil
}

// Attack: two providers that never run the job, each answering "exit
// code 1" on its own (no collusion needed: a failure has no outputs to
// guess), outvote the honest provider of a 3-replica job. The job fails
// "by majority" although a correct result was delivered, and the honest
// replica is the one given the mismatch verdict: not paid, blamed with
// fault provider in a published receipt.
func TestAttackLazyFailuresBlameHonestReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	nodes := swarm(t, 2) // requester, one honest provider
	req := nodes[0].client
	ctx := context.Background()
	rinfo, err := req.NodeInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hinfo, err := nodes[1].client.NodeInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lcfg := testConfig()
	lcfg.Swarm.Bootstrap = rinfo.Addresses
	for range 2 {
		startNodeEdit(t, lcfg, 0, func(p *Params) {
			p.wrapExecutor = func(e compute.Executor) compute.Executor { return lazy{e} }
		})
	}
	guest, err := os.ReadFile(guestModule(t))
	if err != nil {
		t.Fatal(err)
	}
	module := addFile(t, req, "guest.wasm", guest)
	input := addFile(t, req, "data.txt", []byte("honest work\n"))
	waitProviders(t, req, 3)
	job, err := req.JobSubmit(ctx, replicated(module, input, 3, nil))
	if err != nil {
		t.Fatal(err)
	}
	// The failures that printed nothing bring no vote: the one success
	// is no majority of 3, so the job looks for a fourth replica (there is
	// no other independent provider here) rather than deciding on the
	// lazy ones' word. Nobody is judged until then.
	var done api.JobInfo
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		done, err = req.JobStatus(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if done.State == "failed" || done.State == "succeeded" || len(done.Replicas) > 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, r := range done.Replicas {
		if r.Verdict == "mismatch" || (r.Provider != hinfo.ID && r.Verdict == "agree") {
			t.Errorf("replica of %s judged %s; job %s (%s); replicas %+v", r.Provider, r.Verdict, done.State, done.Reason, done.Replicas)
		}
	}
	if done.State == "failed" && strings.Contains(done.Reason, "agree") && !strings.Contains(done.Reason, "no majority") {
		t.Errorf("job %s (%s): a correct result was delivered, but two replicas that ran nothing decided it", done.State, done.Reason)
	}
	if len(done.Replicas) <= 3 && done.State != "succeeded" {
		t.Errorf("job %s with %d replicas: neither decided nor looking for another replica", done.State, len(done.Replicas))
	}
	if _, err := req.JobCancel(ctx, job.ID); err != nil && !strings.Contains(err.Error(), "final") {
		t.Logf("cancel: %v", err)
	}
}

// Restart at the worst moment: addReplica stores a tie-breaker replica
// and then, in a second write, the parent that names it
// (jobs/replicate.go addReplica). A crash between the two leaves a
// replica whose parent does not name it. On the next start resume()
// starts every unfinished job, this orphan too: it is auctioned and
// awarded (and on a ledger its escrow locked), its result is never
// compared, so its verdict stays "" forever; settleOne then neither
// releases nor refunds that escrow (settleloop.go: succeeded replica
// with no verdict waits), and its receipt is never signed.
//
// The test makes that state directly: a replicated job that decided,
// and next to it a stored replica of it that it does not name.
func TestAttackOrphanReplicaRunsAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	reqCfg := testConfig()
	reqCfg.Market.Provider = false
	reqDir := newRepo(t, reqCfg)
	reqNode, stopReq := runNode(t, reqDir, reqCfg)
	info, err := reqNode.client.NodeInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reqCfg.Swarm.Listen = []string{info.Addresses[0][:strings.Index(info.Addresses[0], "/p2p/")]}
	pcfg := testConfig()
	pcfg.Swarm.Bootstrap = info.Addresses
	for range 2 {
		startNode(t, pcfg, 0)
	}
	c := reqNode.client
	ctx := context.Background()
	guest, err := os.ReadFile(guestModule(t))
	if err != nil {
		t.Fatal(err)
	}
	module := addFile(t, c, "guest.wasm", guest)
	input := addFile(t, c, "data.txt", []byte("orphan\n"))
	waitProviders(t, c, 2)
	job, err := c.JobSubmit(ctx, replicated(module, input, 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	if done := waitJob(t, c, job.ID, 60*time.Second); done.State != "succeeded" {
		t.Fatalf("replicated job: %s (%s)", done.State, done.Reason)
	}
	stopReq()

	// What a crash inside addReplica leaves: the new replica stored, the
	// parent not yet naming it.
	db, err := bolt.Open(filepath.Join(reqDir, JobsFile), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const orphanID = "0000000000ORPHANREPL1CA000"
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(jobs.RoleRequester))
		var parent jobs.Job
		if err := json.Unmarshal(b.Get([]byte(job.ID)), &parent); err != nil {
			return err
		}
		spec := parent.Spec
		spec.Verification = &market.Verification{Mode: market.VerifyNone}
		now := time.Now().UTC()
		o := jobs.Job{ID: orphanID, Role: jobs.RoleRequester, State: market.StateSubmitted, Spec: spec,
			Requester: parent.Requester, Parent: parent.ID, CreatedAt: now, UpdatedAt: now,
			Events: []jobs.Event{{Time: now, State: market.StateSubmitted, Detail: "replica of " + parent.ID}}}
		data, err := json.Marshal(o)
		if err != nil {
			return err
		}
		return b.Put([]byte(orphanID), data)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	reqNode, _ = runNode(t, reqDir, reqCfg)
	c = reqNode.client
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		o, err := c.JobStatus(ctx, orphanID)
		if err != nil {
			t.Fatal(err)
		}
		if o.Provider != "" || o.State == "succeeded" {
			parent, _ := c.JobStatus(ctx, job.ID)
			t.Fatalf("after a restart, a replica its replicated job (%s, %d replicas) does not name was auctioned and given to %s (now %s): "+
				"its result is never compared, so it never gets a verdict and a paid escrow of it would never be released nor refunded",
				parent.State, len(parent.Replicas), o.Provider, o.State)
		}
		if o.State == "cancelled" || o.State == "failed" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
