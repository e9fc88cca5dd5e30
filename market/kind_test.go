package market

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestKindHelpers: what the provider asks of a spec and a result without
// branching on the job's kind itself.
func TestKindHelpers(t *testing.T) {
	wasm := Spec{Kind: KindWASM, WASM: &WASMSpec{Module: testCID, Args: []string{"x"}}}
	section, err := wasm.Section()
	if err != nil {
		t.Fatal(err)
	}
	var back WASMSpec
	if err := json.Unmarshal(section, &back); err != nil || back.Module != testCID || !slices.Equal(back.Args, []string{"x"}) {
		t.Fatalf("wasm section %s: %+v, %v", section, back, err)
	}
	if _, err := (Spec{Kind: KindTrain, WASM: wasm.WASM}).Section(); err == nil {
		t.Fatal("a train spec with only a wasm section has a section")
	}
	if got := wasm.KeptOnFailure(); got != nil {
		t.Fatalf("a failed wasm job keeps %v", got)
	}
	if got := (Spec{Kind: KindTrain}).KeptOnFailure(); !slices.Equal(got, []string{OutputMetrics}) {
		t.Fatalf("a failed train job keeps %v", got)
	}

	var r Result
	r.AddOutput(KindWASM, OutputRef{Name: OutputModel, CID: "m", Size: 3})
	if r.ModelCID != "" || r.Usage.OutputBytes != 3 || len(r.Outputs) != 1 {
		t.Fatalf("a wasm output named model: %+v", r)
	}
	r = Result{}
	r.AddOutput(KindTrain, OutputRef{Name: OutputModel, CID: "m", Size: 3})
	r.AddOutput(KindTrain, OutputRef{Name: OutputMetrics, CID: "k", Size: 4})
	if r.ModelCID != "m" || r.MetricsCID != "k" || r.Usage.OutputBytes != 7 || len(r.Outputs) != 2 {
		t.Fatalf("train outputs: %+v", r)
	}
}

// TestEscrowTermsWire: the escrow terms of an award stay one flat object,
// the shape earlier versions sent and stored.
func TestEscrowTermsWire(t *testing.T) {
	b, err := json.Marshal(EscrowTerms{ArbiterPeer: "p"})
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"amount", "arbiter", "arbiter_peer", "deadline", "id", "mint", "multisig", "provider", "requester", "vault"}
	if !slices.Equal(keys, want) {
		t.Fatalf("escrow terms encode as %v, want %v", keys, want)
	}
}
