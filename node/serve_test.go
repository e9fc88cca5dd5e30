package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/cyxwiz/cyxwiz/serving"
)

// TestServeJob trains a model on a swarm, deploys it as a serve job and
// calls it from the requester: the answers are those of the same weights
// run in this process; a call of the wrong shape is refused naming the
// shape; once the job is cancelled, nothing answers.
func TestServeJob(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	nodes := swarmWith(t, 3, func(c *Config) { c.Metrics.Addr = "127.0.0.1:0" })
	req := nodes[0].client
	ctx := context.Background()
	data := addFile(t, req, "xor.csv", xorCSV(800))
	waitProviders(t, req, 2)
	trained, err := req.JobSubmit(ctx, trainSpec(data, `[{"type":"dense","units":16},{"type":"tanh"},{"type":"dense","units":2},{"type":"softmax"}]`, 0.02))
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, req, trained.ID, 2*time.Minute)
	if done.State != "succeeded" || done.Result == nil || done.Result.ModelCID == "" {
		t.Fatalf("train job: %+v", done)
	}
	var weights bytes.Buffer
	if _, err := req.Cat(ctx, done.Result.ModelCID, 0, -1, &weights, api.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	local, err := train.LoadModel(&weights, train.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}

	deploy, err := req.JobSubmit(ctx, []byte(fmt.Sprintf(`{"kind":"serve","serve":{"model":%q},"limits":{"wall_seconds":300}}`, done.Result.ModelCID)))
	if err != nil {
		t.Fatal(err)
	}
	example := func(i int) []float32 { return []float32{float32(i%9)/4 - 1, float32(i%7)/3 - 1} }
	// The provider serves once it has the weights.
	var first api.InferCallResult
	deadline := time.Now().Add(time.Minute)
	for {
		first, err = req.InferCall(ctx, api.InferCallParams{Service: deploy.ID, Examples: [][]float32{example(0)}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			st, _ := req.JobStatus(ctx, deploy.ID)
			t.Fatalf("the deployment never answered: %v (job %+v)", err, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, err := req.JobStatus(ctx, deploy.ID)
	if err != nil || st.State != "running" || first.Provider != st.Provider {
		t.Fatalf("deployment %+v, %v; answered by %s", st, err, first.Provider)
	}
	// The provider keeps a signed service record of the deployment in the
	// DHT: its model and what a call may hold.
	prov, err := peer.Decode(first.Provider)
	if err != nil {
		t.Fatal(err)
	}
	rec := waitServiceRecord(t, nodes[0].Host(), prov, deploy.ID)
	if rec.Model != done.Result.ModelCID || rec.InputSize != 2 || rec.OutputSize != 2 || rec.MaxExamples != 64 || rec.PricePerCall != 0 || len(rec.Addrs) == 0 {
		t.Errorf("service record %+v", rec)
	}
	for i := range 200 {
		xs := [][]float32{example(i), example(i + 3)}
		got, err := req.InferCall(ctx, api.InferCallParams{Service: deploy.ID, Examples: xs})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		want, err := local.Predict(xs)
		if err != nil {
			t.Fatal(err)
		}
		for r := range want {
			for c := range want[r] {
				if math.Abs(float64(got.Outputs[r][c]-want[r][c])) > 1e-5 {
					t.Fatalf("call %d row %d: served %v, in process %v", i, r, got.Outputs[r], want[r])
				}
			}
		}
	}
	// The provider counts what it answered.
	for _, n := range nodes[1:] {
		if n.Host().ID().String() != first.Provider {
			continue
		}
		m := scrape(t, n)
		if ok := m[`cyxwiz_serving_calls_total{result="ok"}`]; ok < 201 || m["cyxwiz_serving_examples_total"] < 401 || m["cyxwiz_serving_batches_total"] < 1 {
			t.Errorf("the provider's serving metrics: calls %v, examples %v, batches %v", ok, m["cyxwiz_serving_examples_total"], m["cyxwiz_serving_batches_total"])
		}
	}
	var ae *api.Error
	if _, err := req.InferCall(ctx, api.InferCallParams{Service: deploy.ID, Examples: [][]float32{{1, 2, 3}}}); !errors.As(err, &ae) ||
		ae.Code != api.CodeInvalidParams || !strings.Contains(ae.Message, "the model takes 2 = 2") {
		t.Errorf("a call of 3 values to a 2-input model: %v", err)
	}
	if _, err := req.InferCall(ctx, api.InferCallParams{Service: trained.ID, Examples: [][]float32{example(1)}}); !errors.As(err, &ae) ||
		!strings.Contains(ae.Message, "not a serve job") {
		t.Errorf("a call to a train job: %v", err)
	}

	if _, err := req.JobCancel(ctx, deploy.ID); err != nil {
		t.Fatal(err)
	}
	waitJob(t, req, deploy.ID, time.Minute)
	provider := first.Provider
	deadline = time.Now().Add(30 * time.Second)
	for {
		_, err := req.InferCall(ctx, api.InferCallParams{Service: deploy.ID, Provider: provider, Examples: [][]float32{example(1)}})
		if err != nil && strings.Contains(err.Error(), "no service") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the provider still answers a cancelled deployment: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// classifierWeights is a 2-input classifier written as a train job
// writes its weights: class 1 when x > y.
func classifierWeights(t *testing.T) []byte {
	t.Helper()
	var w bytes.Buffer
	if err := train.WriteSafetensors(&w, []train.NamedTensor{
		{Name: "layers.0.bias", Shape: []int{2}, Data: []float32{0, 0}},
		{Name: "layers.0.weight", Shape: []int{2, 2}, Data: []float32{-4, 4, 4, -4}},
	}, map[string]string{"format": train.ModelFormat, "loss_function": "cross_entropy",
		"model": `{"input":[2],"layers":[{"type":"dense","units":2},{"type":"softmax"}]}`}); err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}

// TestServeReplicasFailover deploys one service on two providers: calls
// by the service's name take turns among them, and when one provider
// goes, every call goes to the other.
func TestServeReplicasFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	// One slot each: a provider serving a replica does not bid for the next.
	nodes := swarmWith(t, 3, func(c *Config) { c.Market.MaxConcurrent = 1 })
	req := nodes[0].client
	ctx := context.Background()
	w := classifierWeights(t)
	model, err := req.AddReader(ctx, "model.safetensors", bytes.NewReader(w), int64(len(w)), api.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitProviders(t, req, 2)
	spec := []byte(fmt.Sprintf(`{"kind":"serve","serve":{"model":%q,"service":"digits"},"limits":{"wall_seconds":300}}`, model.CID))
	providers := map[string]bool{}
	for range 2 {
		j, err := req.JobSubmit(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		providers[waitRunning(t, req, j.ID).Provider] = true
	}
	if len(providers) != 2 {
		t.Fatalf("two replicas on %d provider(s)", len(providers))
	}
	call := func() (api.InferCallResult, error) {
		return req.InferCall(ctx, api.InferCallParams{Service: "digits", Examples: [][]float32{{1, -1}, {-1, 1}}})
	}
	answered := map[string]int{}
	deadline := time.Now().Add(time.Minute)
	for len(answered) < 2 {
		r, err := call()
		if err == nil {
			if r.Outputs[0][1] < 0.9 || r.Outputs[1][0] < 0.9 {
				t.Fatalf("outputs %v", r.Outputs)
			}
			answered[r.Provider]++
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls reached %v of the two replicas (last error %v)", answered, err)
		}
	}
	// Asked of both replicas at once, a call gets their agreed answer.
	both, err := req.InferCall(ctx, api.InferCallParams{Service: "digits", Examples: [][]float32{{1, -1}}, Replicas: 2})
	if err != nil || both.Replicas != 2 || len(both.Mismatched) != 0 || both.Outputs[0][1] < 0.9 {
		t.Fatalf("a call of 2 replicas: %+v, %v", both, err)
	}
	if _, err := req.InferCall(ctx, api.InferCallParams{Service: "digits", Examples: [][]float32{{1, -1}}, Replicas: 3}); err == nil ||
		!strings.Contains(err.Error(), "3 replicas asked, and 2 providers") {
		t.Errorf("a call of more replicas than providers: %v", err)
	}
	// The first provider goes away; the other answers every call.
	var gone string
	for _, n := range nodes[1:] {
		if id := n.Host().ID().String(); providers[id] && gone == "" {
			gone = id
			n.Close()
		}
	}
	for i := range 20 {
		r, err := call()
		if err != nil {
			t.Fatalf("call %d after a replica's provider went: %v", i, err)
		}
		if r.Provider == gone {
			t.Fatalf("call %d answered by the provider that went", i)
		}
	}
}

// TestServeImpostor: a peer that announces a deployment's service name in
// the DHT and answers with a model of its own (anyone can announce any
// name) never answers the calls of the node that deployed it: a node
// calls its own serve jobs' providers only.
func TestServeImpostor(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	nodes := swarm(t, 2)
	req := nodes[0].client
	ctx := context.Background()
	w := classifierWeights(t)
	model, err := req.AddReader(ctx, "model.safetensors", bytes.NewReader(w), int64(len(w)), api.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitProviders(t, req, 1)
	job, err := req.JobSubmit(ctx, []byte(fmt.Sprintf(`{"kind":"serve","serve":{"model":%q,"service":"digits"},"limits":{"wall_seconds":300}}`, model.CID)))
	if err != nil {
		t.Fatal(err)
	}

	// The impostor: a host of the swarm serving "digits" with weights that
	// always answer class 0, announced under the name.
	imp := p2ptest.NewHost(t, p2ptest.Config(), nil)
	if err := imp.Connect(ctx, peer.AddrInfo{ID: nodes[0].Host().ID(), Addrs: nodes[0].Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	var bad bytes.Buffer
	if err := train.WriteSafetensors(&bad, []train.NamedTensor{
		{Name: "layers.0.bias", Shape: []int{2}, Data: []float32{9, -9}},
		{Name: "layers.0.weight", Shape: []int{2, 2}, Data: []float32{0, 0, 0, 0}},
	}, map[string]string{"format": train.ModelFormat, "loss_function": "cross_entropy",
		"model": `{"input":[2],"layers":[{"type":"dense","units":2},{"type":"softmax"}]}`}); err != nil {
		t.Fatal(err)
	}
	fake, err := train.LoadModel(&bad, train.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := serving.NewServer(serving.Params{Host: imp, Key: imp.Peerstore().PrivKey(imp.ID()),
		Announce: func(ctx context.Context, name string) error {
			return imp.DHT.Provide(ctx, serving.ServiceKey(name), true)
		}})
	defer srv.Close()
	if err := srv.Serve("fake", "digits", fake); err != nil {
		t.Fatal(err)
	}
	// Once the requester's DHT names the impostor, calls go on to the
	// deployment's provider only.
	deadline := time.Now().Add(30 * time.Second)
	for {
		found := false
		lookup, cancel := context.WithTimeout(ctx, 2*time.Second)
		for info := range nodes[0].Host().DHT.FindProvidersAsync(lookup, serving.ServiceKey("digits"), 16) {
			found = found || info.ID == imp.ID()
		}
		cancel()
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the impostor's announcement never reached the requester's DHT")
		}
	}
	st := waitRunning(t, req, job.ID)
	answered := 0
	for range 200 {
		r, err := req.InferCall(ctx, api.InferCallParams{Service: "digits", Examples: [][]float32{{1, -1}}})
		if err != nil {
			time.Sleep(20 * time.Millisecond) // the provider may not serve yet
			continue
		}
		if r.Provider != st.Provider || r.Outputs[0][1] < 0.9 {
			t.Fatalf("a call answered by %s with %v; the deployment's provider is %s", r.Provider, r.Outputs, st.Provider)
		}
		if answered++; answered == 30 {
			break
		}
	}
	if answered < 30 {
		t.Fatalf("only %d calls answered", answered)
	}
}

// waitRunning waits for a job to run with a provider.
// waitServiceRecord waits for provider's service record of name in the DHT.
func waitServiceRecord(t *testing.T, h *p2p.Host, provider peer.ID, name string) market.ServiceRecord {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		rec, err := findServiceRecord(ctx, h, provider, name)
		cancel()
		if err == nil {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("no service record of %s on %s: %v", name, provider, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitRunning(t *testing.T, c *api.Client, id string) api.JobInfo {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := c.JobStatus(context.Background(), id)
		if err == nil && st.State == "running" && st.Provider != "" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never ran: %+v, %v", id, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
