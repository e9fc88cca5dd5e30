package node

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/pgdb/pgtest"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
)

// poll calls f every 50 ms until it returns true, failing the test with
// what after timeout.
func poll(t *testing.T, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIndexer: an indexer keeps the swarm's history (the provider's
// capacity records, the job's announcement, its countersigned receipt,
// a published model record), serves it over indexer.* and the public
// explorer, refuses forged receipts, and keeps what it committed across
// a restart; on SQLite and on a real PostgreSQL server.
func TestIndexer(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	t.Run("sqlite", func(t *testing.T) { testIndexer(t, "", nil) })
	t.Run("postgres", func(t *testing.T) {
		pg := pgtest.StartServer(t)
		testIndexer(t, pg.DSN, pg)
	})
}

// testIndexer runs the indexer on database; with pg, it also stops the
// PostgreSQL server under a running indexer.
func testIndexer(t *testing.T, database string, pg *pgtest.Server) {
	icfg := testConfig()
	icfg.Role, icfg.Market.Provider = RoleIndexer, false
	icfg.Indexer.Database = database
	icfg.Indexer.CapacitySeconds = 1
	idir := newRepo(t, icfg)
	idx, stopIdx := runNode(t, idir, icfg)
	info, err := idx.client.NodeInfo(t.Context())
	if err != nil || info.Explorer == "" {
		t.Fatalf("node.info %+v, %v; want the explorer's address", info, err)
	}

	rcfg := testConfig()
	rcfg.Market.Provider = false
	rcfg.Swarm.Bootstrap = info.Addresses
	req := startNode(t, rcfg, 0)
	pcfg := testConfig()
	pcfg.Swarm.Bootstrap = info.Addresses
	prov := startNode(t, pcfg, 0)
	waitProviders(t, req.client, 1)
	provInfo, err := prov.client.NodeInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	guest, err := os.ReadFile(guestModule(t))
	if err != nil {
		t.Fatal(err)
	}
	module := addFile(t, req.client, "guest.wasm", guest)
	input := addFile(t, req.client, "data.txt", []byte("indexed work\n"))
	// The indexer's mesh on the receipts topic forms within a heartbeat.
	time.Sleep(1500 * time.Millisecond)
	job, err := req.client.JobSubmit(t.Context(), spec(module, input, nil))
	if err != nil {
		t.Fatal(err)
	}
	if done := waitJob(t, req.client, job.ID, time.Minute); done.State != "succeeded" {
		t.Fatalf("job: %+v", done)
	}
	rc, _ := waitReceipt(t, req.client, job.ID)
	if !rc.Countersigned {
		t.Fatalf("receipt %+v, want countersigned", rc)
	}

	ctx := t.Context()
	var detail indexdb.JobDetail
	poll(t, 30*time.Second, "the indexer to hold the job's announcement and receipt", func() bool {
		detail, err = idx.client.IndexerJob(ctx, job.ID)
		return err == nil && len(detail.Receipts) == 1 && len(detail.Announcements) >= 1
	})
	r := detail.Receipts[0]
	if r.ID != rc.ID || !r.Countersigned || r.Outcome != market.OutcomeSucceeded || r.Provider != provInfo.ID || detail.Outcome != market.OutcomeSucceeded {
		t.Errorf("indexed receipt %+v of job %+v, want the countersigned success of %s", r, detail.JobSummary, provInfo.ID)
	}
	var pd indexdb.ProviderDetail
	poll(t, 30*time.Second, "the indexer to hold the provider's capacity record", func() bool {
		pd, err = idx.client.IndexerProvider(ctx, provInfo.ID)
		return err == nil && pd.Records >= 1
	})
	if pd.Succeeded != 1 || pd.SuccessRate != 1 || pd.Latest.CPUCores < 1 {
		t.Errorf("provider %+v, want one success and its capacity", pd.ProviderSummary)
	}

	// A model record, published by the requester, is found by text.
	train, err := os.ReadFile("../examples/mnist/spec.json")
	if err != nil {
		t.Fatal(err)
	}
	train = []byte(strings.Replace(string(train), "../../.cache/mnist", input, 1))
	published, err := req.client.ModelPublish(ctx, api.ModelPublishParams{CID: input, Name: "mnist-mlp", Description: "A perceptron for handwritten digits",
		License: "MIT", Spec: train, Metrics: map[string]float64{"accuracy": 0.97}})
	if err != nil {
		t.Fatal(err)
	}
	if own, err := req.client.ModelList(ctx); err != nil || len(own) != 1 || own[0].ID != published.ID {
		t.Errorf("model.list = %+v, %v", own, err)
	}
	poll(t, 30*time.Second, "the indexer to hold the model record", func() bool {
		page, err := idx.client.IndexerModels(ctx, indexdb.ModelQuery{Text: "handwritten"})
		return err == nil && len(page.Items) == 1 && page.Items[0].ID == published.ID
	})
	if _, err := req.client.ModelPublish(ctx, api.ModelPublishParams{Name: "x", Job: job.ID}); err == nil || !strings.Contains(err.Error(), "train job") {
		t.Errorf("publishing a wasm job's result as a model: %v", err)
	}

	// A forged receipt sent on the topic by a stranger is refused.
	stranger := p2ptest.NewHost(t, p2ptest.Config(), nil)
	if err := stranger.Connect(ctx, p2ptest.AddrInfo(idx.Host())); err != nil {
		t.Fatal(err)
	}
	forgedID := "01JZZZZZZZZZZZZZZZZZZZZZZZ"
	now := time.Now().UTC()
	env, err := market.Seal(stranger.Peerstore().PrivKey(stranger.ID()), market.TypeReceipt, market.Receipt{
		JobID: forgedID, Attempt: 1, Requester: req.Host().ID().String(), Provider: provInfo.ID,
		Outcome: market.OutcomeFailed, Fault: market.FaultProvider, StartedAt: now, EndedAt: now, IssuedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := market.SignedReceipt{Receipt: env}.Marshal()
	topic, err := stranger.Topic(wire.ReceiptsTopic)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := topic.Publish(ctx, data); err != nil {
		t.Fatal(err)
	}

	// The explorer serves the same history in public.
	base := "http://" + info.Explorer
	get := func(path string) (int, http.Header, []byte) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, body
	}
	code, hdr, body := get("/v1/jobs/" + job.ID)
	var ex indexdb.JobDetail
	if code != http.StatusOK || json.Unmarshal(body, &ex) != nil || len(ex.Receipts) != 1 || hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("GET /v1/jobs/%s = %d %s", job.ID, code, body)
	}
	if code, _, body := get("/v1/jobs?limit=100000"); code != http.StatusBadRequest || !strings.Contains(string(body), "limit") {
		t.Errorf("an oversized page = %d %s, want 400 naming the limit", code, body)
	}
	if resp, err := http.Post(base+"/v1/jobs", "application/json", strings.NewReader("{}")); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST to the explorer: %v %v", resp, err)
	}

	if pg != nil {
		// A database that goes down is an error on the explorer, soon,
		// and never a stalled swarm; once it is back, the indexer writes
		// what it held.
		pg.Stop()
		start := time.Now()
		if code, _, body := get("/v1/jobs"); code != http.StatusServiceUnavailable || time.Since(start) > 10*time.Second {
			t.Errorf("with the database down the explorer answered %d %s after %v, want 503 at once", code, body, time.Since(start))
		}
		job2, err := req.client.JobSubmit(ctx, spec(module, input, nil))
		if err != nil {
			t.Fatal(err)
		}
		if done := waitJob(t, req.client, job2.ID, time.Minute); done.State != "succeeded" {
			t.Fatalf("a job while the index is down: %+v", done)
		}
		waitReceipt(t, req.client, job2.ID)
		pg.Restart()
		poll(t, time.Minute, "the indexer to write what it held once the database is back", func() bool {
			d, err := idx.client.IndexerJob(ctx, job2.ID)
			return err == nil && len(d.Receipts) == 1
		})
	}

	// Restarted, the indexer still has what it committed, and never took
	// the forged receipt.
	time.Sleep(500 * time.Millisecond)
	stopIdx()
	idx, _ = runNode(t, idir, icfg)
	after, err := idx.client.IndexerJob(ctx, job.ID)
	if err != nil || len(after.Receipts) != 1 || after.Receipts[0].ID != rc.ID {
		t.Errorf("after a restart: %+v, %v", after, err)
	}
	var ae *api.Error
	if _, err := idx.client.IndexerJob(ctx, forgedID); !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Errorf("the forged receipt's job: %v, want not found", err)
	}
	st, err := idx.client.IndexerStats(ctx)
	wantReceipts := int64(1)
	if pg != nil {
		wantReceipts = 2
	}
	if err != nil || st.Receipts != wantReceipts || st.Models != 1 {
		t.Errorf("indexer.stats = %+v, %v; want one receipt and one model", st, err)
	}
	// A node that keeps no index says so.
	if _, err := req.client.IndexerStats(ctx); err == nil || !strings.Contains(err.Error(), "keeps no index") {
		t.Errorf("indexer.stats on a peer: %v", err)
	}
}
