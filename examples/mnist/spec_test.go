// Package mnist holds the MNIST training examples: spec.json (a multilayer
// perceptron) and cnn.json (a convolutional network for GPUs). This test
// keeps them valid job specs.
package mnist

import (
	"os"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/market"
)

func TestSpecsParse(t *testing.T) {
	for _, name := range []string{"spec.json", "cnn.json"} {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		// The CLI replaces the local dataset path by its CID before submitting.
		raw = []byte(strings.Replace(string(raw), `"../../.cache/mnist"`, `"bafkqaaa"`, 1))
		s, err := market.ParseSpec(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Kind != market.KindTrain || s.Train.Dataset.TestImages == "" {
			t.Errorf("%s: %+v", name, s)
		}
	}
}
