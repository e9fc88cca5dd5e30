package train

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/trainspec"
)

// gpuWorkerEnv makes this test binary act as a GPU worker (on the CPU
// backend), so the executor's GPU path runs for real without a GPU.
const gpuWorkerEnv = "CYXWIZ_TRAIN_TEST_WORKER"

func TestMain(m *testing.M) {
	ServeWorkerIfAsked()
	if os.Getenv(hogEnv) == "1" {
		serveHog()
	}
	if os.Getenv(gpuWorkerEnv) == "1" {
		os.Exit(ServeWorker(context.Background(), os.Args[1:], os.Stdout, os.Stderr,
			func(int) (Backend, error) { return NewCPU(), nil }))
	}
	os.Exit(m.Run())
}

func newTestExecutor(t *testing.T, cfg ExecutorConfig) *Executor {
	t.Helper()
	e, err := NewExecutor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// job prepares a train job's folders with the XOR dataset.
func job(t *testing.T, spec trainspec.Spec, gpus int) (compute.Job, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	data := filepath.Join(in, trainspec.DatasetDir)
	os.MkdirAll(data, 0o755)
	os.MkdirAll(out, 0o755)
	writeCSV(t, data, 300, 4)
	program, _ := json.Marshal(spec)
	var logs, metrics bytes.Buffer
	return compute.Job{ID: "j1", Program: program, InDir: in, OutDir: out, Wall: time.Minute, CPU: 1, MemoryMiB: 64,
		Stdout: &logs, Stderr: &logs, Metrics: &metrics, GPUs: gpus}, &logs, &metrics
}

func TestExecutorRunsOnCPUAndInWorker(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(gpuWorkerEnv, "1")
	spec := xorSpec(t)
	spec.Epochs = 4
	for _, gpus := range []int{0, 1} {
		ex := newTestExecutor(t, ExecutorConfig{Worker: self})
		j, logs, metrics := job(t, spec, gpus)
		out, err := ex.Run(context.Background(), j)
		if err != nil || !out.OK() {
			t.Fatalf("gpus=%d: Run = %+v, %v; log:\n%s", gpus, out, err, logs)
		}
		if out.Metrics["epochs"] != 4 || out.Metrics["eval_accuracy"] == 0 {
			t.Errorf("gpus=%d: final metrics %v", gpus, out.Metrics)
		}
		if n := strings.Count(metrics.String(), `"kind":"epoch"`); n != 4 {
			t.Errorf("gpus=%d: %d epoch reports streamed, want 4", gpus, n)
		}
		if !strings.Contains(logs.String(), "epoch 4 step") {
			t.Errorf("gpus=%d: no progress in the log:\n%s", gpus, logs)
		}
		if _, err := os.Stat(filepath.Join(j.OutDir, "model.safetensors")); err != nil {
			t.Errorf("gpus=%d: %v", gpus, err)
		}
	}
}

func TestExecutorFailures(t *testing.T) {
	self, _ := os.Executable()
	t.Setenv(gpuWorkerEnv, "1")
	bad := xorSpec(t)
	bad.Dataset.TrainFile = "nope.csv"
	for _, c := range []struct {
		name   string
		worker string
		spec   trainspec.Spec
		gpus   int
		reason string
	}{
		{"dataset on cpu", self, bad, 0, compute.ReasonBadInput},
		{"dataset in worker", self, bad, 1, compute.ReasonBadInput},
		{"worker crashes", "/bin/false", xorSpec(t), 1, compute.ReasonExit},
		{"worker missing", filepath.Join(t.TempDir(), "none"), xorSpec(t), 1, compute.ReasonExit},
	} {
		t.Run(c.name, func(t *testing.T) {
			j, logs, _ := job(t, c.spec, c.gpus)
			out, err := newTestExecutor(t, ExecutorConfig{Worker: c.worker}).Run(context.Background(), j)
			if err != nil || out.Reason != c.reason {
				t.Errorf("Run = %+v, %v, want reason %s; log:\n%s", out, err, c.reason, logs)
			}
		})
	}
	j, _, _ := job(t, xorSpec(t), 0)
	j.Program = []byte(`{"model":{"input":[2],"layers":[{"type":"softmax"},{"type":"relu"}]}}`)
	if out, _ := newTestExecutor(t, ExecutorConfig{}).Run(context.Background(), j); out.Reason != compute.ReasonBadProgram {
		t.Errorf("a bad graph: %+v, want %s", out, compute.ReasonBadProgram)
	}
}

func TestExecutorCancel(t *testing.T) {
	spec := xorSpec(t)
	spec.Epochs = 10000
	j, _, _ := job(t, spec, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	out, err := newTestExecutor(t, ExecutorConfig{}).Run(ctx, j)
	if err != nil || out.Reason != compute.ReasonWallTime && out.Reason != compute.ReasonCancelled {
		t.Errorf("Run = %+v, %v, want cancelled", out, err)
	}
}
