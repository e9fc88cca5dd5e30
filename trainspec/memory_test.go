package trainspec

import (
	"strings"
	"testing"
)

// TestEstimateOfAbsurdShapes: shapes whose products would overflow are
// refused, and an estimate saturates rather than wraps to something small.
func TestEstimateOfAbsurdShapes(t *testing.T) {
	raw := `{"model":{"input":[65536,65536,65536],
		"layers":[{"type":"flatten"}]},"loss":"mse","optimizer":{"type":"sgd","learning_rate":0.1},
		"epochs":1,"batch_size":65536,"dataset":{"cid":"` + testCID + `","format":"csv","train_file":"a.csv"}}`
	if _, err := parse(raw); err == nil || !strings.Contains(err.Error(), "values") {
		t.Fatalf("parse(an input of 2^48 values) = %v, want it refused", err)
	}
	big := Spec{BatchSize: 1 << 16, Model: Model{Input: []int{1 << 15, 1 << 15, 1}, Layers: []Layer{
		{Type: LayerConv2D, Filters: 1, Kernel: 1, Stride: 1}, {Type: LayerMaxPool, Size: 32, Stride: 32},
		{Type: LayerFlatten}, {Type: LayerDense, Units: 2}}}}
	est, err := big.EstimateMemory(DatasetSize{Examples: 1 << 40, Features: 1 << 30, CSV: true})
	if err != nil {
		t.Fatal(err)
	}
	if est.Total() < 1<<50 {
		t.Errorf("an enormous job is estimated at %s", est)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 19: "1.5 MiB", 13 << 30: "13.0 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestEstimateString(t *testing.T) {
	m := MemoryEstimate{Parameters: 2 << 20, Gradients: 1 << 20}
	if got, want := m.String(), "3.0 MiB (parameters 2.0 MiB, gradients 1.0 MiB)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}
