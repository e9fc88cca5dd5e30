package jobs

import (
	"slices"
	"testing"

	"github.com/cyxwiz/cyxwiz/market"
)

// Attack: results that are failures carry no outputs, so sameResult
// compares them on status and exit code alone. Two providers that run
// nothing and answer "exit code 1" agree with each other without knowing
// anything about the job, outvote the one provider that ran it, and the
// honest replica is the one judged a mismatch (not paid, blamed with
// fault provider). The same holds for two unrelated failures that share
// an exit code: a wall-time stop and a deadline stop are both -1.
func TestAttackFailuresAgreeOnExitCodeAlone(t *testing.T) {
	wasm := market.Spec{Kind: market.KindWASM}
	honest := &market.Result{Status: market.StatusSucceeded,
		Outputs: []market.OutputRef{{Name: "result", CID: "bafkreihonest"}}, LogCID: "bafkreihonestlog"}
	lazyA := &market.Result{Status: market.StatusFailed, ExitCode: 1, Reason: "exit: exit code 1", LogCID: "bafkreiloga"}
	lazyB := &market.Result{Status: market.StatusFailed, ExitCode: 1, Reason: "exit: exit code 1", LogCID: "bafkreilogb"}

	t.Run("two lazy failures outvote a computed success", func(t *testing.T) {
		ids := []string{"honest", "lazyA", "lazyB"}
		groups := groupResults(wasm, ids, []*market.Result{honest, lazyA, lazyB})
		win, ok := majority(groups, 3)
		if ok && !slices.Contains(win.ids, "honest") {
			t.Errorf("replicas %v won with a failure that shows no evidence of a run (logs %s and %s differ); the honest replica that computed the outputs is judged a mismatch",
				win.ids, lazyA.LogCID, lazyB.LogCID)
		}
	})
	t.Run("different failures with one exit code agree", func(t *testing.T) {
		wall := &market.Result{Status: market.StatusFailed, ExitCode: -1, Reason: "wall-time: ran past its wall-time limit of 30s", LogCID: "bafkreiwall"}
		stopped := &market.Result{Status: market.StatusFailed, ExitCode: -1, Reason: "cancelled: stopped: context deadline exceeded"}
		trap := &market.Result{Status: market.StatusFailed, ExitCode: -1, Reason: "trap: unreachable", LogCID: "bafkreitrap"}
		for _, pair := range [][2]*market.Result{{wall, stopped}, {wall, trap}} {
			if same, _ := sameResult(wasm, pair[0], pair[1]); same {
				t.Errorf("%q and %q count as the same result", pair[0].Reason, pair[1].Reason)
			}
		}
	})
}
