package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
)

// xorCSV is a dataset that only a nonlinear model learns: the label is 1
// where x and y have opposite signs.
func xorCSV(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	buf.WriteString("x,y,label\n")
	for range n {
		x, y := rng.Float64()*2-1, rng.Float64()*2-1
		label := 0
		if (x > 0) != (y > 0) {
			label = 1
		}
		fmt.Fprintf(&buf, "%.4f,%.4f,%d\n", x, y, label)
	}
	return buf.Bytes()
}

func trainSpec(dataset string, layers string, lr float64) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"kind":"train","train":{
		"model":{"input":[2],"layers":%s},
		"loss":"cross_entropy","optimizer":{"type":"adam","learning_rate":%g},
		"batch_size":16,"epochs":20,"seed":7,"log_steps":20,
		"dataset":{"cid":%q,"format":"csv","train_file":"xor.csv","header":true}},
		"limits":{"wall_seconds":120}}`, layers, lr, dataset))
}

func TestTrainJobEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	nodes := swarm(t, 3)
	req := nodes[0].client
	ctx := context.Background()
	data := addFile(t, req, "xor.csv", xorCSV(800))
	waitProviders(t, req, 2)

	// A graph whose shapes do not fit is refused at submit, naming the layer.
	var ae *api.Error
	_, err := req.JobSubmit(ctx, trainSpec(data, `[{"type":"conv2d","filters":4,"kernel":3},{"type":"dense","units":2}]`, 0.01))
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalidParams || !strings.Contains(err.Error(), "layers[0] (conv2d)") {
		t.Fatalf("bad graph: %v", err)
	}

	job, err := req.JobSubmit(ctx, trainSpec(data, `[{"type":"dense","units":16},{"type":"tanh"},{"type":"dense","units":2},{"type":"softmax"}]`, 0.02))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := req.SubscribeJob(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	live := 0
	timeout := time.After(2 * time.Minute)
watch:
	for {
		select {
		case raw := <-sub.Events():
			var n api.JobNotification
			json.Unmarshal(raw, &n)
			if n.Type == "log" && n.Stream == "metrics" && strings.Contains(n.Data, `"kind":"epoch"`) {
				live++
			}
			if n.Type == "event" && (n.State == "succeeded" || n.State == "failed") {
				break watch
			}
		case <-timeout:
			t.Fatal("no end of the job within 2 minutes")
		}
	}
	done := waitJob(t, req, job.ID, time.Minute)
	r := done.Result
	if done.State != "succeeded" || r == nil || r.ModelCID == "" || r.MetricsCID == "" {
		t.Fatalf("train job: %+v", done)
	}
	if r.Metrics["eval_accuracy"] < 0.85 || r.Metrics["epochs"] != 20 {
		t.Errorf("final metrics %v, want eval_accuracy >= 0.85 after 20 epochs", r.Metrics)
	}
	if live == 0 {
		t.Error("no epoch metrics arrived live over the subscription")
	}
	metrics, err := req.ContentCat(ctx, api.ContentCatParams{CID: r.MetricsCID})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(metrics.Data), `"kind":"epoch"`); n != 20 {
		t.Errorf("the metrics CID holds %d epoch lines, want 20", n)
	}
	logs, err := req.JobLogs(ctx, api.JobLogsParams{ID: job.ID})
	if err != nil || !strings.Contains(logs.Data, "epoch 20 step") || strings.Contains(logs.Data, `"kind"`) {
		t.Errorf("the log should hold progress lines and no JSON: %v\n%s", err, logs.Data)
	}

	// Its result goes into the model registry with one call: the weights,
	// the train section, the metrics and the job's receipt.
	rc, _ := waitReceipt(t, req, job.ID)
	model, err := req.ModelPublish(ctx, api.ModelPublishParams{Job: job.ID, Name: "xor", License: "MIT"})
	if err != nil {
		t.Fatal(err)
	}
	var env market.Envelope
	var rec market.ModelRecord
	if err := json.Unmarshal(model.Record, &env); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Open(market.TypeModel, &rec); err != nil {
		t.Fatal(err)
	}
	if model.WeightsCID != r.ModelCID || model.Receipt != rc.ID || model.Job != job.ID ||
		rec.Metrics["eval_accuracy"] != r.Metrics["eval_accuracy"] || len(rec.Spec.Model.Layers) != 4 {
		t.Errorf("published %+v (record %+v), want the job's weights, receipt %s, metrics and spec", model, rec, rc.ID)
	}

	// Divergence fails the job and keeps its metrics so far.
	var big bytes.Buffer
	big.WriteString("x,y,label\n")
	for i := range 200 {
		fmt.Fprintf(&big, "%d,1,%d\n", i, i*1000)
	}
	bigCID := addFile(t, req, "xor.csv", big.Bytes())
	diverging := strings.Replace(string(trainSpec(bigCID, `[{"type":"dense","units":1}]`, 1)),
		`"loss":"cross_entropy","optimizer":{"type":"adam","learning_rate":1}`,
		`"loss":"mse","optimizer":{"type":"sgd","learning_rate":10}`, 1)
	bad, err := req.JobSubmit(ctx, json.RawMessage(diverging))
	if err != nil {
		t.Fatal(err)
	}
	failed := waitJob(t, req, bad.ID, time.Minute)
	if failed.State != "failed" || failed.Result == nil || !strings.Contains(failed.Result.Reason, "diverged") ||
		failed.Result.MetricsCID == "" {
		t.Fatalf("a diverging job: %+v", failed)
	}
}
