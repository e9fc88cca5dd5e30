package jobs

import (
	"testing"

	"github.com/cyxwiz/cyxwiz/market"
)

func TestReplicaMajority(t *testing.T) {
	wasm := market.Spec{Kind: market.KindWASM}
	ok := func(cid string) *market.Result {
		return &market.Result{Status: market.StatusSucceeded, Outputs: []market.OutputRef{{Name: "out", CID: cid}}}
	}
	exit7 := &market.Result{Status: market.StatusFailed, ExitCode: 7}
	tests := []struct {
		name    string
		n       int
		results []*market.Result
		want    int // the winning group's size, 0 for none
	}{
		{"all agree", 3, []*market.Result{ok("a"), ok("a"), ok("a")}, 3},
		{"one differs", 3, []*market.Result{ok("a"), ok("b"), ok("a")}, 2},
		{"tie of two", 2, []*market.Result{ok("a"), ok("b")}, 0},
		{"tie broken", 2, []*market.Result{ok("a"), ok("b"), ok("a")}, 2},
		{"all differ", 3, []*market.Result{ok("a"), ok("b"), ok("c")}, 0},
		{"too few votes", 3, []*market.Result{ok("a")}, 0},
		{"failure agreed", 2, []*market.Result{exit7, exit7}, 2},
		{"failure against success", 2, []*market.Result{exit7, ok("a")}, 0},
		{"equal large groups", 2, []*market.Result{ok("a"), ok("b"), ok("a"), ok("b")}, 0},
	}
	for _, tt := range tests {
		ids := make([]string, len(tt.results))
		for i := range ids {
			ids[i] = string(rune('A' + i))
		}
		win, found := majority(groupResults(wasm, ids, tt.results), tt.n)
		if got := len(win.ids); found != (tt.want > 0) || got != tt.want {
			t.Errorf("%s: majority = %d (%v), want %d", tt.name, got, found, tt.want)
		}
	}
}

func TestSameResultTrain(t *testing.T) {
	cpu := market.Spec{Kind: market.KindTrain}
	gpu := market.Spec{Kind: market.KindTrain, Resources: market.Resources{GPU: &market.GPUReq{Count: 1}}}
	res := func(model string, loss, seconds float64) *market.Result {
		return &market.Result{Status: market.StatusSucceeded, ModelCID: model,
			Metrics: map[string]float64{"loss": loss, "seconds": seconds}}
	}
	tests := []struct {
		name string
		spec market.Spec
		a, b *market.Result
		want bool
	}{
		{"cpu same weights, other time", cpu, res("w", 0.5, 1), res("w", 0.5, 9), true},
		{"cpu other weights", cpu, res("w", 0.5, 1), res("v", 0.5, 1), false},
		{"cpu loss off by a little", cpu, res("w", 0.5, 1), res("w", 0.5001, 1), false},
		{"gpu other weights, loss within tolerance", gpu, res("w", 0.5, 1), res("v", 0.505, 1), true},
		{"gpu loss past tolerance", gpu, res("w", 0.5, 1), res("w", 0.52, 1), false},
	}
	for _, tt := range tests {
		if got, why := sameResult(tt.spec, tt.a, tt.b); got != tt.want {
			t.Errorf("%s: sameResult = %v (%s), want %v", tt.name, got, why, tt.want)
		}
	}
}

func TestPublicPrefixes(t *testing.T) {
	got := publicPrefixes([]string{"/ip4/127.0.0.1/tcp/4001", "/ip4/192.168.1.5/tcp/4001", "/ip4/8.8.8.8/tcp/4001",
		"/ip4/8.8.8.9/udp/4001/quic-v1", "/ip6/2001:4860:4860::8888/tcp/4001", "not an address"})
	want := []string{"8.8.8.0/24", "2001:4860:4860::/48"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("publicPrefixes = %q, want %q", got, want)
	}
}
