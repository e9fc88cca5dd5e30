package market

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func seed(b byte) []byte { return bytes.Repeat([]byte{b}, ChallengeSeedBytes) }

func TestChallengeBoundsRefused(t *testing.T) {
	for _, c := range []Challenge{
		{Kind: ChallengeHash, Size: MaxChallengeMiB + 1},
		{Kind: ChallengeHash, Size: 1},
		{Kind: ChallengeGEMM, Size: MaxChallengeN + 1},
		{Kind: ChallengeGEMM, Size: 0},
		{Kind: "mine-bitcoin", Size: 8},
	} {
		if _, err := SolveChallenge(context.Background(), c, seed(1)); err == nil {
			t.Errorf("SolveChallenge(%+v) = nil error, want refused", c)
		}
	}
	if _, err := SolveChallenge(context.Background(), Challenge{Kind: ChallengeHash, Size: 8}, []byte("short")); err == nil {
		t.Error("SolveChallenge with a short seed = nil error, want refused")
	}
}

func TestChallengeAnswerDependsOnSeedAndSize(t *testing.T) {
	ctx := context.Background()
	for _, c := range []Challenge{{Kind: ChallengeHash, Size: 8}, {Kind: ChallengeGEMM, Size: 16}} {
		a, err := SolveChallenge(ctx, c, seed(1))
		if err != nil {
			t.Fatal(err)
		}
		again, _ := SolveChallenge(ctx, c, seed(1))
		other, _ := SolveChallenge(ctx, c, seed(2))
		bigger, _ := SolveChallenge(ctx, Challenge{Kind: c.Kind, Size: c.Size + 1}, seed(1))
		if !bytes.Equal(a, again) {
			t.Errorf("%s: the same seed gave two answers", c.Kind)
		}
		if bytes.Equal(a, other) || bytes.Equal(a, bigger) {
			t.Errorf("%s: another seed or size gave the same answer", c.Kind)
		}
	}
}

func TestGEMMIsExact(t *testing.T) {
	// The product of the largest entries stays exact in float32.
	n := MaxChallengeN
	if float64(n)*15*15 >= 1<<24 {
		t.Fatalf("side %d overflows float32's exact integers", n)
	}
	a, b := GEMMMatrices(3, seed(3))
	want := make([]float32, 9)
	for i := range 3 {
		for j := range 3 {
			for k := range 3 {
				want[i*3+j] += a[i*3+k] * b[k*3+j]
			}
		}
	}
	got, _ := SolveChallenge(context.Background(), Challenge{Kind: ChallengeGEMM, Size: 3}, seed(3))
	if !bytes.Equal(got, GEMMDigest(want)) {
		t.Error("gemm digest differs from the naive product's")
	}
}

func TestJudgeChallenge(t *testing.T) {
	want := []byte("digest")
	claim := Capacity{BenchScore: 1000}
	ch := PlanChallenge(claim, false)
	exp := ExpectedTime(claim, ch)
	if exp < ChallengeTarget/2 || exp > 2*ChallengeTarget {
		t.Fatalf("ExpectedTime(%+v) = %v, want about %v", ch, exp, ChallengeTarget)
	}
	for _, tc := range []struct {
		name     string
		got      []byte
		elapsed  time.Duration
		slowdown float64
		want     error
	}{
		{"wrong answer", []byte("guess"), exp, 1, ErrWrongAnswer},
		{"no answer", nil, exp, 1, ErrWrongAnswer},
		{"claim 10x its speed", want, 10 * exp, 1, ErrTooSlow},
		{"as claimed", want, exp, 1, nil},
		{"slower within the factor", want, 2 * exp, 1, nil},
		{"slow because the challenger is loaded too", want, 5 * exp, 2, nil},
	} {
		err := JudgeChallenge(want, tc.got, exp, tc.elapsed, time.Millisecond, tc.slowdown)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: JudgeChallenge = %v, want %v", tc.name, err, tc.want)
		}
	}
	// A stalled first answer (a huge round trip) excuses at most MaxChallengeRTT.
	if err := JudgeChallenge(want, want, exp, 3*exp+ChallengeSlack+MaxChallengeRTT+time.Millisecond, time.Hour, 1); !errors.Is(err, ErrTooSlow) {
		t.Errorf("stalled round trip: JudgeChallenge = %v, want %v", err, ErrTooSlow)
	}
}

func TestPlanChallengeBounded(t *testing.T) {
	for _, score := range []float64{0, 1, 1e3, 1e9} {
		ch := PlanChallenge(Capacity{BenchScore: score}, false)
		if err := CheckChallenge(ch); err != nil {
			t.Errorf("PlanChallenge(score %v) = %+v: %v", score, ch, err)
		}
	}
	if err := CheckChallenge(PlanChallenge(Capacity{}, true)); err != nil {
		t.Errorf("GPU challenge: %v", err)
	}
}

func TestCapacityState(t *testing.T) {
	id := peer.ID("p").String()
	rec := Capacity{Peer: id, BenchScore: 100, GPUs: []GPU{{Model: "x"}}}
	for _, tc := range []struct {
		name string
		a    Attestation
		want string
	}{
		{"held", Attestation{Provider: id, BenchScore: 100, GPUs: 1, Verified: true}, CapacityVerified},
		{"held a bigger claim", Attestation{Provider: id, BenchScore: 200, GPUs: 2, Verified: true}, CapacityVerified},
		{"held a smaller claim", Attestation{Provider: id, BenchScore: 50, GPUs: 1, Verified: true}, CapacityUnchecked},
		{"failed", Attestation{Provider: id, BenchScore: 100, GPUs: 1}, CapacityUnverified},
		{"failed a bigger claim", Attestation{Provider: id, BenchScore: 200, GPUs: 1}, CapacityUnchecked},
		{"another provider's", Attestation{Provider: "other", BenchScore: 100, GPUs: 1, Verified: true}, CapacityUnchecked},
	} {
		if got := CapacityState(rec, tc.a); got != tc.want {
			t.Errorf("%s: CapacityState = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCheckAttestation(t *testing.T) {
	now := time.Now()
	_, pid := newKey(t)
	id := pid.String()
	good := Attestation{Provider: id, Checks: []string{ChallengeHash}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := CheckAttestation(good, now); err != nil {
		t.Fatalf("CheckAttestation(good) = %v", err)
	}
	for name, edit := range map[string]func(*Attestation){
		"expired":   func(a *Attestation) { a.ExpiresAt = now.Add(-time.Second) },
		"future":    func(a *Attestation) { a.IssuedAt = now.Add(time.Hour) },
		"too long":  func(a *Attestation) { a.ExpiresAt = now.Add(48 * time.Hour) },
		"bad peer":  func(a *Attestation) { a.Provider = "not a peer" },
		"too large": func(a *Attestation) { a.Checks = make([]string, 5) },
	} {
		a := good
		edit(&a)
		if err := CheckAttestation(a, now); err == nil {
			t.Errorf("%s: CheckAttestation = nil, want refused", name)
		}
	}
}
