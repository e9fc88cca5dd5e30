package jobs

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	bolt "go.etcd.io/bbolt"
)

func TestJobIDs(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 1000 {
		id := newJobID()
		if err := market.CheckJobID(id); err != nil {
			t.Fatalf("newJobID() = %q: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("duplicate ID %s", id)
		}
		seen[id] = true
		// The first 9 characters hold the top 45 bits of the milliseconds.
		if id[:9] < prev[:min(9, len(prev))] {
			t.Fatalf("IDs do not sort by time: %s after %s", id, prev)
		}
		prev = id
	}
}

func TestStoreAndMoves(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "jobs.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := openStore(db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	j := &Job{ID: newJobID(), Role: RoleRequester, State: market.StateSubmitted, CreatedAt: now}
	if err := j.move(market.StateRunning, "skip"); err == nil {
		t.Fatal("submitted -> running allowed")
	}
	for _, st := range []market.State{market.StateBidding, market.StateAwarded, market.StateRunning} {
		if err := j.move(st, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.move(market.StateFailed, "boom"); err != nil || j.Reason != "boom" || len(j.Events) != 4 {
		t.Fatalf("move to failed: %v, %+v", err, j)
	}
	if err := s.put(j); err != nil {
		t.Fatal(err)
	}
	got, err := s.get(RoleRequester, j.ID, 0)
	if err != nil || got.State != market.StateFailed || got.Reason != "boom" {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if _, err := s.get(RoleRequester, "nope", 0); err == nil || !strings.Contains(err.Error(), "no such job") {
		t.Fatalf("get of a missing job = %v", err)
	}
	// A provider keeps one record per attempt.
	for attempt := 1; attempt <= 2; attempt++ {
		if err := s.put(&Job{ID: j.ID, Role: RoleProvider, Attempt: attempt, State: market.StateAccepted, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	provided, err := s.list(RoleProvider)
	if err != nil || len(provided) != 2 {
		t.Fatalf("provider records = %d, %v", len(provided), err)
	}
}

func TestClaimVault(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "jobs.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := openStore(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		vault, job string
		attempt    int
		want       bool
	}{
		{"V1", "job-a", 1, true},
		{"V1", "job-a", 1, true}, // the same award again (a retried award)
		{"V1", "job-b", 1, false},
		{"V1", "job-a", 2, false},
		{"V2", "job-b", 1, true},
	} {
		if got, err := s.claimVault(c.vault, c.job, c.attempt); err != nil || got != c.want {
			t.Errorf("claimVault(%s, %s, %d) = %v, %v; want %v", c.vault, c.job, c.attempt, got, err, c.want)
		}
	}
}
