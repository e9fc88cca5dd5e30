package train

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/trainspec"
)

// countingBackend counts the bytes of the tensors a network allocates.
type countingBackend struct {
	Backend
	bytes int64
}

func (c *countingBackend) New(n int) Tensor {
	c.bytes += 4 * int64(n)
	return c.Backend.New(n)
}

func mustSpec(t *testing.T, model string, batch int) trainspec.Spec {
	t.Helper()
	var s trainspec.Spec
	raw := `{"model":` + model + `,"loss":"cross_entropy","optimizer":{"type":"adam","learning_rate":0.001},
		"epochs":1,"dataset":{"cid":"bafkqaaa","format":"idx",
		"train_images":"train-images-idx3-ubyte.gz","train_labels":"train-labels-idx1-ubyte.gz"}}`
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatal(err)
	}
	s.BatchSize = batch
	s.Normalize()
	return s
}

var estimateModels = map[string]string{
	"mlp": `{"input":[784],"layers":[{"type":"dense","units":256},{"type":"relu"},{"type":"dropout","rate":0.2},
		{"type":"dense","units":10},{"type":"softmax"}]}`,
	"cnn": `{"input":[28,28,1],"layers":[{"type":"conv2d","filters":8,"kernel":3,"padding":1},{"type":"relu"},
		{"type":"maxpool"},{"type":"conv2d","filters":16,"kernel":5,"stride":2},{"type":"tanh"},{"type":"flatten"},
		{"type":"dense","units":32},{"type":"sigmoid"},{"type":"dense","units":10},{"type":"softmax"}]}`,
}

// TestEstimateMatchesAllocations pins the estimate to the trainer: the
// tensors a network and a run allocate on the backend are the estimate's
// parameters (without their copy), gradients, optimizer state and
// activations (without the host's own buffers).
func TestEstimateMatchesAllocations(t *testing.T) {
	for name, model := range estimateModels {
		for _, batch := range []int{1, 32, 200} {
			spec := mustSpec(t, model, batch)
			est, err := spec.EstimateMemory(trainspec.DatasetSize{Examples: 100000, Features: 784})
			if err != nil {
				t.Fatal(err)
			}
			cb := &countingBackend{Backend: NewCPU()}
			net, err := buildNetwork(cb, spec.Model, batch, 1)
			if err != nil {
				t.Fatal(err)
			}
			cb.New(batch * net.in)  // the run's input batch
			cb.New(batch * net.out) // and its output gradient
			host := 4 * int64(batch) * int64(net.in+2*net.out)
			want := est.Parameters/2 + est.Gradients + est.Optimizer + est.Activations - host
			if cb.bytes != want {
				t.Errorf("%s, batch %d: the backend allocates %d bytes, the estimate says %d", name, batch, cb.bytes, want)
			}
		}
	}
}

// writeIDX writes a gzip'd IDX pair of n random 28×28 images.
func writeIDX(t *testing.T, dir string, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	write := func(name string, dims []uint32, data []byte) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		zw := gzip.NewWriter(f)
		zw.Write([]byte{0, 0, 8, byte(len(dims))})
		binary.Write(zw, binary.BigEndian, dims)
		zw.Write(data)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	pix := make([]byte, n*784)
	for i := range pix {
		pix[i] = byte(rng.IntN(256))
	}
	labels := make([]byte, n)
	for i := range labels {
		labels[i] = byte(rng.IntN(10))
	}
	write("train-images-idx3-ubyte.gz", []uint32{uint32(n), 28, 28}, pix)
	write("train-labels-idx1-ubyte.gz", []uint32{uint32(n)}, labels)
}

// memoryJob prepares a train job on n random MNIST-shaped examples.
func memoryJob(t *testing.T, spec trainspec.Spec, n, memoryMiB int) compute.Job {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	data := filepath.Join(in, trainspec.DatasetDir)
	os.MkdirAll(data, 0o755)
	os.MkdirAll(out, 0o755)
	writeIDX(t, data, n)
	program, _ := json.Marshal(spec)
	return compute.Job{ID: t.Name(), Program: program, InDir: in, OutDir: out, Wall: 2 * time.Minute,
		CPU: 1, MemoryMiB: memoryMiB, Stdout: &strings.Builder{}}
}

// TestEstimateBoundsARun: a job given just the memory its estimate asks
// for trains to the end in its worker: the estimate, with the trainer's
// allowance, bounds what a run really uses.
func TestEstimateBoundsARun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two models")
	}
	if raceEnabled {
		t.Skip("the race detector's memory is not the trainer's: make test runs this test without it too")
	}
	const examples = 3000
	for name, model := range estimateModels {
		t.Run(name, func(t *testing.T) {
			spec := mustSpec(t, model, 128)
			est, err := spec.EstimateMemory(trainspec.DatasetSize{Examples: examples, Features: 784})
			if err != nil {
				t.Fatal(err)
			}
			mib := int(est.Total()>>20) + 1
			j := memoryJob(t, spec, examples, mib)
			out, err := newTestExecutor(t, ExecutorConfig{}).Run(context.Background(), j)
			if err != nil || !out.OK() {
				t.Fatalf("estimate %s, memory_mib %d: %+v, %v", est, mib, out, err)
			}
			t.Logf("estimate %s; the worker's peak %s", est, trainspec.FormatBytes(out.PeakMemory))
		})
	}
}

// TestMemoryRefusedBeforeStart: a dataset that needs more than the job's
// memory fails the job as memory, with the estimate, before any worker.
func TestMemoryRefusedBeforeStart(t *testing.T) {
	spec := mustSpec(t, estimateModels["mlp"], 32)
	j := memoryJob(t, spec, 20000, 64) // 20000 × 785 values: about 75 MiB decoded
	out, err := newTestExecutor(t, ExecutorConfig{CPUWorker: Worker{Path: "/bin/false"}}).Run(context.Background(), j)
	if err != nil || out.Reason != compute.ReasonMemory || !strings.Contains(out.Detail, "dataset") {
		t.Fatalf("Run = %+v, %v; want reason memory naming the dataset", out, err)
	}
}

// hogEnv makes this test binary a worker that allocates without end.
const hogEnv = "CYXWIZ_TRAIN_TEST_HOG"

func serveHog() {
	var keep [][]byte
	for range 1024 {
		b := make([]byte, 16<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
		time.Sleep(time.Millisecond)
	}
	os.Exit(len(keep) % 2)
}

// TestWorkerOverMemoryIsStopped: a worker that outgrows its limit (an
// estimate that was wrong) is stopped and the job fails as memory, while
// this process goes on.
func TestWorkerOverMemoryIsStopped(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec := mustSpec(t, estimateModels["mlp"], 32)
	j := memoryJob(t, spec, 100, 64)
	ex := newTestExecutor(t, ExecutorConfig{CPUWorker: Worker{Path: self, Env: []string{hogEnv + "=1"}}})
	out, err := ex.Run(context.Background(), j)
	if err != nil || out.Reason != compute.ReasonMemory {
		t.Fatalf("Run = %+v, %v; want reason memory", out, err)
	}
	if !strings.Contains(out.Detail, "more than its limit of 160 MiB") {
		t.Errorf("detail %q does not name the limit", out.Detail)
	}
}

// TestMeasureCSVQuotes: a quoted line end in a header does not hide the
// rows' width from the measure.
func TestMeasureCSVQuotes(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(strings.Repeat("h,", 200) + "\"a\nb\"\n")
	for range 50 {
		b.WriteString(strings.Repeat("1,", 200) + "0\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "d.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := MeasureDataset(dir, trainspec.Dataset{Format: trainspec.DatasetCSV, TrainFile: "d.csv", Header: true}, 0)
	if err != nil || got.Examples != 50 || got.Features != 200 {
		t.Fatalf("MeasureDataset = %+v, %v; want 50 examples of 200 features", got, err)
	}
}
