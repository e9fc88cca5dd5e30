package market

import (
	"strings"
	"testing"
)

// TestEstimateOfAbsurdShapes: shapes whose products would overflow are
// refused, and an estimate saturates rather than wraps to something small.
func TestEstimateOfAbsurdShapes(t *testing.T) {
	raw := `{"kind":"train","resources":{"memory_mib":16},"train":{"model":{"input":[65536,65536,65536],
		"layers":[{"type":"flatten"}]},"loss":"mse","optimizer":{"type":"sgd","learning_rate":0.1},
		"epochs":1,"batch_size":65536,"dataset":{"cid":"bafkqaaa","format":"csv","train_file":"a.csv"}}}`
	if _, err := ParseSpec([]byte(raw)); err == nil || !strings.Contains(err.Error(), "values") {
		t.Fatalf("ParseSpec(an input of 2^48 values) = %v, want it refused", err)
	}
	big := TrainSpec{BatchSize: 1 << 16, Model: Model{Input: []int{1 << 15, 1 << 15, 1}, Layers: []Layer{
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
