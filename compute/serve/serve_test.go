package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/compute/computetest"
	"github.com/cyxwiz/cyxwiz/compute/serve"
	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/cyxwiz/cyxwiz/serving"
)

func weights(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := train.WriteSafetensors(&buf, []train.NamedTensor{
		{Name: "layers.0.bias", Shape: []int{2}, Data: []float32{0, 0}},
		{Name: "layers.0.weight", Shape: []int{2, 2}, Data: []float32{-4, 4, 4, -4}},
	}, map[string]string{"format": train.ModelFormat, "loss_function": "cross_entropy",
		"model": `{"input":[2],"layers":[{"type":"dense","units":2},{"type":"softmax"}]}`}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// servingRegistry hands serve jobs to a serving server, as a node does.
type servingRegistry struct{ *serving.Server }

func (r servingRegistry) Serve(id, name, _ string, m *train.Model) error {
	return r.Server.Serve(id, name, m)
}

func registry(t *testing.T) servingRegistry {
	t.Helper()
	h := p2ptest.MockNet(t, 1, 0)[0]
	srv := serving.NewServer(serving.Params{Host: h, Key: h.Peerstore().PrivKey(h.ID())})
	t.Cleanup(func() { srv.Close() })
	return servingRegistry{srv}
}

// TestConformance: the serve executor stages its weights as every
// executor stages its content, and fails a bad section or source.
func TestConformance(t *testing.T) {
	const cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
	computetest.RunStaging(t, serve.New(registry(t)), computetest.Staged{
		Spec:    json.RawMessage(`{"model":"` + cid + `","max_batch":8}`),
		Content: map[string]map[string][]byte{cid: {"": weights(t)}},
		Wall:    200 * time.Millisecond,
	}, "serving")
}

// TestServesUntilCancelled: while the job runs its model answers calls
// under the job's ID; a cancel stops it, and weights that are not a
// model fail the job as a bad program.
func TestServesUntilCancelled(t *testing.T) {
	reg := registry(t)
	exec := serve.New(reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan compute.Outcome, 1)
	job := compute.Job{ID: "dep1", Spec: json.RawMessage(`{"model":"x","max_batch":4}`), Program: weights(t), Wall: time.Hour}
	go func() {
		o, err := exec.Run(ctx, job)
		if err != nil {
			t.Error(err)
		}
		done <- o
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := reg.Stats("dep1"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the model was never served")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if o := <-done; o.OK() || o.Reason != compute.ReasonCancelled {
		t.Errorf("a cancelled deployment: %+v", o)
	}
	if _, ok := reg.Stats("dep1"); ok {
		t.Error("still served after the job ended")
	}
	job.Program = []byte("not weights")
	if o, err := exec.Run(context.Background(), job); err != nil || o.Reason != compute.ReasonBadProgram {
		t.Errorf("garbage weights: %+v, %v", o, err)
	}
}

// TestServeBounds: a model past the job's memory fails as memory before
// anything is built; a deployment whose award ends before its wall time
// ends successfully just before the award does; a second attempt of a
// deployment still served here fails without an engine error.
func TestServeBounds(t *testing.T) {
	reg := registry(t)
	exec := serve.New(reg)
	huge := compute.Job{ID: "huge", Spec: json.RawMessage(`{"model":"x","max_batch":1024}`), MemoryMiB: 1, Wall: time.Hour}
	var buf bytes.Buffer
	if err := train.WriteSafetensors(&buf, nil, map[string]string{"format": train.ModelFormat,
		"model": `{"input":[256,256,64],"layers":[{"type":"conv2d","filters":64,"kernel":3,"padding":1},{"type":"flatten"},{"type":"dense","units":2}]}`}); err != nil {
		t.Fatal(err)
	}
	huge.Program = buf.Bytes()
	if o, err := exec.Run(context.Background(), huge); err != nil || o.OK() {
		t.Errorf("a graph far past its memory with no weights: %+v, %v", o, err)
	}
	huge.Program = weights(t)
	huge.Spec = json.RawMessage(`{"model":"x","max_batch":1024}`)
	huge.MemoryMiB = 1
	// The 2-input model fits 1 MiB even in batches of 1024: it runs.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(5*time.Second+300*time.Millisecond))
	defer cancel()
	if o, err := exec.Run(ctx, huge); err != nil || !o.OK() {
		t.Errorf("a deployment whose award ends first: %+v, %v; want success before the deadline", o, err)
	}

	started := make(chan struct{})
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	first := compute.Job{ID: "dep", Spec: json.RawMessage(`{"model":"x"}`), Program: weights(t), Wall: time.Hour}
	go func() {
		close(started)
		exec.Run(ctx2, first)
	}()
	<-started
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := reg.Stats("dep"); ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if o, err := exec.Run(context.Background(), first); err != nil || o.OK() || o.ExitCode != 1 {
		t.Errorf("a second attempt while the first is served: %+v, %v", o, err)
	}
}
