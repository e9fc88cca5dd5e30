package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
)

// The hosting of a serve job is paid for the time served. A deployment
// that runs its whole wall time succeeds and is released in full, like
// any job. One that its requester stops early (job.cancel, model
// undeploy) is paid pro rata by a split: the provider proposes
// price × served / wall, rounded down to a base unit, and the rest of the
// vault goes back to the requester. The requester co-signs only an amount
// its own clock allows (hostingAllowance); otherwise, and for a
// deployment that fails, whose provider dies, restarts or goes silent,
// the escrow is refunded whole after its deadline, as for any job that
// does not succeed.

// hostingMargin is added to the requester's own measure of the time a
// deployment was served, from the ack to the cancellation: the time a
// cancel takes to reach the provider and the provider to stop.
const hostingMargin = 2 * time.Second

// hostingAmount is price × served / wall, rounded down; the whole price
// once served reaches wall, and 0 for no time served.
func hostingAmount(price uint64, served, wall time.Duration) uint64 {
	switch {
	case served <= 0 || wall <= 0:
		return 0
	case served >= wall:
		return price
	}
	// price × served < price × wall fits in 128 bits, and its high word
	// is less than wall: the quotient fits in 64 bits.
	hi, lo := bits.Mul64(price, uint64(served))
	q, _ := bits.Div64(hi, lo, uint64(wall))
	return q
}

// wallTime is a job's wall limit.
func wallTime(j *Job) time.Duration {
	return time.Duration(j.Spec.Limits.WallSeconds) * time.Second
}

// stoppedEarly reports whether a run ended as a serve job stopped by its
// requester: its context cancelled (not past its deadline) while this
// node keeps running, the executor reporting the cancellation.
func stoppedEarly(ctx context.Context, j *Job, out compute.Outcome) bool {
	return j.Spec.Kind == market.KindServe && out.Reason == compute.ReasonCancelled &&
		errors.Is(ctx.Err(), context.Canceled)
}

// proposeHosting signs the provider's half of a split that pays a serve
// job stopped early for the time it served, and puts it in the result.
// Nothing is proposed for a job without an escrow, or when the time
// served rounds down to 0: the escrow is then refunded whole.
func (pay *settler) proposeHosting(ctx context.Context, j *Job, served time.Duration, res *market.Result) {
	s := pay.p.Settlement
	if s == nil || len(j.Escrows) == 0 {
		return
	}
	t := j.Escrows[0].Terms
	amount := hostingAmount(t.Amount, served, wallTime(j))
	if amount == 0 {
		return
	}
	po, err := s.Escrow.ProposeSplit(ctx, t.Ref, t.Terms, settlement.Split, amount)
	if err != nil {
		pay.log.Warn("split not proposed", "job", j.ID, "error", err)
		return
	}
	res.Payout, res.PayoutKind, res.PayoutAmount = po.Tx, market.PayoutSplit, amount
	pay.log.Info("split proposed", "job", j.ID, "served", served.Round(time.Second), "amount", amount, "of", t.Amount)
}

// hostingAllowance is the most the requester pays for the hosting of a
// serve job it cancelled: price × (the time from the ack of the job's
// last award to its cancellation, by this node's clock, plus
// hostingMargin) / wall. It is 0 when the last award was never acked.
func hostingAllowance(j *Job, price uint64) uint64 {
	var acked, stopped time.Time
	for _, e := range j.Events {
		switch e.State {
		case market.StateBidding, market.StateAwarded:
			acked = time.Time{} // a new award: an earlier ack does not count
		case market.StateRunning:
			acked = e.Time
		case market.StateCancelled:
			stopped = e.Time
		}
	}
	if acked.IsZero() || stopped.Before(acked) {
		return 0
	}
	return hostingAmount(price, stopped.Sub(acked)+hostingMargin, wallTime(j))
}

// takesHostingResult reports whether the requester still takes a result
// for job j although it has ended: a serve job it cancelled, whose escrow
// of the current award is locked, and which has no result yet; the
// result carries the provider's split for the time served.
func takesHostingResult(j *Job, r market.Result) bool {
	if j.State != market.StateCancelled || j.Spec.Kind != market.KindServe || j.Result != nil || r.PayoutKind != market.PayoutSplit {
		return false
	}
	n := len(j.Escrows)
	if n == 0 {
		return false
	}
	rec := j.Escrows[n-1]
	return rec.Attempt == j.Attempt && rec.ProviderPeer == j.Provider && rec.State == EscrowLocked && !rec.Disputed
}

// hostingSplit is the split in the result of a cancelled serve job, or
// nil when it has none.
func hostingSplit(j *Job) *market.Result {
	r := j.Result
	if j.State != market.StateCancelled || j.Spec.Kind != market.KindServe || r == nil ||
		r.Attempt != j.Attempt || r.Provider != j.Provider || r.PayoutKind != market.PayoutSplit || len(r.Payout) == 0 {
		return nil
	}
	return r
}

// settleHosting co-signs the provider's split of escrow i of a serve job
// the requester cancelled, when it pays no more than hostingAllowance;
// a split that claims more, or that the ledger check refuses, leaves the
// escrow to be refunded after its deadline.
func (pay *settler) settleHosting(j *Job, i int, r *market.Result, clock func() time.Time) {
	rec := j.Escrows[i]
	if allowed := hostingAllowance(j, rec.Terms.Amount); r.PayoutAmount > allowed {
		why := fmt.Sprintf("split refused: it pays %d for the hosting, the time served allows at most %d", r.PayoutAmount, allowed)
		if rec.Error != why {
			pay.log.Warn("payout refused", "job", j.ID, "provider", j.Provider, "amount", r.PayoutAmount, "allowed", allowed)
		}
		pay.refundLater(j, i, why, clock)
		return
	}
	po := settlement.Payout{Kind: settlement.Split, Ref: rec.Terms.Ref, Amount: r.PayoutAmount, Tx: r.Payout}
	pay.coSign(j, i, po, clock)
}
