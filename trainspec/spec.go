// Package trainspec is the schema of a train job: a model as a sequential
// layer graph, its loss, optimizer and schedule, and the dataset it learns
// from; with the shapes a model infers layer by layer and the peak memory
// the built-in trainer needs for it. It is the train section of a job spec
// as users write it, so its JSON field names and its error texts are part
// of the product contract.
package trainspec

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strings"
)

// Kind is the job kind whose programs are train specs.
const Kind = "train"

// DatasetDir is where a train job's dataset appears in its input folder:
// /in/dataset.
const DatasetDir = "dataset"

// Loss functions of train jobs.
const (
	LossCrossEntropy = "cross_entropy"
	LossMSE          = "mse"
)

// Layer types of a train job's model.
const (
	LayerDense   = "dense"
	LayerConv2D  = "conv2d"
	LayerMaxPool = "maxpool"
	LayerFlatten = "flatten"
	LayerDropout = "dropout"
	LayerReLU    = "relu"
	LayerSigmoid = "sigmoid"
	LayerTanh    = "tanh"
	LayerSoftmax = "softmax"
)

// Optimizers, learning-rate schedules and dataset formats.
const (
	OptimizerSGD      = "sgd"
	OptimizerAdam     = "adam"
	ScheduleConstant  = "constant"
	ScheduleStep      = "step"
	ScheduleCosine    = "cosine"
	DatasetIDX        = "idx"
	DatasetCSV        = "csv"
	DefaultBatchSize  = 32
	DefaultLogSteps   = 100
	DefaultEvalSplit  = 0.1
	maxLayers         = 64
	maxDim            = 1 << 16
	maxParams         = 1 << 28
	maxShapeValues    = 1 << 31 // values of one example at any layer
	maxEpochs         = 10000
	maxBatch          = 1 << 16
	defaultBeta1      = 0.9
	defaultBeta2      = 0.999
	defaultEpsilon    = 1e-8
	defaultIDXScale   = 1.0 / 255
	defaultTrainImage = "train-images-idx3-ubyte.gz"
	defaultTrainLabel = "train-labels-idx1-ubyte.gz"
)

// Spec is the train section of a job spec: a model as a layer graph, its
// loss, optimizer and schedule, and the dataset it learns from.
type Spec struct {
	Model     Model     `json:"model"`
	Loss      string    `json:"loss"`
	Optimizer Optimizer `json:"optimizer"`
	Schedule  *Schedule `json:"schedule,omitempty"`
	BatchSize int       `json:"batch_size,omitempty"`
	Epochs    int       `json:"epochs"`
	Seed      uint64    `json:"seed,omitempty"`
	Dataset   Dataset   `json:"dataset"`
	// CheckpointEpochs writes a checkpoint every that many epochs (0: only
	// the final model).
	CheckpointEpochs int `json:"checkpoint_epochs,omitempty"`
	// LogSteps reports training loss and accuracy every that many steps.
	LogSteps int `json:"log_steps,omitempty"`
}

// Model is a sequential layer graph over inputs of shape Input: [features]
// or [height, width, channels].
type Model struct {
	Input  []int   `json:"input"`
	Layers []Layer `json:"layers"`
}

// Layer is one layer; which fields apply depends on Type.
type Layer struct {
	Type    string  `json:"type"`
	Units   int     `json:"units,omitempty"`   // dense
	Filters int     `json:"filters,omitempty"` // conv2d
	Kernel  int     `json:"kernel,omitempty"`  // conv2d
	Stride  int     `json:"stride,omitempty"`  // conv2d (default 1), maxpool (default size)
	Padding int     `json:"padding,omitempty"` // conv2d
	Size    int     `json:"size,omitempty"`    // maxpool (default 2)
	Rate    float64 `json:"rate,omitempty"`    // dropout
}

// Optimizer names the update rule and its hyperparameters.
type Optimizer struct {
	Type         string  `json:"type"`
	LearningRate float64 `json:"learning_rate"`
	Momentum     float64 `json:"momentum,omitempty"` // sgd
	Beta1        float64 `json:"beta1,omitempty"`    // adam, default 0.9
	Beta2        float64 `json:"beta2,omitempty"`    // adam, default 0.999
	Epsilon      float64 `json:"epsilon,omitempty"`  // adam, default 1e-8
	WeightDecay  float64 `json:"weight_decay,omitempty"`
}

// Schedule changes the learning rate by epoch: constant, step (times Gamma
// every StepEpochs) or cosine (down to MinLearningRate at the last epoch).
type Schedule struct {
	Type            string  `json:"type"`
	StepEpochs      int     `json:"step_epochs,omitempty"`
	Gamma           float64 `json:"gamma,omitempty"`
	MinLearningRate float64 `json:"min_learning_rate,omitempty"`
}

// Dataset is the data a train job learns from: a UnixFS file or folder by
// CID, in IDX (as MNIST ships it, gzip or not) or CSV. Evaluation uses the
// test files when given, else EvalSplit of the training examples.
type Dataset struct {
	CID    string `json:"cid"`
	Format string `json:"format"`
	// IDX: paths inside the dataset folder (MNIST's names by default).
	TrainImages string `json:"train_images,omitempty"`
	TrainLabels string `json:"train_labels,omitempty"`
	TestImages  string `json:"test_images,omitempty"`
	TestLabels  string `json:"test_labels,omitempty"`
	// CSV: one example per row, numbers only; the label column holds the
	// class (cross_entropy) or the target (mse).
	TrainFile   string `json:"train_file,omitempty"`
	TestFile    string `json:"test_file,omitempty"`
	Header      bool   `json:"header,omitempty"`
	LabelColumn *int   `json:"label_column,omitempty"` // default: the last column
	// Scale multiplies every feature (IDX default 1/255, CSV default 1).
	Scale     float64 `json:"scale,omitempty"`
	EvalSplit float64 `json:"eval_split,omitempty"`
}

// Normalize fills the defaults of fields left out (the job spec's
// Normalize calls it).
func (t *Spec) Normalize() {
	if t.BatchSize == 0 {
		t.BatchSize = DefaultBatchSize
	}
	if t.LogSteps == 0 {
		t.LogSteps = DefaultLogSteps
	}
	if t.Schedule == nil {
		t.Schedule = &Schedule{Type: ScheduleConstant}
	}
	if t.Optimizer.Type == OptimizerAdam {
		if t.Optimizer.Beta1 == 0 {
			t.Optimizer.Beta1 = defaultBeta1
		}
		if t.Optimizer.Beta2 == 0 {
			t.Optimizer.Beta2 = defaultBeta2
		}
		if t.Optimizer.Epsilon == 0 {
			t.Optimizer.Epsilon = defaultEpsilon
		}
	}
	for i := range t.Model.Layers {
		l := &t.Model.Layers[i]
		switch l.Type {
		case LayerConv2D:
			if l.Stride == 0 {
				l.Stride = 1
			}
		case LayerMaxPool:
			if l.Size == 0 {
				l.Size = 2
			}
			if l.Stride == 0 {
				l.Stride = l.Size
			}
		}
	}
	d := &t.Dataset
	switch d.Format {
	case DatasetIDX:
		if d.TrainImages == "" && d.TrainLabels == "" {
			d.TrainImages, d.TrainLabels = defaultTrainImage, defaultTrainLabel
			if d.TestImages == "" && d.TestLabels == "" {
				d.TestImages, d.TestLabels = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
			}
		}
		if d.Scale == 0 {
			d.Scale = defaultIDXScale
		}
	case DatasetCSV:
		if d.Scale == 0 {
			d.Scale = 1
		}
	}
	if d.EvalSplit == 0 && d.TestImages == "" && d.TestFile == "" {
		d.EvalSplit = DefaultEvalSplit
	}
}

// Validate reports every problem of a normalized train section, each
// naming its field as a path in the job spec ("train.loss"); shape errors
// name the layer. checkCID checks the dataset's CID: this package leaves
// the encoding of CIDs to its caller.
func (t Spec) Validate(checkCID func(string) error) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	shapes, err := t.Model.Shapes()
	if err != nil {
		bad("train.model", "%v", err)
	}
	switch t.Loss {
	case LossCrossEntropy, LossMSE:
	case "":
		bad("train.loss", "required (cross_entropy, mse)")
	default:
		bad("train.loss", "%q is not one of cross_entropy, mse", t.Loss)
	}
	if err == nil && t.Loss == LossCrossEntropy {
		if last := shapes[len(shapes)-1]; len(last) != 1 || last[0] < 2 {
			bad("train.loss", "cross_entropy needs an output of at least 2 classes, the model gives %s", ShapeString(last))
		}
	}
	o := t.Optimizer
	switch o.Type {
	case OptimizerSGD:
		if o.Momentum < 0 || o.Momentum >= 1 {
			bad("train.optimizer.momentum", "%g is outside [0, 1)", o.Momentum)
		}
	case OptimizerAdam:
		if o.Beta1 <= 0 || o.Beta1 >= 1 {
			bad("train.optimizer.beta1", "%g is outside (0, 1)", o.Beta1)
		}
		if o.Beta2 <= 0 || o.Beta2 >= 1 {
			bad("train.optimizer.beta2", "%g is outside (0, 1)", o.Beta2)
		}
		if o.Epsilon <= 0 {
			bad("train.optimizer.epsilon", "%g must be positive", o.Epsilon)
		}
		if o.Momentum != 0 {
			bad("train.optimizer.momentum", "only for sgd (adam has beta1)")
		}
	case "":
		bad("train.optimizer.type", "required (sgd, adam)")
	default:
		bad("train.optimizer.type", "%q is not one of sgd, adam", o.Type)
	}
	if !(o.LearningRate > 0 && o.LearningRate <= 10) {
		bad("train.optimizer.learning_rate", "%g is outside (0, 10]", o.LearningRate)
	}
	if o.WeightDecay < 0 || o.WeightDecay >= 1 || math.IsNaN(o.WeightDecay) {
		bad("train.optimizer.weight_decay", "%g is outside [0, 1)", o.WeightDecay)
	}
	if t.Schedule == nil {
		// A spec from a peer may not be normalized.
		bad("train.schedule", "required")
		t.Schedule = &Schedule{Type: ScheduleConstant}
	}
	switch s := t.Schedule; s.Type {
	case ScheduleConstant:
	case ScheduleStep:
		if s.StepEpochs < 1 {
			bad("train.schedule.step_epochs", "%d must be at least 1", s.StepEpochs)
		}
		if !(s.Gamma > 0 && s.Gamma <= 1) {
			bad("train.schedule.gamma", "%g is outside (0, 1]", s.Gamma)
		}
	case ScheduleCosine:
		if s.MinLearningRate < 0 || s.MinLearningRate > o.LearningRate {
			bad("train.schedule.min_learning_rate", "%g is outside [0, learning_rate]", s.MinLearningRate)
		}
	default:
		bad("train.schedule.type", "%q is not one of constant, step, cosine", s.Type)
	}
	if t.BatchSize < 1 || t.BatchSize > maxBatch {
		bad("train.batch_size", "%d is outside 1..%d", t.BatchSize, maxBatch)
	}
	if t.Epochs < 1 || t.Epochs > maxEpochs {
		bad("train.epochs", "%d is outside 1..%d", t.Epochs, maxEpochs)
	}
	if t.CheckpointEpochs < 0 || t.CheckpointEpochs > t.Epochs {
		bad("train.checkpoint_epochs", "%d is outside 0..epochs", t.CheckpointEpochs)
	}
	if t.LogSteps < 1 {
		bad("train.log_steps", "%d must be at least 1", t.LogSteps)
	}
	t.Dataset.validate(bad, checkCID)
	return errors.Join(errs...)
}

func (d Dataset) validate(bad func(field, format string, args ...any), checkCID func(string) error) {
	if err := checkCID(d.CID); err != nil {
		bad("train.dataset.cid", "%v", err)
	}
	files := map[string]string{}
	switch d.Format {
	case DatasetIDX:
		files = map[string]string{"train_images": d.TrainImages, "train_labels": d.TrainLabels,
			"test_images": d.TestImages, "test_labels": d.TestLabels}
		if (d.TestImages == "") != (d.TestLabels == "") {
			bad("train.dataset.test_images", "test_images and test_labels go together")
		}
		if d.TrainImages == "" || d.TrainLabels == "" {
			bad("train.dataset.train_images", "train_images and train_labels are required together")
		}
		if d.TrainFile != "" || d.TestFile != "" || d.Header || d.LabelColumn != nil {
			bad("train.dataset", "train_file, test_file, header and label_column are for csv")
		}
	case DatasetCSV:
		files = map[string]string{"train_file": d.TrainFile, "test_file": d.TestFile}
		if d.TrainImages != "" || d.TrainLabels != "" || d.TestImages != "" || d.TestLabels != "" {
			bad("train.dataset", "train_images, train_labels, test_images and test_labels are for idx")
		}
		if d.LabelColumn != nil && *d.LabelColumn < 0 {
			bad("train.dataset.label_column", "%d is negative", *d.LabelColumn)
		}
	case "":
		bad("train.dataset.format", "required (idx, csv)")
	default:
		bad("train.dataset.format", "%q is not one of idx, csv", d.Format)
	}
	for name, p := range files {
		if p != "" && (path.IsAbs(p) || path.Clean(p) != p || strings.HasPrefix(p, "..")) {
			bad("train.dataset."+name, "%q must be a clean relative path inside the dataset", p)
		}
	}
	if !(d.Scale > 0) || math.IsInf(d.Scale, 0) {
		bad("train.dataset.scale", "%g must be a positive number", d.Scale)
	}
	if d.EvalSplit < 0 || d.EvalSplit >= 1 {
		bad("train.dataset.eval_split", "%g is outside [0, 1)", d.EvalSplit)
	}
}
