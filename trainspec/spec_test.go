package trainspec

import (
	"errors"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/internal/strictjson"
)

const testCID = "bafkqaaa"

const base = `{
	"model":{"input":[28,28,1],"layers":[
		{"type":"conv2d","filters":8,"kernel":3,"padding":1},{"type":"relu"},
		{"type":"maxpool"},{"type":"flatten"},{"type":"dropout","rate":0.25},
		{"type":"dense","units":10},{"type":"softmax"}]},
	"loss":"cross_entropy","optimizer":{"type":"adam","learning_rate":0.001},
	"batch_size":64,"epochs":2,"seed":1,
	"dataset":{"cid":"` + testCID + `","format":"idx"}}`

// checkCID stands in for a real CID check: the test CID alone is one.
func checkCID(s string) error {
	if s != testCID {
		return errors.New("not a CID")
	}
	return nil
}

// parse decodes a train section as a job spec does: strictly, with its
// defaults filled, then validated.
func parse(raw string) (Spec, error) {
	var s Spec
	if err := strictjson.Decode([]byte(raw), &s); err != nil {
		return Spec{}, err
	}
	s.Normalize()
	return s, s.Validate(checkCID)
}

func TestSpec(t *testing.T) {
	s, err := parse(base)
	if err != nil {
		t.Fatal(err)
	}
	shapes, err := s.Model.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"28×28×1", "28×28×8", "28×28×8", "14×14×8", "1568", "1568", "10", "10"}
	for i, sh := range shapes {
		if got := ShapeString(sh); got != want[i] {
			t.Errorf("shape %d = %s, want %s", i, got, want[i])
		}
	}
	if d := s.Dataset; d.TrainImages != "train-images-idx3-ubyte.gz" || d.TestLabels != "t10k-labels-idx1-ubyte.gz" || d.Scale != 1.0/255 {
		t.Errorf("dataset defaults: %+v", d)
	}
	if s.Optimizer.Beta2 != 0.999 || s.Model.Layers[2].Stride != 2 || s.Schedule.Type != ScheduleConstant {
		t.Errorf("defaults: %+v", s)
	}
}

func TestSpecErrors(t *testing.T) {
	cases := []struct{ name, from, to, want string }{
		{"dense before flatten", `{"type":"flatten"},{"type":"dropout","rate":0.25},`, ``,
			"train.model: layers[3] (dense): input is 14×14×8; add a flatten layer before it"},
		{"kernel too big", `"kernel":3,"padding":1`, `"kernel":31`, "layers[0] (conv2d): kernel 31 does not fit input 28×28×1"},
		{"pool too big", `{"type":"maxpool"}`, `{"type":"maxpool","size":30}`, "layers[2] (maxpool): window 30 does not fit"},
		{"softmax in the middle", `{"type":"relu"},`, `{"type":"softmax"},`, "layers[1] (softmax): softmax must be the last layer"},
		{"field of another layer", `{"type":"relu"}`, `{"type":"relu","units":3}`, "layers[1] (relu): units does not apply to relu"},
		{"unknown layer", `{"type":"relu"}`, `{"type":"gelu"}`, `type "gelu" is not one of`},
		{"dropout rate", `"rate":0.25`, `"rate":1`, "layers[4] (dropout): rate 1 is outside [0, 1)"},
		{"image output", `{"type":"flatten"},{"type":"dropout","rate":0.25},
		{"type":"dense","units":10},{"type":"softmax"}`, `{"type":"relu"}`, "the output is 14×14×8"},
		{"loss", `"cross_entropy"`, `"hinge"`, `train.loss: "hinge" is not one of`},
		{"optimizer", `"adam"`, `"lbfgs"`, `train.optimizer.type: "lbfgs"`},
		{"momentum on adam", `"learning_rate":0.001`, `"learning_rate":0.001,"momentum":0.9`, "train.optimizer.momentum: only for sgd"},
		{"learning rate", `"learning_rate":0.001`, `"learning_rate":0`, "train.optimizer.learning_rate"},
		{"epochs", `"epochs":2`, `"epochs":0`, "train.epochs"},
		{"dataset format", `"format":"idx"`, `"format":"parquet"`, `train.dataset.format: "parquet"`},
		{"dataset path", `"format":"idx"`, `"format":"idx","train_images":"../x","train_labels":"y"`, "train.dataset.train_images"},
		{"csv fields on idx", `"format":"idx"`, `"format":"idx","header":true`, "train_file, test_file, header and label_column are for csv"},
		{"unknown field", `"seed":1`, `"seed":1,"warmup":3`, "warmup: unknown field"},
		{"bad dataset cid", `"cid":"` + testCID + `"`, `"cid":"nope"`, "train.dataset.cid: not a CID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := strings.Replace(base, c.from, c.to, 1)
			if spec == base {
				t.Fatalf("%q is not in the base spec", c.from)
			}
			_, err := parse(spec)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("parse = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestUnnormalizedSpec: a spec from a peer may lack its schedule; it is
// refused, not dereferenced.
func TestUnnormalizedSpec(t *testing.T) {
	s, err := parse(base)
	if err != nil {
		t.Fatal(err)
	}
	s.Schedule = nil
	if err := s.Validate(checkCID); err == nil || !strings.Contains(err.Error(), "train.schedule: required") {
		t.Errorf("Validate = %v, want train.schedule required", err)
	}
}
