package jobs

import (
	"time"

	"github.com/cyxwiz/cyxwiz/market"
)

// Metrics receives the engine's counts as they happen; the node exports
// them (see docs/metrics.md). Its methods must be safe for concurrent use
// and cheap: they are called with job locks held. No argument names a job
// or a peer, so an implementation's label values stay few.
type Metrics interface {
	// AuctionOpened: the requester announced a job for bids.
	AuctionOpened()
	// BidReceived: a valid bid arrived in one of the requester's auctions;
	// accepted is false for a bid the auction refused (bad signature,
	// terms or an excluded provider).
	BidReceived(accepted bool)
	// BidSent: the provider bid for an announced job; delivered is false
	// when the requester could not be reached or refused the bid.
	BidSent(delivered bool)
	// Awarded: the requester offered a job to a bidder; taken says
	// whether the bidder acked.
	Awarded(taken bool)
	// Reauctioned: a job went back to bidding, for one of the Cause
	// values.
	Reauctioned(cause string)
	// JobMoved: a job of role (RoleRequester, RoleProvider) went from one
	// state to another ("" from: the job is new); age is how long ago it
	// was created, its duration when to is final.
	JobMoved(role string, from, to market.State, age time.Duration)
	// EscrowMoved: one of the requester's escrows entered state.
	EscrowMoved(state EscrowState)
}

// Causes of a re-auction, the values Metrics.Reauctioned receives.
const (
	// CauseNoBids: an auction closed without a valid bid.
	CauseNoBids = "no_bids"
	// CauseAwardRefused: the bidder refused the award or sent no ack.
	CauseAwardRefused = "award_refused"
	// CauseNoResult: the provider sent no result by the deadline.
	CauseNoResult = "no_result"
	// CauseProviderLost: the provider stayed unreachable.
	CauseProviderLost = "provider_lost"
	// CauseProviderFault: the provider reported a fault of its own.
	CauseProviderFault = "provider_fault"
	// CauseFetchFailed: the outputs could not be fetched from the provider.
	CauseFetchFailed = "fetch_failed"
)

// Causes lists every re-auction cause.
var Causes = []string{CauseNoBids, CauseAwardRefused, CauseNoResult, CauseProviderLost, CauseProviderFault, CauseFetchFailed}

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) AuctionOpened()                                             {}
func (noMetrics) BidReceived(bool)                                           {}
func (noMetrics) BidSent(bool)                                               {}
func (noMetrics) Awarded(bool)                                               {}
func (noMetrics) Reauctioned(string)                                         {}
func (noMetrics) JobMoved(string, market.State, market.State, time.Duration) {}
func (noMetrics) EscrowMoved(EscrowState)                                    {}

// Load is what a provider holds at one moment.
type Load struct {
	// Running is the jobs in the sandbox (or past staging, holding a slot).
	Running int
	// Queued is the jobs accepted and waiting to run.
	Queued int
	// MemoryMiB is the memory the running jobs reserved.
	MemoryMiB int64
}

// Load returns the provider's jobs running and queued, and the memory the
// running ones reserved; all zero on a node that provides nothing.
func (e *Engine) Load() Load {
	pv := e.prov
	pv.mu.Lock()
	l := Load{Running: pv.load.Running, Queued: pv.load.Queued}
	pv.mu.Unlock()
	pv.admit.mu.Lock()
	l.MemoryMiB = pv.admit.memory
	pv.admit.mu.Unlock()
	return l
}

// moved reports a job's step to the metrics; from is its state before.
func (c *core) moved(j *Job, from market.State) {
	if j.State != from {
		c.p.Metrics.JobMoved(j.Role, from, j.State, time.Since(j.CreatedAt))
	}
}

// escrowStates returns the states of a job's escrows, in order.
func escrowStates(j *Job) []EscrowState {
	out := make([]EscrowState, len(j.Escrows))
	for i, x := range j.Escrows {
		out[i] = x.State
	}
	return out
}

// escrowsMoved reports the escrows of j whose state differs from before.
func (c *core) escrowsMoved(j *Job, before []EscrowState) {
	for i, x := range j.Escrows {
		if i >= len(before) || before[i] != x.State {
			c.p.Metrics.EscrowMoved(x.State)
		}
	}
}
