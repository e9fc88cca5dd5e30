package trainspec

import (
	"fmt"
	"strings"
)

// DatasetSize is what a train job's dataset holds, as far as memory goes:
// its examples (training and test together) and their features. The zero
// value is a dataset not measured yet.
type DatasetSize struct {
	Examples int64
	Features int64
	// CSV datasets are read row by row into growing arrays, which costs
	// more than IDX's arrays sized from the header.
	CSV bool
}

// MemoryEstimate is a train job's peak memory by part, in bytes, as the
// built-in trainer allocates it: every buffer it keeps is counted, so that
// a run whose estimate fits its memory_mib stays within it (the trainer's
// runtime itself is allowed for separately, see TrainerOverheadMiB).
type MemoryEstimate struct {
	// Parameters are the weights, and the copy made to initialise and to
	// save them.
	Parameters int64
	// Gradients are one gradient per weight.
	Gradients int64
	// Optimizer is the optimizer's state: two moments per weight.
	Optimizer int64
	// Activations are one batch's layer outputs, input gradients and
	// unfolded convolution inputs, forward and backward.
	Activations int64
	// Dataset is the decoded examples, with the copy a held-out split makes.
	Dataset int64
}

// TrainerOverheadMiB is the memory a training process needs beyond its
// estimate: the Go runtime, its garbage collector's headroom and the BLAS
// library's buffers. A provider lets a train job use its memory_mib plus
// this before it stops it.
const TrainerOverheadMiB = 96

// Total is the estimate's sum.
func (m MemoryEstimate) Total() int64 {
	return add(add(add(add(m.Parameters, m.Gradients), m.Optimizer), m.Activations), m.Dataset)
}

// String writes the total and its parts: "13.1 GiB (parameters 1.0 MiB,
// gradients ...)"; parts that are zero are left out.
func (m MemoryEstimate) String() string {
	var parts []string
	for _, p := range []struct {
		name string
		n    int64
	}{{"parameters", m.Parameters}, {"gradients", m.Gradients}, {"optimizer state", m.Optimizer},
		{"activations", m.Activations}, {"dataset", m.Dataset}} {
		if p.n > 0 {
			parts = append(parts, p.name+" "+FormatBytes(p.n))
		}
	}
	return fmt.Sprintf("%s (%s)", FormatBytes(m.Total()), strings.Join(parts, ", "))
}

// FormatBytes writes n in the largest binary unit that keeps it at 1 or more.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}[i])
}

// EstimateMemory estimates a normalized train section's peak memory with
// the dataset data (its Dataset part is 0 when data is the zero value).
func (t Spec) EstimateMemory(data DatasetSize) (MemoryEstimate, error) {
	shapes, err := t.Model.Shapes()
	if err != nil {
		return MemoryEstimate{}, err
	}
	const f32 = 4
	batch := int64(max(t.BatchSize, 1))
	if data.Examples > 0 {
		batch = min(batch, data.Examples)
	}
	var params, acts int64
	ones := batch
	for i, l := range t.Model.Layers {
		in, out := int64(shapes[i].Size()), int64(shapes[i+1].Size())
		switch l.Type {
		case LayerDense:
			params = add(params, add(mul(in, out), out))
			acts = add(acts, mul(batch, add(out, in))) // output, input gradient
		case LayerConv2D:
			kk := int64(l.Kernel * l.Kernel * shapes[i][2])
			filters := int64(l.Filters)
			params = add(params, add(mul(kk, filters), filters))
			rows := mul(batch, int64(shapes[i+1][0]*shapes[i+1][1]))
			ones = max(ones, rows)
			// im2col and its gradient, output, input gradient
			acts = add(acts, add(add(mul(2, mul(rows, kk)), mul(rows, filters)), mul(batch, in)))
		case LayerMaxPool:
			acts = add(acts, mul(batch, add(mul(2, out), in))) // output, argmax, input gradient
		case LayerDropout:
			acts = add(acts, mul(3, mul(batch, in))) // output, mask, input gradient
		case LayerReLU, LayerSigmoid, LayerTanh:
			acts = add(acts, mul(2, mul(batch, in))) // output, input gradient
		}
	}
	features, classes := int64(shapes[0].Size()), int64(shapes[len(shapes)-1].Size())
	// The batch's input and output gradient on the backend and on the
	// host, the loss head's gradient, the output read back, and the
	// column of ones that adds biases.
	acts = add(acts, add(add(mul(2, mul(batch, features)), mul(3, mul(batch, classes))), ones))
	m := MemoryEstimate{Parameters: mul(2*f32, params), Gradients: mul(f32, params), Optimizer: mul(2*f32, params),
		Activations: mul(f32, acts)}
	if data.Examples > 0 {
		m.Dataset = t.Dataset.memory(data)
	}
	return m, nil
}

// maxEstimate caps every sum and product of an estimate, far above any
// memory and far below overflow: a model of absurd shapes is estimated as
// absurdly large, never as small.
const maxEstimate = 1 << 60

func mul(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > maxEstimate/b {
		return maxEstimate
	}
	return min(a*b, maxEstimate)
}

func add(a, b int64) int64 { return min(a+b, maxEstimate) }

// memory is what the trainer holds of a dataset of that size: the decoded
// features and labels (for IDX also the file's bytes as read; for CSV the
// slack of arrays grown row by row), a copy when a held-out split is
// taken, and the orders of examples it shuffles.
func (d Dataset) memory(data DatasetSize) int64 {
	values := mul(data.Examples, add(data.Features, 1))
	var n int64
	if data.CSV {
		n = mul(9, values) // float32 arrays appended to, up to 2.25 times their length while they grow
	} else {
		n = mul(5, values) // the file's bytes and their float32 values
	}
	if d.EvalSplit > 0 && d.TestImages == "" && d.TestFile == "" {
		n = add(n, add(mul(4, values), mul(8, data.Examples))) // the split's copy and its permutation
	}
	return add(n, mul(8, data.Examples)) // one epoch's permutation
}
