package train

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// The gradients of every layer kind agree with finite differences of the
// loss, on a network that uses them all.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	for _, loss := range []string{trainspec.LossCrossEntropy, trainspec.LossMSE} {
		t.Run(loss, func(t *testing.T) {
			model := trainspec.Model{Input: []int{6, 6, 2}, Layers: []trainspec.Layer{
				{Type: "conv2d", Filters: 3, Kernel: 3, Stride: 1, Padding: 1}, {Type: "tanh"},
				{Type: "maxpool", Size: 2, Stride: 2},
				{Type: "conv2d", Filters: 2, Kernel: 2, Stride: 1}, {Type: "sigmoid"},
				{Type: "flatten"}, {Type: "dense", Units: 5}, {Type: "relu"}, {Type: "dense", Units: 4}, {Type: "softmax"}}}
			b := NewPureGo()
			const batch = 3
			net, err := buildNetwork(b, model, batch, 7)
			if err != nil {
				t.Fatal(err)
			}
			h := newHead(loss, true, batch, 4)
			rng := rand.New(rand.NewPCG(1, 2))
			xs := make([]float32, batch*net.in)
			for i := range xs {
				xs[i] = float32(rng.NormFloat64())
			}
			labels := []float32{0, 3, 1}
			idx := []int{0, 1, 2}
			x := b.New(len(xs))
			b.Write(x, xs)
			lossAt := func() float64 {
				out := make([]float32, batch*4)
				b.Read(out, net.forward(x, batch, false, 0))
				l, _ := h.lossGrad(out, labels, idx)
				return l
			}
			lossAt()
			dy := b.New(batch * 4)
			b.Write(dy, h.grad)
			net.backward(dy, batch)
			checked := 0
			for _, p := range net.params() {
				w, g := make([]float32, p.n), make([]float32, p.n)
				b.Read(w, p.w)
				b.Read(g, p.g)
				for i := 0; i < p.n; i += max(1, p.n/7) {
					const eps = 1e-2
					orig := w[i]
					w[i] = orig + eps
					b.Write(p.w, w)
					up := lossAt()
					w[i] = orig - eps
					b.Write(p.w, w)
					down := lossAt()
					w[i] = orig
					b.Write(p.w, w)
					num := (up - down) / (2 * eps)
					if diff := math.Abs(num - float64(g[i])); diff > 2e-3+0.05*math.Abs(num) {
						t.Errorf("%s[%d]: backprop %g, finite differences %g", p.name, i, g[i], num)
					}
					checked++
				}
			}
			if checked < 40 {
				t.Fatalf("checked only %d weights", checked)
			}
		})
	}
}

// writeCSV writes a dataset of n points in 2-D labelled by quadrant
// parity (XOR), which no linear model separates.
func writeCSV(t testing.TB, dir string, n int, seed uint64) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "xor.csv"), xorCSV(n, seed), 0o644); err != nil {
		t.Fatal(err)
	}
}

// xorCSV is n examples of XOR on noisy points, with a header.
func xorCSV(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 9))
	var buf bytes.Buffer
	buf.WriteString("x,y,label\n")
	for i := 0; i < n; i++ {
		x, y := rng.Float64()*2-1, rng.Float64()*2-1
		label := 0
		if (x > 0) != (y > 0) {
			label = 1
		}
		fmt.Fprintf(&buf, "%.5f,%.5f,%d\n", x, y, label)
	}
	return buf.Bytes()
}

// anyCID accepts every dataset CID: these tests never fetch a dataset.
func anyCID(string) error { return nil }

func xorSpec(t testing.TB) trainspec.Spec {
	t.Helper()
	s := trainspec.Spec{
		Model: trainspec.Model{Input: []int{2}, Layers: []trainspec.Layer{
			{Type: "dense", Units: 16}, {Type: "tanh"}, {Type: "dropout", Rate: 0.1}, {Type: "dense", Units: 2}}},
		Loss:      trainspec.LossCrossEntropy,
		Optimizer: trainspec.Optimizer{Type: trainspec.OptimizerSGD, LearningRate: 0.1, Momentum: 0.9},
		Schedule:  &trainspec.Schedule{Type: trainspec.ScheduleCosine, MinLearningRate: 0.01},
		BatchSize: 16, Epochs: 30, Seed: 3, LogSteps: 50, CheckpointEpochs: 10,
		Dataset: trainspec.Dataset{CID: "bafkqaaa", Format: trainspec.DatasetCSV, TrainFile: "xor.csv", Header: true},
	}
	s.Normalize()
	if err := s.Validate(anyCID); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTrainCSVLearnsXOR(t *testing.T) {
	data, out := t.TempDir(), t.TempDir()
	writeCSV(t, data, 1000, 1)
	var metrics bytes.Buffer
	res, err := Run(context.Background(), Params{Spec: xorSpec(t), DataDir: data, OutDir: out, Backend: NewCPU(), Metrics: &metrics})
	if err != nil {
		t.Fatal(err)
	}
	if acc := res.Final["eval_accuracy"]; acc < 0.9 {
		t.Errorf("eval accuracy %.3f after 30 epochs, want at least 0.9 (final %v)", acc, res.Final)
	}
	lines := strings.Split(strings.TrimSpace(metrics.String()), "\n")
	file, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if string(file) != metrics.String() {
		t.Errorf("metrics.jsonl differs from the live stream")
	}
	epochs := 0
	for _, l := range lines {
		if strings.Contains(l, `"kind":"epoch"`) {
			epochs++
		}
	}
	if epochs != 30 {
		t.Errorf("%d epoch reports, want 30", epochs)
	}
	for _, name := range []string{"model.safetensors", "checkpoints/epoch-0010.safetensors", "checkpoints/epoch-0030.safetensors"} {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		ts, meta, err := ReadSafetensors(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(ts) != 4 || ts[0].Name != "layers.0.bias" || len(ts[1].Data) != 32 || meta["format"] != "cyxwiz-train/1" {
			t.Errorf("%s: %d tensors, first %s, meta %v", name, len(ts), ts[0].Name, meta)
		}
	}
}

// Two CPU runs with one seed give the same weights bit for bit; another
// seed gives others.
func TestTrainReproducible(t *testing.T) {
	data := t.TempDir()
	writeCSV(t, data, 400, 2)
	run := func(seed uint64) []byte {
		spec := xorSpec(t)
		spec.Epochs, spec.Seed, spec.CheckpointEpochs = 3, seed, 0
		out := t.TempDir()
		if _, err := Run(context.Background(), Params{Spec: spec, DataDir: data, OutDir: out, Backend: NewCPU()}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := run(5), run(5), run(6)
	if !bytes.Equal(a, b) {
		t.Error("two runs with seed 5 differ")
	}
	if bytes.Equal(a, c) {
		t.Error("seeds 5 and 6 gave the same weights")
	}
}

func TestTrainDivergesWithMetrics(t *testing.T) {
	data, out := t.TempDir(), t.TempDir()
	var buf bytes.Buffer
	buf.WriteString("x,target\n")
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&buf, "%d,%d\n", i, i*1000)
	}
	os.WriteFile(filepath.Join(data, "big.csv"), buf.Bytes(), 0o644)
	s := trainspec.Spec{
		Model:     trainspec.Model{Input: []int{1}, Layers: []trainspec.Layer{{Type: "dense", Units: 1}}},
		Loss:      trainspec.LossMSE,
		Optimizer: trainspec.Optimizer{Type: trainspec.OptimizerSGD, LearningRate: 10},
		BatchSize: 10, Epochs: 50, LogSteps: 1,
		Dataset: trainspec.Dataset{CID: "bafkqaaa", Format: trainspec.DatasetCSV, TrainFile: "big.csv", Header: true},
	}
	s.Normalize()
	_, err := Run(context.Background(), Params{Spec: s, DataDir: data, OutDir: out, Backend: NewCPU()})
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("Run = %v, want ErrDiverged", err)
	}
	m, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if !bytes.Contains(m, []byte(`"kind":"step"`)) {
		t.Errorf("no metrics kept before the divergence: %q", m)
	}
}

func TestBadDatasets(t *testing.T) {
	spec := mlpSpec(1)
	cases := []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"missing", map[string][]byte{}, "train-images-idx3-ubyte.gz is not in the dataset"},
		{"not idx", map[string][]byte{"train-images-idx3-ubyte.gz": []byte("hello, world"),
			"train-labels-idx1-ubyte.gz": []byte("x")}, "not an IDX file"},
		{"truncated", map[string][]byte{
			"train-images-idx3-ubyte.gz": append([]byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28}, make([]byte, 100)...),
			"train-labels-idx1-ubyte.gz": {0, 0, 8, 1, 0, 0, 0, 2, 1, 2}}, "fewer than the 1568 bytes"},
		{"wrong size", map[string][]byte{
			"train-images-idx3-ubyte.gz": append([]byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3}, make([]byte, 18)...),
			"train-labels-idx1-ubyte.gz": {0, 0, 8, 1, 0, 0, 0, 2, 1, 2}}, "examples have 9 features, the model's input 784"},
		{"label out of range", map[string][]byte{
			"train-images-idx3-ubyte.gz": append([]byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28}, make([]byte, 1568)...),
			"train-labels-idx1-ubyte.gz": {0, 0, 8, 1, 0, 0, 0, 2, 1, 12}}, "label 12"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range c.files {
				os.WriteFile(filepath.Join(dir, name), b, 0o644)
			}
			s := spec
			s.Dataset.TestImages, s.Dataset.TestLabels, s.Dataset.EvalSplit = "", "", 0
			_, err := Run(context.Background(), Params{Spec: s, DataDir: dir, OutDir: t.TempDir(), Backend: NewCPU()})
			if !errors.Is(err, ErrDataset) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Run = %v, want a dataset error containing %q", err, c.want)
			}
		})
	}
}

func TestCSVErrors(t *testing.T) {
	cases := []struct{ name, data, want string }{
		{"not a number", "1,2,0\n1,x,1\n", `line 2 column 1: "x" is not a number`},
		{"ragged", "1,2,0\n1,2\n", "line 2"},
		{"one column", "1\n2\n", "need features and a label"},
		{"empty", "", "holds no examples"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "d.csv"), []byte(c.data), 0o644)
			_, err := loadCSV(dir, "d.csv", trainspec.Dataset{Scale: 1}, DefaultMaxDataBytes)
			if !errors.Is(err, ErrDataset) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("loadCSV(%q) = %v, want an error containing %q", c.data, err, c.want)
			}
		})
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	in := []NamedTensor{{Name: "a", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, float32(math.Inf(1))}},
		{Name: "b", Shape: []int{1}, Data: []float32{-0.5}}}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, in, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if n := buf.Len(); (n-8-6*4-4)%8 != 0 {
		t.Errorf("header is not padded to 8 bytes (file of %d bytes)", n)
	}
	out, meta, err := ReadSafetensors(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if meta["k"] != "v" || len(out) != 2 || out[0].Data[5] != in[0].Data[5] || out[1].Data[0] != -0.5 {
		t.Errorf("round trip gave %v %v", out, meta)
	}
	bad := buf.Bytes()[:buf.Len()-3]
	if _, _, err := ReadSafetensors(bytes.NewReader(bad)); err == nil {
		t.Error("a truncated file was read")
	}
}

// A dataset that expands past the job's memory fails cleanly (a gzip bomb
// cannot exhaust the provider).
func TestDatasetMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	var raw bytes.Buffer
	zw := gzip.NewWriter(&raw)
	zw.Write(make([]byte, 4<<20))
	zw.Close()
	os.WriteFile(filepath.Join(dir, "big.csv"), raw.Bytes(), 0o644)
	spec := xorSpec(t)
	spec.Dataset.TrainFile = "big.csv"
	_, err := Run(context.Background(), Params{Spec: spec, DataDir: dir, OutDir: t.TempDir(), Backend: NewCPU(), MaxDataBytes: 1 << 20})
	if !errors.Is(err, ErrDataset) || !strings.Contains(err.Error(), "more than the job's memory allows") {
		t.Fatalf("Run = %v, want a dataset error about memory", err)
	}
}

// Hostile datasets fail cleanly: an IDX header whose dimensions overflow,
// a link out of the dataset, a pipe.
func TestHostileDatasets(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "huge"), []byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}, 0o644)
	if _, _, err := readIDX(dir, "huge", 3, 1<<32); !errors.Is(err, ErrDataset) {
		t.Errorf("overflowing dimensions: %v, want a dataset error", err)
	}
	secret := filepath.Join(t.TempDir(), "secret.csv")
	os.WriteFile(secret, []byte("1,2,3\n"), 0o644)
	os.Symlink(secret, filepath.Join(dir, "link.csv"))
	if _, err := loadCSV(dir, "link.csv", trainspec.Dataset{Scale: 1}, DefaultMaxDataBytes); !errors.Is(err, ErrDataset) || !strings.Contains(err.Error(), "outside the dataset") {
		t.Errorf("a link out of the dataset: %v", err)
	}
	os.Symlink("/dev/zero", filepath.Join(dir, "dev.csv"))
	if _, err := loadCSV(dir, "dev.csv", trainspec.Dataset{Scale: 1}, DefaultMaxDataBytes); !errors.Is(err, ErrDataset) {
		t.Errorf("a link to a device: %v", err)
	}
	inside := filepath.Join(dir, "data.csv")
	os.WriteFile(inside, []byte("1,2,0\n3,4,1\n"), 0o644)
	os.Symlink("data.csv", filepath.Join(dir, "alias.csv"))
	if e, err := loadCSV(dir, "alias.csv", trainspec.Dataset{Scale: 1}, DefaultMaxDataBytes); err != nil || e.N != 2 {
		t.Errorf("a link inside the dataset: %v", err)
	}
}
