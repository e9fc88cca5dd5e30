package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"sync"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// ErrBadModel: a weights file that is not one a train job writes: not
// safetensors, another format, a graph that does not build, or tensors
// missing, extra or of the wrong shape.
var ErrBadModel = errors.New("bad model")

// ErrBadInput: inputs that do not fit the model's input shape.
var ErrBadInput = errors.New("bad input")

// ErrModelMemory: a model that needs more memory than it is given.
var ErrModelMemory = errors.New("model needs more memory than its limit")

// ModelFormat is the format a train job's weights name in their metadata.
const ModelFormat = "cyxwiz-train/1"

// DefaultMaxModelBytes bounds a weights file LoadModel reads.
const DefaultMaxModelBytes = 512 << 20

// MaxBatchFLOPs bounds the multiply-adds of one forward pass of a batch,
// so that a batch ends within seconds on a CPU core and a deployment can
// be stopped promptly.
const MaxBatchFLOPs = 20e9

// LoadOptions tune LoadModel.
type LoadOptions struct {
	// Backend runs the model (default: the CPU).
	Backend Backend
	// MaxBatch is the most examples one forward pass takes (default 64);
	// Predict splits larger calls.
	MaxBatch int
	// MaxBytes bounds the weights file (default DefaultMaxModelBytes).
	MaxBytes int64
	// Model, when set, is the graph the weights must be of: a deployment
	// names its train spec, and weights of another graph are refused.
	Model *trainspec.Model
	// MaxMemoryBytes, when set, bounds the memory the built network may
	// take for batches of MaxBatch, as the trainer estimates it; a model
	// past it is ErrModelMemory, found before anything is allocated.
	MaxMemoryBytes int64
}

// Model is a trained network loaded for inference. Its methods are safe
// for concurrent use; forward passes run one at a time.
type Model struct {
	graph    trainspec.Model
	shapes   []trainspec.Shape
	mu       sync.Mutex
	net      *network
	x        Tensor
	xb, out  []float32
	maxBatch int
	// probabilities: the outputs are put through softmax, as the loss
	// did in training (cross-entropy, or a model that ends with softmax).
	probabilities bool
}

// LoadModel reads weights written by a train job (safetensors with the
// model graph in their metadata) and builds the network for inference.
func LoadModel(r io.Reader, opts LoadOptions) (*Model, error) {
	if opts.Backend == nil {
		opts.Backend = NewCPU()
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 64
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxModelBytes
	}
	lr := &io.LimitedReader{R: r, N: opts.MaxBytes + 1}
	tensors, meta, err := ReadSafetensors(lr)
	if lr.N == 0 {
		return nil, fmt.Errorf("%w: the weights are larger than %d bytes", ErrBadModel, opts.MaxBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadModel, err)
	}
	if meta["format"] != ModelFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBadModel, meta["format"], ModelFormat)
	}
	var graph trainspec.Model
	if err := json.Unmarshal([]byte(meta["model"]), &graph); err != nil {
		return nil, fmt.Errorf("%w: the model graph in the metadata: %w", ErrBadModel, err)
	}
	if opts.Model != nil && !reflect.DeepEqual(*opts.Model, graph) {
		return nil, fmt.Errorf("%w: the weights are of another model graph than the spec names", ErrBadModel)
	}
	shapes, err := graph.Shapes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadModel, err)
	}
	// The graph is checked against the file and the memory before any
	// buffer of it is allocated: a small file may describe a huge graph.
	est, err := trainspec.Spec{Model: graph, BatchSize: opts.MaxBatch}.EstimateMemory(trainspec.DatasetSize{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadModel, err)
	}
	if f := forwardFLOPs(graph, shapes) * float64(opts.MaxBatch); f > MaxBatchFLOPs {
		return nil, fmt.Errorf("%w: a batch of %d takes %.3g multiply-adds, more than %.3g: serve it in smaller batches",
			ErrBadModel, opts.MaxBatch, f, float64(MaxBatchFLOPs))
	}
	var values int64
	for _, t := range tensors {
		values += int64(len(t.Data))
	}
	if want := est.Parameters / 8; values != want {
		return nil, fmt.Errorf("%w: the tensors hold %d values, the graph has %d parameters", ErrBadModel, values, want)
	}
	if opts.MaxMemoryBytes > 0 && est.Total() > opts.MaxMemoryBytes {
		return nil, fmt.Errorf("%w: needs an estimated %s for batches of %d, more than its %s",
			ErrModelMemory, trainspec.FormatBytes(est.Total()), opts.MaxBatch, trainspec.FormatBytes(opts.MaxMemoryBytes))
	}
	net, err := buildNetwork(opts.Backend, graph, opts.MaxBatch, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadModel, err)
	}
	byName := map[string]NamedTensor{}
	for _, t := range tensors {
		byName[t.Name] = t
	}
	params := net.params()
	if len(params) != len(tensors) {
		return nil, fmt.Errorf("%w: %d tensors, the graph has %d parameter tensors", ErrBadModel, len(tensors), len(params))
	}
	for _, p := range params {
		t, ok := byName[p.name]
		if !ok {
			return nil, fmt.Errorf("%w: no tensor %s", ErrBadModel, p.name)
		}
		if !slices.Equal(t.Shape, p.shape) {
			return nil, fmt.Errorf("%w: tensor %s has shape %v, the graph needs %v", ErrBadModel, p.name, t.Shape, p.shape)
		}
		for _, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%w: tensor %s holds %v", ErrBadModel, p.name, v)
			}
		}
		opts.Backend.Write(p.w, t.Data)
	}
	return &Model{graph: graph, shapes: shapes, net: net, maxBatch: opts.MaxBatch,
		probabilities: net.softmax || meta["loss_function"] == trainspec.LossCrossEntropy,
		x:             opts.Backend.New(opts.MaxBatch * net.in), xb: make([]float32, opts.MaxBatch*net.in), out: make([]float32, opts.MaxBatch*net.out)}, nil
}

// forwardFLOPs counts the multiply-adds of one example's forward pass
// through the dense and convolution layers, which dominate it.
func forwardFLOPs(m trainspec.Model, shapes []trainspec.Shape) float64 {
	var f float64
	for i, l := range m.Layers {
		in, out := shapes[i], shapes[i+1]
		switch l.Type {
		case trainspec.LayerDense:
			f += float64(in.Size()) * float64(out.Size())
		case trainspec.LayerConv2D:
			f += float64(out[0]*out[1]) * float64(l.Kernel*l.Kernel*in[2]) * float64(l.Filters)
		}
	}
	return f
}

// Graph is the model's graph.
func (m *Model) Graph() trainspec.Model { return m.graph }

// InputShape is the shape of one example the model takes (images NHWC).
func (m *Model) InputShape() trainspec.Shape { return m.shapes[0] }

// OutputSize is the number of values the model gives per example.
func (m *Model) OutputSize() int { return m.net.out }

// MaxBatch is the most examples one forward pass takes.
func (m *Model) MaxBatch() int { return m.maxBatch }

// Predict runs the model on each example, a flat row of the input shape's
// values (images NHWC, scaled as the training data was), and returns one
// row per example: class probabilities when the model was trained with
// cross-entropy or ends with softmax, its raw outputs otherwise. Calls larger than MaxBatch are split.
func (m *Model) Predict(examples [][]float32) ([][]float32, error) {
	in := m.net.in
	for i, x := range examples {
		if len(x) != in {
			return nil, fmt.Errorf("%w: example %d has %d values; the model takes %s = %d", ErrBadInput, i, len(x), trainspec.ShapeString(m.shapes[0]), in)
		}
		for _, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%w: example %d holds %v", ErrBadInput, i, v)
			}
		}
	}
	out := make([][]float32, len(examples))
	m.mu.Lock()
	defer m.mu.Unlock()
	for at := 0; at < len(examples); at += m.maxBatch {
		n := min(m.maxBatch, len(examples)-at)
		for i := range n {
			copy(m.xb[i*in:(i+1)*in], examples[at+i])
		}
		m.net.b.Write(m.x, m.xb[:n*in])
		y := m.net.forward(m.x, n, false, 0)
		k := m.net.out
		m.net.b.Read(m.out[:n*k], y)
		for i := range n {
			row := make([]float32, k)
			copy(row, m.out[i*k:(i+1)*k])
			if m.probabilities {
				p := make([]float64, k)
				softmax(p, row)
				for j := range row {
					row[j] = float32(p[j])
				}
			}
			out[at+i] = row
		}
	}
	if err := backendErr(m.net.b); err != nil {
		return nil, err
	}
	return out, nil
}
