package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/compute/wasm"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/ipfs/go-cid"
)

// TestSectionsStage: the section of each kind of a market spec is one
// its executor reads, and the executor asks for what the section names.
func TestSectionsStage(t *testing.T) {
	we, err := wasm.New(wasm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer we.Close(context.Background())
	te, err := train.NewExecutor(train.ExecutorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wasmSpec := testSpec(t)
	wasmSpec.WASM.Args, wasmSpec.WASM.Env = []string{"a", "b"}, map[string]string{"K": "v"}
	trainJSON, err := os.ReadFile("../examples/mnist/spec.json")
	if err != nil {
		t.Fatal(err)
	}
	// The example names a local path for the CLI to add; a market spec
	// carries the CID that adding it gave.
	trainJSON = bytes.Replace(trainJSON, []byte("../../.cache/mnist"), []byte(testModule), 1)
	trainSpec, err := market.ParseSpec(trainJSON)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		exec compute.Executor
		spec market.Spec
		want string
	}{
		{we, wasmSpec, wasmSpec.WASM.Module},
		{te, trainSpec, trainSpec.Train.Dataset.CID},
	} {
		t.Run(c.exec.Kind(), func(t *testing.T) {
			section, err := c.spec.Section()
			if err != nil {
				t.Fatal(err)
			}
			j := compute.Job{Spec: section, InDir: t.TempDir()}
			src := &askedSource{}
			if err := c.exec.Stage(context.Background(), &j, src); err == nil || !slices.Equal(src.asked, []string{c.want}) {
				t.Fatalf("stage: %v, asked for %v; want the source's error, asked for [%s]", err, src.asked, c.want)
			}
		})
	}
	if _, err := (market.Spec{Kind: market.KindWASM}).Section(); err == nil {
		t.Fatal("a wasm spec without its section has one")
	}
}

// askedSource records what it is asked for and holds nothing.
type askedSource struct{ asked []string }

func (s *askedSource) Fetch(_ context.Context, what, id, _ string, _ int64) error {
	s.asked = append(s.asked, id)
	return fmt.Errorf("%s %s: not here", what, id)
}

func (s *askedSource) Read(_ context.Context, what, id string, _ int64) ([]byte, error) {
	s.asked = append(s.asked, id)
	return nil, fmt.Errorf("%s %s: not here", what, id)
}

// TestSourceReadLimitOnCacheHit: bytes kept in memory for an earlier job
// still meet the limit of the caller that reads them now.
func TestSourceReadLimitOnCacheHit(t *testing.T) {
	id, err := cid.Decode(testModule)
	if err != nil {
		t.Fatal(err)
	}
	var mods moduleCache
	big := make([]byte, 100)
	if _, err := mods.get(context.Background(), id, func() ([]byte, error) { return big, nil }); err != nil {
		t.Fatal(err)
	}
	var usage market.Usage
	src := &source{modules: &mods, usage: &usage}
	if _, err := src.Read(context.Background(), "module", testModule, 50); !errors.Is(err, errInputsTooLarge) {
		t.Fatalf("a cached 100-byte file read within 50: %v", err)
	}
	if b, err := src.Read(context.Background(), "module", testModule, 100); err != nil || len(b) != 100 || usage.InputBytes != 100 {
		t.Fatalf("read within 100: %d bytes, %v, input %d", len(b), err, usage.InputBytes)
	}
}
