package node

import (
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/node/api"
)

// TestAgree: the answer of a strict majority of replicas wins and the
// others are named; without a majority the call fails naming them all.
func TestAgree(t *testing.T) {
	good := [][]float32{{0.1, 0.9}}
	nearly := [][]float32{{0.10004, 0.89996}}
	bad := [][]float32{{0.9, 0.1}}
	ans := func(p string, out [][]float32) api.InferCallResult {
		return api.InferCallResult{Provider: p, Outputs: out}
	}

	r, err := agree("s", []api.InferCallResult{ans("a", good), ans("b", bad), ans("c", nearly)})
	if err != nil || r.Replicas != 3 || len(r.Mismatched) != 1 || r.Mismatched[0] != "b" || r.Outputs[0][1] < 0.89 {
		t.Errorf("two agree, one lies: %+v, %v", r, err)
	}
	if _, err := agree("s", []api.InferCallResult{ans("a", good), ans("b", bad)}); err == nil || !strings.Contains(err.Error(), "a, b") {
		t.Errorf("two that disagree: %v", err)
	}
	if _, err := agree("s", []api.InferCallResult{ans("a", good), ans("b", [][]float32{{0.1, 0.9}, {0.5, 0.5}})}); err == nil {
		t.Error("answers of different shapes agreed")
	}
	if r, err := agree("s", []api.InferCallResult{ans("a", good)}); err != nil || r.Replicas != 0 {
		t.Errorf("one replica: %+v, %v", r, err)
	}
}
