//go:build cuda

package cuda

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/trainspec"
)

// A whole training run on the GPU agrees with the same run on the CPU:
// same seed, same data, every layer kind; only GEMM's summation order
// differs, so the weights and losses agree within a tolerance.
func TestTrainingParity(t *testing.T) {
	data := t.TempDir()
	// 12×12 images whose class is the quadrant holding a bright blob.
	rng := rand.New(rand.NewPCG(3, 4))
	var buf bytes.Buffer
	for range 600 {
		class := rng.IntN(4)
		cy, cx := 3+6*(class/2), 3+6*(class%2)
		for y := range 12 {
			for x := range 12 {
				v := 0.1 * rng.Float64()
				if dy, dx := y-cy, x-cx; dy*dy+dx*dx <= 4 {
					v += 1
				}
				fmt.Fprintf(&buf, "%.4f,", v)
			}
		}
		fmt.Fprintf(&buf, "%d\n", class)
	}
	if err := os.WriteFile(filepath.Join(data, "blobs.csv"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	s := trainspec.Spec{
		Model: trainspec.Model{Input: []int{12, 12, 1}, Layers: []trainspec.Layer{
			{Type: "conv2d", Filters: 6, Kernel: 3, Padding: 1}, {Type: "relu"}, {Type: "maxpool"},
			{Type: "conv2d", Filters: 8, Kernel: 3}, {Type: "tanh"}, {Type: "flatten"},
			{Type: "dropout", Rate: 0.2}, {Type: "dense", Units: 16}, {Type: "sigmoid"},
			{Type: "dense", Units: 4}, {Type: "softmax"}}},
		Loss:      trainspec.LossCrossEntropy,
		Optimizer: trainspec.Optimizer{Type: trainspec.OptimizerAdam, LearningRate: 0.01},
		BatchSize: 32, Epochs: 3, Seed: 9, LogSteps: 5,
		Dataset: trainspec.Dataset{CID: "bafkqaaa", Format: trainspec.DatasetCSV, TrainFile: "blobs.csv"},
	}
	s.Normalize()
	if err := s.Validate(func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	run := func(b train.Backend) (train.Result, []train.NamedTensor) {
		out := t.TempDir()
		res, err := train.Run(context.Background(), train.Params{Spec: s, DataDir: data, OutDir: out, Backend: b})
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		f, err := os.Open(filepath.Join(out, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ts, _, err := train.ReadSafetensors(f)
		if err != nil {
			t.Fatal(err)
		}
		return res, ts
	}
	cpuRes, cpuW := run(train.NewCPU())
	gpuRes, gpuW := run(newBackend(t))
	t.Logf("cpu %v", cpuRes.Final)
	t.Logf("gpu %v", gpuRes.Final)
	for _, k := range []string{"loss", "eval_loss", "accuracy", "eval_accuracy"} {
		if d := math.Abs(cpuRes.Final[k] - gpuRes.Final[k]); d > 1e-3+1e-3*math.Abs(cpuRes.Final[k]) {
			t.Errorf("%s: cpu %g, gpu %g", k, cpuRes.Final[k], gpuRes.Final[k])
		}
	}
	if cpuRes.Final["eval_accuracy"] < 0.9 {
		t.Errorf("the model did not learn: %v", cpuRes.Final)
	}
	var worst float64
	for i := range cpuW {
		for j, v := range cpuW[i].Data {
			worst = max(worst, math.Abs(float64(v-gpuW[i].Data[j]))/(1e-3+math.Abs(float64(v))))
		}
	}
	t.Logf("largest relative weight difference: %.2g", worst)
	if worst > 1e-2 {
		t.Errorf("weights differ by up to %.2g (relative)", worst)
	}
}
