package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
)

// kickSettle asks the settlement loop to look at the escrows now.
func (pay *settler) kickSettle() {
	select {
	case pay.kick <- struct{}{}:
	default:
	}
}

// settleLoop settles the requester's open escrows: it releases the ones
// whose job succeeded and refunds the others once their deadline passed.
// Failures are recorded and retried; a restart picks up where it stopped.
func (pay *settler) settleLoop() {
	every := pay.p.Settlement.Every
	if every <= 0 {
		every = 2 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	// Once, the jobs with open escrows; from then on the set is kept as
	// escrows are locked and settled, so that a pass reads only those.
	if jobs, err := pay.store.list(RoleRequester); err == nil {
		pay.mu.Lock()
		for _, j := range jobs {
			if hasOpenEscrow(j) {
				pay.escrowJobs[j.ID] = true
			}
		}
		pay.mu.Unlock()
	}
	for {
		pay.settleAll()
		select {
		case <-pay.ctx.Done():
			return
		case <-tick.C:
		case <-pay.kick:
		}
	}
}

func (pay *settler) settleAll() {
	pay.mu.Lock()
	ids := slices.Collect(maps.Keys(pay.escrowJobs))
	pay.mu.Unlock()
	// The ledger's clock, read at most once a pass.
	var now time.Time
	clock := func() time.Time {
		if now.IsZero() {
			now = pay.ledgerTime()
		}
		return now
	}
	for _, id := range ids {
		j, err := pay.Get(id)
		if err != nil {
			continue
		}
		for i, rec := range j.Escrows {
			if rec.State == EscrowLocked || rec.State == EscrowLocking {
				pay.settleOne(j, i, clock)
			}
		}
		pay.mu.Lock()
		if j, err := pay.Get(id); err == nil && !hasOpenEscrow(j) {
			delete(pay.escrowJobs, id)
		}
		pay.mu.Unlock()
	}
}

// hasOpenEscrow reports whether a job has an escrow still to settle.
func hasOpenEscrow(j *Job) bool {
	return slices.ContainsFunc(j.Escrows, func(r EscrowRecord) bool {
		return r.State == EscrowLocked || r.State == EscrowLocking
	})
}

// settleOne moves escrow i of job j on when it can; clock is the ledger's.
func (pay *settler) settleOne(j *Job, i int, clock func() time.Time) {
	rec := j.Escrows[i]
	if rec.State == EscrowLocking {
		pay.findLock(j, i)
		return
	}
	current := rec.Attempt == j.Attempt && rec.ProviderPeer == j.Provider
	switch {
	case rec.Disputed:
		pay.settledElsewhere(j, i)
	case current && j.Parent != "" && j.State == market.StateSucceeded && j.Verdict == "" && !pay.orphanReplica(j):
		// A replica is paid once the replicas' results are compared.
	case current && j.Verdict == VerdictMismatch:
		pay.refundLater(j, i, "the result differs from the majority of the replicas", clock)
	case current && (j.Verdict == VerdictUndecided || j.Parent != "" && j.Verdict == "" && j.State.Final()):
		pay.refundLater(j, i, "no majority of the replicas agreed", clock)
	case current && j.State == market.StateSucceeded:
		r := j.Result
		if r == nil || len(r.Payout) == 0 {
			pay.refundLater(j, i, "the provider sent no payout", clock)
			return
		}
		pay.coSign(j, i, settlement.Payout{Kind: settlement.Release, Ref: rec.Terms.Ref, Tx: r.Payout}, clock)
	case current && !j.State.Final():
		// The job is still running on this award.
	case current && hostingSplit(j) != nil:
		pay.settleHosting(j, i, hostingSplit(j), clock)
	default:
		pay.refundLater(j, i, "", clock)
	}
}

// coSign co-signs and submits the provider's payout of escrow i of job j:
// a release of the whole vault, or a split (settleHosting). A payout the
// ledger check refuses leaves the escrow to be refunded after its
// deadline.
func (pay *settler) coSign(j *Job, i int, po settlement.Payout, clock func() time.Time) {
	rec := j.Escrows[i]
	ctx, cancel := context.WithTimeout(pay.ctx, 30*time.Second)
	defer cancel()
	split := po.Kind.IsSplit()
	var paid uint64
	if split {
		paid = po.Amount
	}
	tx, err := pay.p.Settlement.Escrow.CoSign(ctx, po, rec.Terms.Terms)
	if errors.Is(err, settlement.ErrTampered) || errors.Is(err, settlement.ErrSignatures) || errors.Is(err, settlement.ErrNotMember) ||
		split && errors.Is(err, settlement.ErrInvalidTerms) {
		pay.log.Warn("payout refused", "job", j.ID, "provider", j.Provider, "error", err)
		pay.refundLater(j, i, "payout refused: "+err.Error(), clock)
		return
	}
	if errors.Is(err, settlement.ErrClosed) {
		// Landed already (a lost confirmation), or decided by the arbiter.
		if tx != "" {
			pay.setReleased(j.ID, i, tx, paid)
		} else if !pay.settledElsewhere(j, i) {
			pay.setEscrow(j.ID, i, EscrowLocked, "", string(po.Kind)+": "+err.Error())
		}
		return
	}
	if err != nil {
		pay.setEscrow(j.ID, i, EscrowLocked, "", string(po.Kind)+": "+err.Error())
		return
	}
	pay.setReleased(j.ID, i, tx, paid)
	if split {
		pay.log.Info("escrow split", "job", j.ID, "provider", j.Provider, "amount", paid, "returned", rec.Terms.Amount-paid, "tx", tx)
		pay.notify(j, fmt.Sprintf("escrow split: %d to the provider for the time served, %d back to the requester", paid, rec.Terms.Amount-paid))
		return
	}
	pay.log.Info("escrow released", "job", j.ID, "provider", j.Provider, "amount", rec.Terms.Amount, "tx", tx)
	pay.notify(j, fmt.Sprintf("escrow released: %d to the provider", rec.Terms.Amount))
}

// refundLater refunds escrow i once its deadline has passed.
func (pay *settler) refundLater(j *Job, i int, why string, clock func() time.Time) {
	rec := j.Escrows[i]
	if pay.settledElsewhere(j, i) {
		return
	}
	if clock().Before(rec.Terms.Deadline) {
		if why != "" && rec.Error != why {
			pay.setEscrow(j.ID, i, EscrowLocked, "", why)
		}
		return
	}
	ctx, cancel := context.WithTimeout(pay.ctx, 30*time.Second)
	defer cancel()
	s := pay.p.Settlement
	po, err := s.Escrow.Propose(ctx, rec.Terms.Ref, rec.Terms.Terms, settlement.Refund)
	if errors.Is(err, settlement.ErrClosed) {
		pay.settledElsewhere(j, i)
		return
	}
	if err != nil {
		pay.setEscrow(j.ID, i, EscrowLocked, "", "refund: "+err.Error())
		return
	}
	var res arbiterResponse
	err = pay.askArbiterPeer(ctx, rec.Terms.ArbiterPeer, arbiterRequest{Op: opRefund, Terms: &rec.Terms, Tx: po.Tx}, &res)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		// Too early by the ledger's clock, the arbiter unreachable: retried.
		pay.setEscrow(j.ID, i, EscrowLocked, "", "refund: "+err.Error())
		return
	}
	pay.setEscrow(j.ID, i, EscrowRefunded, res.Tx, "")
	pay.log.Info("escrow refunded", "job", j.ID, "amount", rec.Terms.Amount, "tx", res.Tx)
	pay.notify(j, fmt.Sprintf("escrow refunded: %d back to the requester", rec.Terms.Amount))
}

// lockExpiry is how long a sent lock may still land: past its blockhash's
// lifetime (about 150 slots, a minute or so), with a margin.
const lockExpiry = 3 * time.Minute

// findLock settles the fate of a lock whose outcome was lost (the node
// stopped, or its confirmation timed out): the ledger says whether the
// vault exists, where the escrow can derive its address from the terms.
func (pay *settler) findLock(j *Job, i int) {
	rec := j.Escrows[i]
	pay.mu.Lock()
	inFlight := pay.lockingJobs[j.ID] > 0
	pay.mu.Unlock()
	if inFlight {
		return
	}
	d, ok := pay.p.Settlement.Escrow.(settlement.RefDeriver)
	if !ok {
		pay.setEscrow(j.ID, i, EscrowFailed, "", "the lock's outcome was lost, and this ledger cannot look it up")
		return
	}
	r, err := d.DeriveRef(rec.Terms.Terms)
	if err != nil {
		pay.setEscrow(j.ID, i, EscrowFailed, "", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(pay.ctx, 10*time.Second)
	defer cancel()
	st, err := pay.p.Settlement.Escrow.Status(ctx, r)
	switch {
	case errors.Is(err, settlement.ErrVaultMismatch) && time.Since(rec.UpdatedAt) > lockExpiry:
		pay.setEscrow(j.ID, i, EscrowFailed, "", "the lock did not land")
	case errors.Is(err, settlement.ErrVaultMismatch):
		// Not there yet: a sent lock can land until its blockhash expires.
	case err != nil:
		// Unknown yet: asked again next round.
	default:
		pay.update(j.ID, func(j *Job) error {
			x := &j.Escrows[i]
			x.Terms.Multisig, x.Terms.Vault, x.UpdatedAt = r.Multisig, r.Vault, time.Now().UTC()
			x.State, x.Error = EscrowLocked, ""
			if st.State != settlement.Locked {
				x.State = map[settlement.State]EscrowState{settlement.Released: EscrowReleased, settlement.Refunded: EscrowRefunded}[st.State]
			}
			return nil
		})
	}
}

// settledElsewhere records an escrow that was settled without this node's
// loop: a dispute decided by the arbiter, or a payout a restart
// interrupted after it landed.
func (pay *settler) settledElsewhere(j *Job, i int) bool {
	ctx, cancel := context.WithTimeout(pay.ctx, 10*time.Second)
	defer cancel()
	st, err := pay.p.Settlement.Escrow.Status(ctx, j.Escrows[i].Terms.Ref)
	switch {
	case errors.Is(err, settlement.ErrVaultMismatch):
		// The ledger does not know the vault (a devnet's ledger is new on
		// each start): nothing is left to settle.
		pay.setEscrow(j.ID, i, EscrowFailed, "", "the ledger knows no such vault")
		return true
	case err != nil || st.State == settlement.Locked:
		return false
	case st.State == settlement.Released && st.Returned > 0:
		// A split: the provider got the vault less what came back.
		pay.setReleased(j.ID, i, "", j.Escrows[i].Terms.Amount-st.Returned)
	case st.State == settlement.Released:
		pay.setEscrow(j.ID, i, EscrowReleased, "", "")
	default:
		pay.setEscrow(j.ID, i, EscrowRefunded, "", "")
	}
	return true
}

// ledgerTime is the ledger's clock when the escrow can read it, else this
// machine's.
func (pay *settler) ledgerTime() time.Time {
	if c, ok := pay.p.Settlement.Escrow.(settlement.LedgerClock); ok {
		ctx, cancel := context.WithTimeout(pay.ctx, 10*time.Second)
		defer cancel()
		if t, err := c.LedgerTime(ctx); err == nil {
			return t
		}
	}
	return time.Now()
}

func (pay *settler) setEscrow(id string, i int, state EscrowState, tx, errText string) {
	pay.update(id, func(j *Job) error {
		if i >= len(j.Escrows) {
			return nil
		}
		x := &j.Escrows[i]
		x.State, x.Error, x.UpdatedAt = state, errText, time.Now().UTC()
		if tx != "" {
			x.Tx = tx
		}
		return nil
	})
}

// setReleased records escrow i as released by tx ("" when the ledger
// named none); paid, when not 0, is what a split paid the provider.
func (pay *settler) setReleased(id string, i int, tx string, paid uint64) {
	pay.update(id, func(j *Job) error {
		if i >= len(j.Escrows) {
			return nil
		}
		x := &j.Escrows[i]
		x.State, x.Error, x.UpdatedAt = EscrowReleased, "", time.Now().UTC()
		if tx != "" {
			x.Tx = tx
		}
		if paid != 0 {
			x.Paid = paid
		}
		return nil
	})
}

// orphanReplica reports whether replica j will never get a verdict: its
// job is gone, has ended, or does not name it.
func (c *core) orphanReplica(j *Job) bool {
	parent, err := c.store.get(RoleRequester, j.Parent, 0)
	if err != nil {
		return errors.Is(err, ErrNotFound)
	}
	return parent.State.Final() || !slices.Contains(parent.Replicas, j.ID)
}
