package market

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Challenge kinds: small seeded benchmarks whose answer the challenger
// computes itself, so that a capacity record's claims can be checked.
const (
	// ChallengeHash is a SHA-256 chain over Size MiB derived from the
	// seed: the work BenchScore measures, so the claimed bench_score
	// predicts its time.
	ChallengeHash = "hash"
	// ChallengeGEMM is the product of two seeded Size×Size matrices of
	// small integers held as float32 (exact on any hardware, in any
	// order of summation); the answer is the SHA-256 of the product. It
	// checks a GPU claim: its bound is a time only a GPU meets.
	ChallengeGEMM = "gemm"
)

// Bounds and factors of challenges (docs/architecture.md, "Capacity
// checks").
const (
	// MinChallengeMiB and MaxChallengeMiB bound a hash challenge, so that
	// one costs a provider at most a fraction of a second of one core.
	MinChallengeMiB = 8
	MaxChallengeMiB = 256
	// MaxChallengeN bounds a GEMM challenge's matrices.
	MaxChallengeN = 1024
	// GPUChallengeN is the size of the GEMM challenge of a GPU claim.
	GPUChallengeN = 1024
	// GPUMinFLOPS is the speed a claimed GPU must at least show on the
	// GEMM challenge (1 TFLOP/s); a CPU core does about a thousandth.
	GPUMinFLOPS = 1e12
	// ChallengeTarget is the time the claimed bench_score should take to
	// answer a hash challenge; its size is picked for it.
	ChallengeTarget = 250 * time.Millisecond
	// ChallengeFactor is how much slower than its claim a provider may be.
	ChallengeFactor = 3.0
	// ChallengeSlack is a fixed allowance for the provider's start-up.
	ChallengeSlack = 50 * time.Millisecond
	// MaxChallengeRTT caps the round trip excused on top of the time: a
	// provider that stalls its first answer gains at most this much.
	MaxChallengeRTT = 500 * time.Millisecond
	// ChallengeSeedBytes is the length of a challenge's seed.
	ChallengeSeedBytes = 32
)

// Errors of challenges.
var (
	// ErrWrongAnswer: the provider's answer is not the challenge's.
	ErrWrongAnswer = errors.New("wrong answer")
	// ErrTooSlow: the answer came later than the claim allows.
	ErrTooSlow = errors.New("slower than claimed")
)

// Challenge opens a challenge: what the provider is asked to compute,
// without the seed, which comes once the provider has taken it.
type Challenge struct {
	Kind string `json:"kind"`
	// Size is MiB for a hash challenge, the matrices' side for GEMM.
	Size int `json:"size"`
}

// ChallengeSeed is the challenge's second frame: the seed, whose arrival
// starts the clock.
type ChallengeSeed struct {
	Seed []byte `json:"seed"`
}

// ChallengeAnswer is the provider's answer: the challenge's digest.
type ChallengeAnswer struct {
	Digest []byte `json:"digest"`
}

// CheckChallenge checks a challenge's kind and bounds.
func CheckChallenge(c Challenge) error {
	switch c.Kind {
	case ChallengeHash:
		if c.Size < MinChallengeMiB || c.Size > MaxChallengeMiB {
			return fmt.Errorf("hash challenge of %d MiB is outside %d..%d", c.Size, MinChallengeMiB, MaxChallengeMiB)
		}
	case ChallengeGEMM:
		if c.Size < 1 || c.Size > MaxChallengeN {
			return fmt.Errorf("gemm challenge of side %d is outside 1..%d", c.Size, MaxChallengeN)
		}
	default:
		return fmt.Errorf("challenge kind %q is not hash or gemm", c.Kind)
	}
	return nil
}

// SolveChallenge computes the challenge's digest from its seed. It stops
// early when ctx ends.
func SolveChallenge(ctx context.Context, c Challenge, seed []byte) ([]byte, error) {
	if err := CheckChallenge(c); err != nil {
		return nil, err
	}
	if len(seed) != ChallengeSeedBytes {
		return nil, fmt.Errorf("challenge seed of %d bytes, want %d", len(seed), ChallengeSeedBytes)
	}
	if c.Kind == ChallengeGEMM {
		return solveGEMM(ctx, c.Size, seed)
	}
	block := expand(seed, 1<<20)
	state := sha256.Sum256(seed)
	h := sha256.New()
	for i := range c.Size {
		if i%16 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("solve challenge: %w", ctx.Err())
		}
		h.Reset()
		h.Write(state[:])
		h.Write(block)
		h.Sum(state[:0])
	}
	return state[:], nil
}

// expand derives n bytes from seed: SHA-256 of seed and a counter.
func expand(seed []byte, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var ctr [8]byte
	for i := uint64(0); len(out) < n; i++ {
		binary.LittleEndian.PutUint64(ctr[:], i)
		sum := sha256.Sum256(append(append([]byte{}, seed...), ctr[:]...))
		out = append(out, sum[:]...)
	}
	return out[:n]
}

// GEMMMatrices returns the challenge's two n×n matrices, row-major, with
// entries 0..15: a product's entries stay below 2^24, so float32 holds
// them exactly whatever the hardware and the order of the sums.
func GEMMMatrices(n int, seed []byte) (a, b []float32) {
	raw := expand(seed, n*n)
	a, b = make([]float32, n*n), make([]float32, n*n)
	for i, x := range raw {
		a[i], b[i] = float32(x&15), float32(x>>4)
	}
	return a, b
}

// GEMMDigest is the answer of a GEMM challenge from its product: the
// SHA-256 of its entries as little-endian uint32.
func GEMMDigest(c []float32) []byte {
	h := sha256.New()
	var buf [4]byte
	for _, x := range c {
		binary.LittleEndian.PutUint32(buf[:], uint32(x))
		h.Write(buf[:])
	}
	return h.Sum(nil)
}

func solveGEMM(ctx context.Context, n int, seed []byte) ([]byte, error) {
	a, b := GEMMMatrices(n, seed)
	c := make([]float32, n*n)
	for i := range n {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("solve challenge: %w", ctx.Err())
		}
		row := c[i*n : (i+1)*n]
		for k := range n {
			x := a[i*n+k]
			for j, y := range b[k*n : (k+1)*n] {
				row[j] += x * y
			}
		}
	}
	return GEMMDigest(c), nil
}

// PlanChallenge picks the challenge that checks a record's claim: a hash
// challenge sized so that the claimed bench_score answers it in about
// ChallengeTarget, or, with gpu, the GEMM challenge of a GPU claim.
func PlanChallenge(c Capacity, gpu bool) Challenge {
	if gpu {
		return Challenge{Kind: ChallengeGEMM, Size: GPUChallengeN}
	}
	mib := int(c.BenchScore * 1e6 / (1 << 20) * ChallengeTarget.Seconds())
	return Challenge{Kind: ChallengeHash, Size: min(max(mib, MinChallengeMiB), MaxChallengeMiB)}
}

// ExpectedTime is how long the record's claim says the challenge takes:
// its MiB at bench_score MB/s, or a GEMM at GPUMinFLOPS.
func ExpectedTime(c Capacity, ch Challenge) time.Duration {
	var seconds float64
	switch ch.Kind {
	case ChallengeGEMM:
		n := float64(ch.Size)
		seconds = 2 * n * n * n / GPUMinFLOPS
	default:
		if c.BenchScore <= 0 {
			return 0
		}
		seconds = float64(ch.Size) * (1 << 20) / 1e6 / c.BenchScore
	}
	return time.Duration(seconds * float64(time.Second))
}

// JudgeChallenge checks an answer against the challenge's digest and its
// time against the claim: elapsed may be at most ChallengeFactor times
// expected, times slowdown (how much slower than its own baseline the
// challenger computed the same answer in the same run, at least 1: a
// loaded challenger blames nobody for its own load), plus ChallengeSlack
// and the round trip (capped at MaxChallengeRTT).
func JudgeChallenge(want, got []byte, expected, elapsed, rtt time.Duration, slowdown float64) error {
	if !bytes.Equal(want, got) {
		return ErrWrongAnswer
	}
	allowed := time.Duration(ChallengeFactor*max(1, slowdown)*float64(expected)) + ChallengeSlack + min(max(rtt, 0), MaxChallengeRTT)
	if elapsed > allowed {
		return fmt.Errorf("%w: answered in %v, the claim allows %v", ErrTooSlow, elapsed.Round(time.Millisecond), allowed.Round(time.Millisecond))
	}
	return nil
}

// Attestation is an indexer's signed account of a provider's capacity
// checks: whether the claim it checked (bench_score, GPUs) held.
type Attestation struct {
	Provider string `json:"provider"`
	// BenchScore and GPUs are the claim checked.
	BenchScore float64 `json:"bench_score"`
	GPUs       int     `json:"gpus"`
	// Checks names the challenges run (hash, gemm).
	Checks   []string `json:"checks"`
	Verified bool     `json:"verified"`
	// Reason says why a claim failed.
	Reason    string    `json:"reason,omitempty"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// MaxAttestationLife bounds how long an attestation may be relied on.
const MaxAttestationLife = 24 * time.Hour

// CheckAttestation checks an attestation against the clock. Whether its
// signer is trusted to attest is the reader's choice.
func CheckAttestation(a Attestation, now time.Time) error {
	if _, err := peer.Decode(a.Provider); err != nil {
		return fmt.Errorf("attestation of provider %q: %w", a.Provider, err)
	}
	if !a.ExpiresAt.After(now) {
		return errors.New("attestation has expired")
	}
	if a.IssuedAt.After(now.Add(time.Minute)) {
		return errors.New("attestation is issued in the future")
	}
	if a.ExpiresAt.Sub(a.IssuedAt) > MaxAttestationLife {
		return errors.New("attestation lives longer than a day")
	}
	if len(a.Checks) > 4 || len(a.Reason) > 512 {
		return errors.New("attestation too large")
	}
	return checkFields("attestation", append([]string{a.Reason}, a.Checks...)...)
}

// Capacity states a record can have, as attestations decide it.
const (
	CapacityVerified   = "verified"
	CapacityUnverified = "unverified"
	CapacityUnchecked  = "unchecked"
)

// CapacityState is what an attestation says of a record: verified when
// the record claims no more than the claim that held; unverified when it
// claims at least as much as one that failed; unchecked otherwise.
func CapacityState(c Capacity, a Attestation) string {
	if a.Provider != c.Peer {
		return CapacityUnchecked
	}
	switch {
	case a.Verified && c.BenchScore <= a.BenchScore && len(c.GPUs) <= a.GPUs:
		return CapacityVerified
	case !a.Verified && c.BenchScore >= a.BenchScore && len(c.GPUs) >= a.GPUs:
		return CapacityUnverified
	}
	return CapacityUnchecked
}
