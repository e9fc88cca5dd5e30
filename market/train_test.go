package market

import (
	"strings"
	"testing"
)

// trainBase is a small train job; package trainspec tests the schema
// itself on specs of its own.
const trainBase = `{"kind":"train","train":{
	"model":{"input":[4],"layers":[{"type":"dense","units":8},{"type":"relu"},{"type":"dense","units":3}]},
	"loss":"cross_entropy","optimizer":{"type":"adam","learning_rate":0.01},"epochs":1,"seed":1,
	"dataset":{"cid":"` + testCID + `","format":"csv","train_file":"d.csv"}}}`

// TestTrainSpec: a job spec fills and validates its train section (whose
// schema package trainspec tests) and declares the train outputs.
func TestTrainSpec(t *testing.T) {
	s, err := ParseSpec([]byte(trainBase))
	if err != nil {
		t.Fatal(err)
	}
	if s.Train.Optimizer.Beta2 != 0.999 || s.Train.Schedule == nil {
		t.Errorf("the train section's defaults are not filled: %+v", s.Train)
	}
	names := map[string]bool{}
	for _, o := range s.Outputs {
		names[o.Name] = true
	}
	if !names[OutputModel] || !names[OutputMetrics] || !names[OutputCheckpoints] {
		t.Errorf("outputs %+v lack the train outputs", s.Outputs)
	}
	if cids := s.Contents(); len(cids) != 1 || cids[0].CID != testCID {
		t.Errorf("CIDs = %v", cids)
	}
}

func TestTrainSpecErrors(t *testing.T) {
	cases := []struct{ name, from, to, want string }{
		{"layer misfit", `{"type":"relu"}`, `{"type":"maxpool"}`,
			"train.model: layers[1] (maxpool): input is 8; maxpool needs [height, width, channels]"},
		{"unknown field", `"seed":1`, `"seed":1,"warmup":3`, "train.warmup: unknown field"},
		{"bad dataset cid", `"cid":"` + testCID + `"`, `"cid":"nope"`, `train.dataset.cid: "nope" is not a CID`},
		{"dataset name taken", `{"kind":"train",`, `{"kind":"train","inputs":[{"name":"dataset","cid":"` + testCID + `"}],`,
			`inputs[0].name: "dataset" is where a train job's dataset goes`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := strings.Replace(trainBase, c.from, c.to, 1)
			if spec == trainBase {
				t.Fatalf("%q is not in the base spec", c.from)
			}
			_, err := ParseSpec([]byte(spec))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParseSpec = %v, want an error containing %q", err, c.want)
			}
		})
	}
	if _, err := ParseSpec([]byte(`{"kind":"wasm","wasm":{"module":"` + testCID + `"},"train":{}}`)); err == nil || !strings.Contains(err.Error(), "train: only for kind train") {
		t.Errorf("a train section on a wasm job: %v", err)
	}
}

// TestSpecRefusesModelOverMemory: at submit, a model whose activations
// alone pass memory_mib is refused with the estimate.
func TestSpecRefusesModelOverMemory(t *testing.T) {
	raw := `{"kind":"train","resources":{"memory_mib":16},"train":{"model":{"input":[64,64,1],"layers":[
		{"type":"conv2d","filters":4096,"kernel":3,"padding":1},{"type":"flatten"},{"type":"dense","units":10},{"type":"softmax"}]},
		"loss":"cross_entropy","optimizer":{"type":"sgd","learning_rate":0.1},"epochs":1,"batch_size":200,
		"dataset":{"cid":"bafkqaaa","format":"idx"}}}`
	_, err := ParseSpec([]byte(raw))
	if err == nil || !strings.Contains(err.Error(), "resources.memory_mib") || !strings.Contains(err.Error(), "activations") {
		t.Fatalf("ParseSpec = %v, want a memory_mib error with the estimate", err)
	}
}
