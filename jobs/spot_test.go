package jobs

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	bolt "go.etcd.io/bbolt"
)

// The draw checks the share of jobs its rate asks for: many draws, each
// share within 6 standard deviations of the rate.
func TestDrawSpot(t *testing.T) {
	const draws = 100_000
	for _, rate := range []float64{0.01, 0.2, 0.5, 0.9} {
		checked := 0
		for range draws {
			if drawSpot(rate) {
				checked++
			}
		}
		share := float64(checked) / draws
		if sd := math.Sqrt(rate * (1 - rate) / draws); math.Abs(share-rate) > 6*sd {
			t.Errorf("drawSpot(%g): %d of %d draws checked (%.4f), want about %g", rate, checked, draws, share, rate)
		}
	}
	for range 10_000 {
		if !drawSpot(1) {
			t.Fatal("drawSpot(1) = false, want every job checked")
		}
	}
	for range 10_000 {
		if spotDraw(1e-12) != SpotUnchecked {
			t.Fatal("spotDraw(1e-12) drew a check")
		}
	}
}

func TestSpotReplicas(t *testing.T) {
	replicate := market.Spec{Verification: &market.Verification{Mode: market.VerifyReplicate, Replicas: 3}}
	spot := market.Spec{Verification: &market.Verification{Mode: market.VerifySpot, Rate: 0.2}}
	tests := []struct {
		name         string
		job          Job
		wanted, runs int
	}{
		{"replicate 3", Job{Spec: replicate}, 3, 3},
		{"spot checked", Job{Spec: spot, Spot: SpotChecked}, 2, 1},
		{"spot unchecked", Job{Spec: spot, Spot: SpotUnchecked}, 1, 1},
	}
	for _, tt := range tests {
		if got := tt.job.replicasWanted(); got != tt.wanted {
			t.Errorf("%s: replicasWanted() = %d, want %d", tt.name, got, tt.wanted)
		}
		if got := tt.job.firstReplicas(); got != tt.runs {
			t.Errorf("%s: firstReplicas() = %d, want %d", tt.name, got, tt.runs)
		}
	}
}

// What a provider receives of a spot-checked job's replica is what it
// receives of any job: the same spec, less nothing but the verification,
// which reads none as it does for a job that asks for no check.
func TestSpotReplicaIsQuiet(t *testing.T) {
	raw := `{"kind":"wasm","wasm":{"module":"bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"},
		"limits":{"wall_seconds":30},"verification":{"mode":"%s"%s}}`
	plain, err := market.ParseSpec([]byte(fmt.Sprintf(raw, "none", "")))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(plain)
	rq := &requester{core: &core{}}
	for _, draw := range []string{SpotChecked, SpotUnchecked} {
		spec, err := market.ParseSpec([]byte(fmt.Sprintf(raw, "spot", `,"rate":0.25`)))
		if err != nil {
			t.Fatal(err)
		}
		parent := &Job{ID: newJobID(), Spec: spec, Spot: draw}
		r := rq.newReplica(parent, time.Now().UTC())
		got, _ := json.Marshal(r.Spec)
		if string(got) != string(want) {
			t.Errorf("%s: replica spec %s, want the plain job's %s", draw, got, want)
		}
		if r.Spot != "" {
			t.Errorf("%s: replica records a draw %q", draw, r.Spot)
		}
	}
}

// The draw is stored with the job: a restart reads it back, it does not
// draw again.
func TestSpotDrawStored(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "jobs.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := openStore(db)
	if err != nil {
		t.Fatal(err)
	}
	spec := market.Spec{Verification: &market.Verification{Mode: market.VerifySpot, Rate: 0.5}}
	for _, draw := range []string{SpotChecked, SpotUnchecked} {
		j := &Job{ID: newJobID(), Role: RoleRequester, State: market.StateSubmitted, Spec: spec, Spot: draw}
		if err := s.put(j); err != nil {
			t.Fatal(err)
		}
		got, err := s.get(RoleRequester, j.ID, 0)
		if err != nil || got.Spot != draw || got.replicasWanted() != j.replicasWanted() {
			t.Errorf("stored %s, read back %+v, %v", draw, got, err)
		}
	}
}
