package jobs

import (
	"path/filepath"
	"testing"

	"github.com/cyxwiz/cyxwiz/market"
	bolt "go.etcd.io/bbolt"
)

// A replica counts for its provider's reputation by its verdict, not by
// its success alone: a caught cheater's replicas count as failures after
// a restart too.
func TestReplicaTally(t *testing.T) {
	ok := market.StateSucceeded
	jobs := []*Job{
		{ID: "plain", State: ok, Provider: "p1"},
		{ID: "agree", State: ok, Provider: "p1", Parent: "x", Verdict: VerdictAgree},
		{ID: "unchecked", State: ok, Provider: "p1", Parent: "y", Verdict: VerdictUnchecked},
		{ID: "mismatch", State: ok, Provider: "p2", Parent: "x", Verdict: VerdictMismatch},
		{ID: "undecided", State: ok, Provider: "p3", Parent: "z"},
	}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "jobs.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := openStore(db)
	if err != nil {
		t.Fatal(err)
	}
	rq := newRequester(&core{store: s}, nil)
	rq.resume(jobs)
	want := map[string]market.Outcomes{"p1": {Succeeded: 3}, "p2": {Failed: 1}}
	for _, p := range []string{"p1", "p2", "p3"} {
		if got := rq.outcomes(p); got != want[p] {
			t.Errorf("outcomes(%s) = %+v, want %+v", p, got, want[p])
		}
	}
}
