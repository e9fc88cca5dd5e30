package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// Params describe one training run.
type Params struct {
	Spec trainspec.Spec
	// DataDir is the dataset: a folder, or a single file.
	DataDir string
	// OutDir receives model.safetensors, metrics.jsonl and checkpoints/.
	OutDir  string
	Backend Backend
	// Log receives a human-readable line per report; Metrics the same
	// reports as JSON lines, live. Either may be nil.
	Log, Metrics io.Writer
	// MaxDataBytes bounds what each dataset file may expand to in memory
	// (0: DefaultMaxDataBytes); the executor sets the job's memory.
	MaxDataBytes int64
}

// Metric is one line of the metrics stream: a "step" report every
// log_steps steps, an "epoch" report after each epoch's evaluation.
type Metric struct {
	Kind         string   `json:"kind"`
	Epoch        int      `json:"epoch"`
	Step         int      `json:"step"`
	Loss         float64  `json:"loss"`
	Accuracy     *float64 `json:"accuracy,omitempty"`
	EvalLoss     *float64 `json:"eval_loss,omitempty"`
	EvalAccuracy *float64 `json:"eval_accuracy,omitempty"`
	LearningRate float64  `json:"learning_rate"`
	Seconds      float64  `json:"seconds"`
}

// Result is how a run ended.
type Result struct {
	// Final holds the last epoch's figures: loss, accuracy, eval_loss,
	// eval_accuracy (those that apply), epochs, steps, seconds.
	Final   map[string]float64
	Backend string
}

// ErrDiverged: the loss became NaN or infinite.
var ErrDiverged = errors.New("training diverged")

// Run trains the model of p.Spec to its last epoch, or until ctx ends or
// the loss diverges. Outputs written so far stay in OutDir.
func Run(ctx context.Context, p Params) (Result, error) {
	res := Result{Backend: p.Backend.Name(), Final: map[string]float64{}}
	spec := p.Spec
	shapes, err := spec.Model.Shapes()
	if err != nil {
		return res, fmt.Errorf("model: %w", err)
	}
	for _, d := range []string{p.OutDir, filepath.Join(p.OutDir, "checkpoints")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return res, err
		}
	}
	mf, err := os.Create(filepath.Join(p.OutDir, "metrics.jsonl"))
	if err != nil {
		return res, err
	}
	defer mf.Close()
	sink := &reporter{file: mf, live: p.Metrics, log: p.Log}

	limit := p.MaxDataBytes
	if limit <= 0 {
		limit = DefaultMaxDataBytes
	}
	trainSet, evalSet, err := loadDataset(p.DataDir, spec.Dataset, limit)
	if err != nil {
		return res, err
	}
	if evalSet == nil && spec.Dataset.EvalSplit > 0 {
		trainSet, evalSet = split(trainSet, spec.Dataset.EvalSplit, spec.Seed)
	}
	inSize, classes := shapes[0].Size(), shapes[len(shapes)-1].Size()
	if trainSet.F != inSize {
		return res, dataErr("examples have %d features, the model's input %s has %d",
			trainSet.F, trainspec.ShapeString(shapes[0]), inSize)
	}
	for _, e := range []*examples{trainSet, evalSet} {
		if e != nil {
			if err := checkLabels(e, spec.Loss, classes); err != nil {
				return res, err
			}
		}
	}
	sink.logf("training on %s: %d examples, %d held out for evaluation, %d epochs of batch %d",
		p.Backend.Name(), trainSet.N, evalSet.size(), spec.Epochs, spec.BatchSize)

	batch := min(spec.BatchSize, trainSet.N)
	net, err := buildNetwork(p.Backend, spec.Model, batch, spec.Seed)
	if err != nil {
		return res, err
	}
	h := newHead(spec.Loss, net.softmax, batch, classes)
	x, dy := p.Backend.New(batch*inSize), p.Backend.New(batch*classes)
	xb, out := make([]float32, batch*inSize), make([]float32, batch*classes)
	opt := newOptimizer(p.Backend, spec.Optimizer)
	params := net.params()

	start := time.Now()
	step := 0
	for epoch := 1; epoch <= spec.Epochs; epoch++ {
		lr := learningRate(spec, epoch-1)
		perm := permutation(trainSet.N, spec.Seed, uint64(epoch))
		var epochLoss, windowLoss float64
		var epochRight, windowRight, epochSeen, windowSeen int
		for at := 0; at < trainSet.N; at += batch {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			n := min(batch, trainSet.N-at)
			idx := perm[at : at+n]
			for i, r := range idx {
				copy(xb[i*inSize:(i+1)*inSize], trainSet.row(r))
			}
			p.Backend.Write(x, xb[:n*inSize])
			step++
			y := net.forward(x, n, true, spec.Seed^uint64(step)*0xA24BAED4963EE407)
			p.Backend.Read(out[:n*classes], y)
			if err := backendErr(p.Backend); err != nil {
				return res, err
			}
			loss, right := h.lossGrad(out[:n*classes], trainSet.Y, idx)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				sink.logf("epoch %d step %d: loss is %g", epoch, step, loss)
				res.Final["epochs"], res.Final["steps"] = float64(epoch-1), float64(step)
				return res, fmt.Errorf("%w at epoch %d step %d (loss %g)", ErrDiverged, epoch, step, loss)
			}
			p.Backend.Write(dy, h.grad[:n*classes])
			net.backward(dy, n)
			opt.step(params, lr)
			epochLoss += loss * float64(n)
			windowLoss += loss * float64(n)
			epochRight += right
			windowRight += right
			epochSeen += n
			windowSeen += n
			if step%spec.LogSteps == 0 {
				m := Metric{Kind: "step", Epoch: epoch, Step: step, Loss: windowLoss / float64(windowSeen),
					LearningRate: lr, Seconds: time.Since(start).Seconds()}
				if h.accuracy {
					m.Accuracy = ptr(float64(windowRight) / float64(windowSeen))
				}
				if err := sink.report(m); err != nil {
					return res, err
				}
				windowLoss, windowRight, windowSeen = 0, 0, 0
			}
		}
		m := Metric{Kind: "epoch", Epoch: epoch, Step: step, Loss: epochLoss / float64(epochSeen),
			LearningRate: lr}
		if h.accuracy {
			m.Accuracy = ptr(float64(epochRight) / float64(epochSeen))
		}
		if evalSet != nil {
			el, ea := evaluate(net, h, evalSet, x, xb, out)
			m.EvalLoss = &el
			if h.accuracy {
				m.EvalAccuracy = &ea
			}
		}
		m.Seconds = time.Since(start).Seconds()
		if err := sink.report(m); err != nil {
			return res, err
		}
		res.Final = m.final()
		if m.EvalLoss != nil && (math.IsNaN(*m.EvalLoss) || math.IsInf(*m.EvalLoss, 0)) {
			return res, fmt.Errorf("%w at epoch %d (evaluation loss %g)", ErrDiverged, epoch, *m.EvalLoss)
		}
		if spec.CheckpointEpochs > 0 && epoch%spec.CheckpointEpochs == 0 {
			name := filepath.Join(p.OutDir, "checkpoints", fmt.Sprintf("epoch-%04d.safetensors", epoch))
			if err := saveModel(name, p.Backend, params, spec, res); err != nil {
				return res, err
			}
		}
	}
	if err := saveModel(filepath.Join(p.OutDir, "model.safetensors"), p.Backend, params, spec, res); err != nil {
		return res, err
	}
	return res, mf.Sync()
}

// backendErr returns the first failure of a backend that reports them
// (a GPU backend's calls have no error results of their own).
func backendErr(b Backend) error {
	if c, ok := b.(interface{ Err() error }); ok {
		if err := c.Err(); err != nil {
			return fmt.Errorf("%s: %w", b.Name(), err)
		}
	}
	return nil
}

func ptr(v float64) *float64 { return &v }

func (m Metric) final() map[string]float64 {
	f := map[string]float64{"epochs": float64(m.Epoch), "steps": float64(m.Step), "loss": m.Loss, "seconds": m.Seconds}
	if m.Accuracy != nil {
		f["accuracy"] = *m.Accuracy
	}
	if m.EvalLoss != nil {
		f["eval_loss"] = *m.EvalLoss
	}
	if m.EvalAccuracy != nil {
		f["eval_accuracy"] = *m.EvalAccuracy
	}
	return f
}

func (e *examples) size() int {
	if e == nil {
		return 0
	}
	return e.N
}

// evaluate runs the network without dropout over every example of e and
// returns the mean loss and the accuracy.
func evaluate(net *network, h *head, e *examples, x Tensor, xb, out []float32) (loss, accuracy float64) {
	batch := net.maxBatch
	idx := make([]int, batch)
	var sum float64
	right := 0
	for at := 0; at < e.N; at += batch {
		n := min(batch, e.N-at)
		for i := 0; i < n; i++ {
			idx[i] = at + i
			copy(xb[i*net.in:(i+1)*net.in], e.row(at+i))
		}
		net.b.Write(x, xb[:n*net.in])
		y := net.forward(x, n, false, 0)
		net.b.Read(out[:n*net.out], y)
		l, r := h.lossGrad(out[:n*net.out], e.Y, idx[:n])
		sum += l * float64(n)
		right += r
	}
	return sum / float64(e.N), float64(right) / float64(e.N)
}

// permutation is the seeded order of n examples for one epoch.
func permutation(n int, seed, stream uint64) []int {
	return rand.New(rand.NewPCG(seed, stream)).Perm(n)
}

// learningRate is the schedule's rate for a 0-based epoch.
func learningRate(s trainspec.Spec, epoch int) float64 {
	lr := s.Optimizer.LearningRate
	switch s.Schedule.Type {
	case trainspec.ScheduleStep:
		return lr * math.Pow(s.Schedule.Gamma, float64(epoch/s.Schedule.StepEpochs))
	case trainspec.ScheduleCosine:
		lo := s.Schedule.MinLearningRate
		if s.Epochs == 1 {
			return lr
		}
		return lo + (lr-lo)*(1+math.Cos(math.Pi*float64(epoch)/float64(s.Epochs-1)))/2
	}
	return lr
}

// saveModel writes every parameter, with the model graph and the figures
// so far as metadata.
func saveModel(path string, b Backend, params []*param, spec trainspec.Spec, res Result) error {
	var ts []NamedTensor
	for _, p := range params {
		t := NamedTensor{Name: p.name, Shape: p.shape, Data: make([]float32, p.n)}
		b.Read(t.Data, p.w)
		ts = append(ts, t)
	}
	model, err := json.Marshal(spec.Model)
	if err != nil {
		return err
	}
	meta := map[string]string{"format": "cyxwiz-train/1", "model": string(model), "loss_function": spec.Loss,
		"layout": "dense weights [in, out]; conv2d weights [kernel_h, kernel_w, in_channels, filters]; images NHWC"}
	for k, v := range res.Final {
		if k != "seconds" { // so that one seed gives one file, byte for byte
			meta[k] = strconv.FormatFloat(v, 'g', -1, 64)
		}
	}
	return writeSafetensorsFile(path, ts, meta)
}

// reporter writes metrics to the metrics file, the live stream and the log.
type reporter struct {
	file      io.Writer
	live, log io.Writer
}

func (r *reporter) logf(format string, args ...any) {
	if r.log != nil {
		fmt.Fprintf(r.log, format+"\n", args...)
	}
}

func (r *reporter) report(m Metric) error {
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if _, err := r.file.Write(line); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if r.live != nil {
		r.live.Write(line)
	}
	if r.log != nil {
		s := fmt.Sprintf("epoch %d step %d: loss %.4f", m.Epoch, m.Step, m.Loss)
		if m.Accuracy != nil {
			s += fmt.Sprintf(" accuracy %.4f", *m.Accuracy)
		}
		if m.EvalLoss != nil {
			s += fmt.Sprintf(" eval_loss %.4f", *m.EvalLoss)
		}
		if m.EvalAccuracy != nil {
			s += fmt.Sprintf(" eval_accuracy %.4f", *m.EvalAccuracy)
		}
		fmt.Fprintf(r.log, "%s (%s, %.1fs)\n", s, m.Kind, m.Seconds)
	}
	return nil
}
