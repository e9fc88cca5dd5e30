package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/node/devnet"
)

// TestDeployAndInfer: model deploy puts weights on a provider of a
// devnet, infer calls them and prints each example's class, a call of the
// wrong shape names the shape, deployments lists the deployment and
// undeploy ends it.
func TestDeployAndInfer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts nodes")
	}
	dir := t.TempDir()
	d, err := devnet.Start(t.Context(), devnet.Params{Dir: filepath.Join(dir, "devnet"), Nodes: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	repo := filepath.Join(dir, "devnet", "node0")

	// A 2-input classifier that picks class 1 when x > y.
	var w bytes.Buffer
	if err := train.WriteSafetensors(&w, []train.NamedTensor{
		{Name: "layers.0.bias", Shape: []int{2}, Data: []float32{0, 0}},
		{Name: "layers.0.weight", Shape: []int{2, 2}, Data: []float32{-4, 4, 4, -4}},
	}, map[string]string{"format": train.ModelFormat, "loss_function": "cross_entropy",
		"model": `{"input":[2],"layers":[{"type":"dense","units":2},{"type":"softmax"}]}`}); err != nil {
		t.Fatal(err)
	}
	weights := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(weights, w.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "--repo", repo, "add", "-q", weights)
	if code != 0 {
		t.Fatalf("add: %s", errOut)
	}
	cid := strings.TrimSpace(out)
	for range 100 {
		if _, out, _ := runCLI(t, "--repo", repo, "providers"); strings.Count(out, "12D3") >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out, errOut = runCLI(t, "--repo", repo, "model", "deploy", cid, "--max-hours", "0.5", "--service", "cmp")
	if code != 0 {
		t.Fatalf("model deploy: %s", errOut)
	}
	if lines := strings.Fields(out); len(lines) != 2 || lines[0] != "cmp" {
		t.Fatalf("model deploy printed %q, want the service and one job", out)
	}
	job := strings.Fields(out)[1]
	id := "cmp"
	input := filepath.Join(dir, "input.json")
	os.WriteFile(input, []byte(`[[1, -1], [-1, 1]]`), 0o644)
	deadline := time.Now().Add(time.Minute)
	for {
		code, out, errOut = runCLI(t, "--repo", repo, "infer", id, input)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("infer never answered: %s", errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out, "example 0: class 1") || !strings.Contains(out, "example 1: class 0") {
		t.Errorf("infer printed:\n%s", out)
	}
	os.WriteFile(input, []byte(`{"examples": [[1, 2, 3]]}`), 0o644)
	if code, _, errOut := runCLI(t, "--repo", repo, "infer", id, input); code != 1 || !strings.Contains(errOut, "the model takes 2 = 2") {
		t.Errorf("infer of the wrong shape: exit %d, %q", code, errOut)
	}
	os.WriteFile(input, []byte(`not json`), 0o644)
	if code, _, errOut := runCLI(t, "--repo", repo, "infer", id, input); code != 1 || !strings.Contains(errOut, "want a JSON array") {
		t.Errorf("infer of a bad file: exit %d, %q", code, errOut)
	}
	if _, out, _ := runCLI(t, "--repo", repo, "model", "deployments"); !strings.Contains(out, job) || !strings.Contains(out, "cmp") || !strings.Contains(out, "running") {
		t.Errorf("deployments:\n%s", out)
	}
	if code, _, errOut := runCLI(t, "--repo", repo, "model", "deploy", cid, "--replicas", "0"); code != 2 || !strings.Contains(errOut, "--replicas 0") {
		t.Errorf("deploy of no replicas: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "--repo", repo, "model", "deploy", "no-such-model"); code != 1 || !strings.Contains(errOut, "indexer") {
		t.Errorf("deploy of a model record with no indexer to ask: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "--repo", repo, "model", "undeploy", job); code != 0 {
		t.Fatalf("undeploy: %s", errOut)
	}
}
