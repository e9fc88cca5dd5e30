package train

import (
	"encoding/json"
	"testing"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/compute/computetest"
	"github.com/cyxwiz/cyxwiz/trainspec"
)

// TestConformance runs the executor suite on train jobs: a program is a
// train spec as JSON, and its dataset is /in/dataset.
func TestConformance(t *testing.T) {
	data := map[string][]byte{trainspec.DatasetDir + "/xor.csv": xorCSV(200, 1)}
	program := func(change func(*trainspec.Spec), inputs map[string][]byte) computetest.Program {
		s := xorSpec(t)
		s.Epochs, s.CheckpointEpochs = 2, 0
		change(&s)
		code, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return computetest.Program{Code: code, Inputs: inputs}
	}
	same := func(*trainspec.Spec) {}
	badData := map[string][]byte{trainspec.DatasetDir + "/xor.csv": []byte("x,y,label\n0.5,0.5,0\n0.1,oops,1\n")}
	staged := program(same, nil)
	computetest.Run(t, newTestExecutor(t, ExecutorConfig{}), computetest.Programs{
		Hello:    program(same, data),
		Greeting: "training on",
		Output:   program(same, data),
		Outputs:  map[string][]byte{"model.safetensors": nil, "metrics.jsonl": nil},
		Fail:     computetest.Failure{Program: program(same, badData), Reason: compute.ReasonBadInput, ExitCode: 1},
		Loop: program(func(s *trainspec.Spec) {
			s.Model.Layers[0].Units = 256
			s.Epochs, s.BatchSize = 10000, 1
		}, data),
		Alloc: program(func(s *trainspec.Spec) {
			s.Model.Layers = []trainspec.Layer{{Type: trainspec.LayerDense, Units: 4096}, {Type: trainspec.LayerTanh},
				{Type: trainspec.LayerDense, Units: 4096}, {Type: trainspec.LayerDense, Units: 2}}
		}, data),
		ReadOutside: computetest.Failure{Program: program(func(s *trainspec.Spec) {
			s.Dataset.TrainFile = "../../../../../../../../../../etc/passwd"
		}, data), Reason: compute.ReasonBadInput, ExitCode: 1},
		Lines: program(func(s *trainspec.Spec) {
			s.Epochs, s.LogSteps = 50, 1<<30
		}, data),
		Line:    "(epoch, ",
		Garbage: []byte("not a train spec"),
		Staged: computetest.Staged{Spec: staged.Code,
			Content: map[string]map[string][]byte{"bafkqaaa": {"xor.csv": data[trainspec.DatasetDir+"/xor.csv"]}}},
	})
}
