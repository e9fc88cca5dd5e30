package jobs

import (
	"crypto/rand"
	"encoding/binary"
)

// A spot-checked job (verification mode spot, rate r) is checked with
// probability r: at submit the requester draws, with crypto/rand, whether
// to check it, and records the draw in the job (Job.Spot), in the same
// transaction as its first replica, so that a restart does not draw
// again. Either way the job runs as a replicated job (see replicate.go)
// whose replicas are jobs like any other: the spec less its verification,
// their own IDs, auctions, awards and escrows. A provider gets the same
// announcement, award and spec for a replica as for any job, and cannot
// tell a checked job from an unchecked one by what it receives.
//
// An unchecked job has one replica: its result is the job's, its verdict
// unchecked, and it is paid as any job is. A checked job is a replicated
// job of 2 (spotCheckReplicas): once its first replica has ended, a
// second one runs on another, independent provider. It runs after the
// first, not beside it, so that the first provider has delivered its
// result before any sign of a check (the same spec announced again) can
// reach it. When the two agree, both are paid; when they do not, a third
// breaks the tie, and the replica that differs is not paid and its
// receipt says mismatch.

// Spot-check draws, as Job.Spot records them.
const (
	// SpotChecked: the job was drawn for a check and runs twice.
	SpotChecked = "checked"
	// SpotUnchecked: the job was not drawn and runs once.
	SpotUnchecked = "unchecked"
)

// spotCheckReplicas is how many replicas a checked job compares: a
// third, the tie-breaker, runs when those two differ.
const spotCheckReplicas = 2

// drawSpot draws whether a job of spot-check rate rate (in (0, 1]) is
// checked: true with probability rate.
func drawSpot(rate float64) bool {
	var b [8]byte
	rand.Read(b[:]) // never fails
	// 53 random bits make a float64 uniform in [0, 1), every value a
	// multiple of 2^-53; it is below 1, so a rate of 1 checks every job.
	u := float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
	return u < rate
}

// spotDraw is the record of a spot-check draw for a job of rate rate.
func spotDraw(rate float64) string {
	if drawSpot(rate) {
		return SpotChecked
	}
	return SpotUnchecked
}

// replicasWanted is the number of replicas whose results decide job j:
// a strict majority of them must agree.
func (j *Job) replicasWanted() int {
	switch j.Spot {
	case SpotChecked:
		return spotCheckReplicas
	case SpotUnchecked:
		return 1
	}
	return j.Spec.Replicas()
}

// firstReplicas is how many replicas job j starts with: every one of a
// replicated job at once, the first alone of a spot-checked job (a check
// runs after it).
func (j *Job) firstReplicas() int {
	if j.Spot != "" {
		return 1
	}
	return j.Spec.Replicas()
}
