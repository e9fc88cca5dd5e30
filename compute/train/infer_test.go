package train

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// trainedXOR trains the XOR model and returns its weights file.
func trainedXOR(t *testing.T) []byte {
	t.Helper()
	data, out := t.TempDir(), t.TempDir()
	writeCSV(t, data, 1000, 1)
	if _, err := Run(context.Background(), Params{Spec: xorSpec(t), DataDir: data, OutDir: out, Backend: NewCPU()}); err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// byHand runs dense(16) tanh dense(2) softmax on x from the tensors, in
// float64, as an independent check of the inference path.
func byHand(ts map[string]NamedTensor, x []float32) []float64 {
	w0, b0, w1, b1 := ts["layers.0.weight"], ts["layers.0.bias"], ts["layers.3.weight"], ts["layers.3.bias"]
	h := make([]float64, 16)
	for j := range h {
		s := float64(b0.Data[j])
		for i := range x {
			s += float64(x[i]) * float64(w0.Data[i*16+j])
		}
		h[j] = math.Tanh(s)
	}
	o := make([]float64, 2)
	for j := range o {
		s := float64(b1.Data[j])
		for i := range h {
			s += h[i] * float64(w1.Data[i*2+j])
		}
		o[j] = s
	}
	m := math.Max(o[0], o[1])
	e0, e1 := math.Exp(o[0]-m), math.Exp(o[1]-m)
	return []float64{e0 / (e0 + e1), e1 / (e0 + e1)}
}

func TestModelPredicts(t *testing.T) {
	weights := trainedXOR(t)
	spec := xorSpec(t)
	m, err := LoadModel(bytes.NewReader(weights), LoadOptions{MaxBatch: 7, Model: &spec.Model})
	if err != nil {
		t.Fatal(err)
	}
	if got := trainspec.ShapeString(m.InputShape()); got != "2" || m.OutputSize() != 2 {
		t.Fatalf("shape %s -> %d", got, m.OutputSize())
	}
	tensors, _, err := ReadSafetensors(bytes.NewReader(weights))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]NamedTensor{}
	for _, ts := range tensors {
		byName[ts.Name] = ts
	}
	// 100 points, more than one batch, against the hand-computed forward
	// pass and the XOR labels.
	var xs [][]float32
	for _, line := range strings.Split(strings.TrimSpace(string(xorCSV(100, 5))), "\n")[1:] {
		f := strings.Split(line, ",")
		x, _ := strconv.ParseFloat(f[0], 32)
		y, _ := strconv.ParseFloat(f[1], 32)
		xs = append(xs, []float32{float32(x), float32(y)})
	}
	got, err := m.Predict(xs)
	if err != nil {
		t.Fatal(err)
	}
	right := 0
	for i, x := range xs {
		want := byHand(byName, x)
		for j := range want {
			if math.Abs(float64(got[i][j])-want[j]) > 1e-4 {
				t.Fatalf("example %d: Predict %v, by hand %v", i, got[i], want)
			}
		}
		label := 0
		if (x[0] > 0) != (x[1] > 0) {
			label = 1
		}
		if (got[i][1] > got[i][0]) == (label == 1) {
			right++
		}
	}
	if right < 85 {
		t.Errorf("%d of 100 XOR points right, want at least 85", right)
	}
	if _, err := m.Predict([][]float32{{1, 2, 3}}); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "takes 2 = 2") {
		t.Errorf("3 values for a 2-input model: %v", err)
	}
	if _, err := m.Predict([][]float32{{float32(math.NaN()), 0}}); !errors.Is(err, ErrBadInput) {
		t.Errorf("NaN input: %v", err)
	}
}

func TestLoadModelRefusesBadWeights(t *testing.T) {
	weights := trainedXOR(t)
	tensors, meta, err := ReadSafetensors(bytes.NewReader(weights))
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(edit func(ts []NamedTensor, meta map[string]string) []NamedTensor) []byte {
		ts := make([]NamedTensor, len(tensors))
		for i, x := range tensors {
			x.Data = append([]float32(nil), x.Data...)
			ts[i] = x
		}
		m := map[string]string{}
		for k, v := range meta {
			m[k] = v
		}
		ts = edit(ts, m)
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, ts, m); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	other := xorSpec(t).Model
	other.Layers[0].Units = 8
	cases := map[string]struct {
		data []byte
		opts LoadOptions
		want string
	}{
		"truncated":       {data: weights[:len(weights)/2], want: "safetensors"},
		"not safetensors": {data: []byte("hello"), want: "safetensors"},
		"other format":    {data: rewrite(func(ts []NamedTensor, m map[string]string) []NamedTensor { m["format"] = "x"; return ts }), want: "format"},
		"no graph":        {data: rewrite(func(ts []NamedTensor, m map[string]string) []NamedTensor { delete(m, "model"); return ts }), want: "graph"},
		"missing tensor":  {data: rewrite(func(ts []NamedTensor, _ map[string]string) []NamedTensor { return ts[1:] }), want: "tensors"},
		"extra tensor": {data: rewrite(func(ts []NamedTensor, _ map[string]string) []NamedTensor {
			return append(ts, NamedTensor{Name: "zz", Shape: []int{1}, Data: []float32{1}})
		}), want: "tensors"},
		"wrong shape": {data: rewrite(func(ts []NamedTensor, _ map[string]string) []NamedTensor {
			ts[1].Shape = []int{16, 2}
			ts[1].Data = make([]float32, 32)
			return ts
		}), want: "shape"},
		"NaN weight": {data: rewrite(func(ts []NamedTensor, _ map[string]string) []NamedTensor {
			ts[0].Data[0] = float32(math.NaN())
			return ts
		}), want: "NaN"},
		"too large": {data: weights, opts: LoadOptions{MaxBytes: 100}, want: "larger than 100 bytes"},
		// A few bytes that describe 67 million parameters are refused
		// before the network is built.
		"huge graph, no weights": {data: rewrite(func(_ []NamedTensor, m map[string]string) []NamedTensor {
			m["model"] = `{"input":[8192],"layers":[{"type":"dense","units":8192}]}`
			return nil
		}), want: "hold 0 values, the graph has 67117056 parameters"},
		"another graph": {data: weights, opts: LoadOptions{Model: &other}, want: "another model graph"},
	}
	for name, c := range cases {
		_, err := LoadModel(bytes.NewReader(c.data), c.opts)
		if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want ErrBadModel mentioning %q", name, err, c.want)
		}
	}
	// The memory a batch of the model needs is checked against a limit.
	if _, err := LoadModel(bytes.NewReader(weights), LoadOptions{MaxBatch: 1024, MaxMemoryBytes: 64 << 10}); !errors.Is(err, ErrModelMemory) ||
		!strings.Contains(err.Error(), "for batches of 1024") {
		t.Errorf("a model over its memory: %v; want ErrModelMemory", err)
	}
	if _, err := LoadModel(bytes.NewReader(weights), LoadOptions{MaxBatch: 16, MaxMemoryBytes: 64 << 20}); err != nil {
		t.Errorf("a model within its memory: %v", err)
	}
	// A graph whose batch would take minutes is refused before it is built.
	slow := rewrite(func(_ []NamedTensor, m map[string]string) []NamedTensor {
		m["model"] = `{"input":[128,128,64],"layers":[{"type":"conv2d","filters":64,"kernel":5,"stride":1,"padding":2},{"type":"conv2d","filters":64,"kernel":5,"stride":1,"padding":2},{"type":"flatten"},{"type":"dense","units":2}]}`
		return nil
	})
	if _, err := LoadModel(bytes.NewReader(slow), LoadOptions{MaxBatch: 64}); !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), "multiply-adds") {
		t.Errorf("a batch of minutes: %v", err)
	}
}
