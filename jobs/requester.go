package jobs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/p2p/wire"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// requester is the side of the engine that buys work: it announces jobs,
// runs their auctions, awards them, waits for their results and fetches
// the outputs.
type requester struct {
	*core
	pay *settler

	mu       sync.Mutex
	auctions map[string]chan candidate     // jobID/attempt -> bids
	results  map[string]chan struct{}      // jobID -> result arrived
	waiting  map[string]context.CancelFunc // running job loops
	tally    map[string]market.Outcomes    // outcomes by provider
	slots    chan struct{}                 // auctions open at once
	claims   map[string]replicaClaim       // replica ID -> its provider
}

type candidate struct {
	bid    market.Bid
	signer peer.ID
}

func newRequester(c *core, pay *settler) *requester {
	return &requester{core: c, pay: pay,
		auctions: map[string]chan candidate{}, results: map[string]chan struct{}{},
		waiting: map[string]context.CancelFunc{}, tally: map[string]market.Outcomes{},
		slots: make(chan struct{}, maxAuctions), claims: map[string]replicaClaim{}}
}

// resume counts the outcomes of the stored jobs and restarts the loops of
// the unfinished ones.
func (rq *requester) resume(jobs []*Job) {
	rq.mu.Lock()
	for _, j := range jobs {
		for _, p := range j.Excluded {
			o := rq.tally[p]
			o.Failed++
			rq.tally[p] = o
		}
		switch {
		case j.Verdict == VerdictMismatch:
			o := rq.tally[j.Provider]
			o.Failed++
			rq.tally[j.Provider] = o
		case j.State == market.StateSucceeded && (j.Parent == "" || j.Verdict != ""):
			o := rq.tally[j.Provider]
			o.Succeeded++
			rq.tally[j.Provider] = o
		}
		rq.resumeClaim(j)
	}
	rq.mu.Unlock()
	for _, j := range jobs {
		if j.State.Final() {
			continue
		}
		if j.Parent != "" && rq.orphanReplica(j) {
			// Left by a crash of an older version between a replica's write
			// and its job's: nothing would ever compare its result.
			const why = "its replicated job does not name it"
			if _, err := rq.update(j.ID, func(j *Job) error { return j.move(market.StateCancelled, why) }); err != nil {
				rq.log.Warn("cancel an orphaned replica", "job", j.ID, "error", err)
			}
			continue
		}
		rq.log.Info("resuming job", "job", j.ID, "state", j.State)
		rq.startRequester(j.ID)
	}
}

// Submit validates a spec, stores the job and starts its auction. It
// returns the job's ID at once.
func (rq *requester) Submit(spec market.Spec) (*Job, error) {
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	if spec.Replicas() > 1 || spec.SpotRate() > 0 {
		return rq.submitReplicated(spec, now)
	}
	j := &Job{ID: newJobID(), Role: RoleRequester, State: market.StateSubmitted, Spec: spec,
		Requester: rq.self.String(), CreatedAt: now, UpdatedAt: now,
		Events: []Event{{Time: now, State: market.StateSubmitted}}}
	if err := rq.store.put(j); err != nil {
		return nil, fmt.Errorf("store job: %w", err)
	}
	rq.p.Metrics.JobMoved(RoleRequester, "", j.State, 0)
	rq.notify(j, "")
	rq.startRequester(j.ID)
	return j, nil
}

// Cancel stops a job at whatever stage it is.
func (rq *requester) Cancel(id string) (*Job, error) {
	j, err := rq.Get(id)
	if err != nil {
		return nil, err
	}
	if j.State.Final() {
		return j, fmt.Errorf("job %s is already %s", id, j.State)
	}
	rq.mu.Lock()
	stop := rq.waiting[id]
	rq.mu.Unlock()
	if stop != nil {
		stop() // the loop records the cancellation and tells the provider
	}
	return j, nil
}

func (rq *requester) startRequester(id string) {
	ctx, cancel := context.WithCancel(rq.ctx)
	rq.mu.Lock()
	rq.waiting[id] = cancel
	rq.results[id] = make(chan struct{}, 1)
	rq.mu.Unlock()
	rq.spawn(func() {
		defer func() {
			rq.mu.Lock()
			delete(rq.waiting, id)
			delete(rq.results, id)
			rq.mu.Unlock()
			cancel()
		}()
		rq.runRequester(ctx, id)
	})
}

// runRequester drives one job to a final state: auctions, awards, waits for
// the result, fetches the outputs; a failed or silent provider means a new
// auction, until MaxFailures providers have failed it or no provider takes
// it within BidTimeout.
func (rq *requester) runRequester(ctx context.Context, id string) {
	if j, err := rq.Get(id); err == nil && len(j.Replicas) > 0 {
		rq.runReplicated(ctx, id)
		return
	}
	fail := func(reason string) {
		j, err := rq.update(id, func(j *Job) error { return j.move(market.StateFailed, reason) })
		if err == nil {
			rq.notify(j, reason)
		}
	}
	for {
		j, err := rq.Get(id)
		if err != nil {
			rq.log.Error("job vanished", "job", id, "error", err)
			return
		}
		if ctx.Err() != nil {
			rq.cancelled(j, "cancelled by the requester")
			return
		}
		switch j.State {
		case market.StateRunning:
			if !rq.awaitResult(ctx, j) {
				continue
			}
			return
		case market.StateFetching:
			if rq.fetchOutputs(ctx, j) {
				return
			}
			continue
		}
		if j.State == market.StateSubmitted {
			// The requester serves the job's data: it must hold every
			// input before any provider is asked to fetch it.
			if err := rq.holdInputs(ctx, j); err != nil {
				if ctx.Err() != nil {
					rq.cancelled(j, "cancelled by the requester")
					return
				}
				fail(err.Error())
				return
			}
		}
		// submitted, bidding or awarded (after a restart): a new auction.
		if len(j.Excluded) >= rq.cfg.MaxFailures {
			fail(fmt.Sprintf("%d providers failed the job", len(j.Excluded)))
			return
		}
		if !j.WaitingSince.IsZero() && time.Since(j.WaitingSince) > rq.cfg.BidTimeout && j.State == market.StateBidding {
			fail(fmt.Sprintf("%v within %s (%d auctions)", errNoProvider, rq.cfg.BidTimeout, j.Attempt))
			return
		}
		if rq.alone(ctx, j) {
			fail(fmt.Sprintf("%v: in %s this node found no provider but itself, and a provider does not take its own jobs. "+
				"Start a second node that provides (cyxwiz init --profile local --bootstrap <an address from cyxwiz id>, then cyxwiz daemon), "+
				"or run a local swarm with cyxwiz devnet", errNoProvider, rq.cfg.AloneAfter))
			return
		}
		j, err = rq.update(id, func(j *Job) error {
			if j.State != market.StateBidding || j.WaitingSince.IsZero() {
				j.WaitingSince = time.Now().UTC()
			}
			j.Attempt++
			j.Provider = ""
			return j.move(market.StateBidding, fmt.Sprintf("auction %d", j.Attempt))
		})
		if err != nil {
			rq.log.Error("job state", "job", id, "error", err)
			return
		}
		rq.notify(j, fmt.Sprintf("auction %d", j.Attempt))
		// Auctions run a few at a time: a burst of jobs queues here rather
		// than flooding the swarm with announcements nobody can take.
		select {
		case rq.slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		rq.p.Metrics.AuctionOpened()
		bids, err := rq.auction(ctx, j)
		if err != nil && ctx.Err() == nil {
			rq.log.Warn("auction failed", "job", id, "error", err)
		}
		awarded := len(bids) > 0 && rq.award(ctx, j, bids)
		<-rq.slots
		if len(bids) == 0 && ctx.Err() == nil {
			rq.p.Metrics.Reauctioned(CauseNoBids)
		}
		if !awarded && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(min(time.Duration(j.Attempt)*100*time.Millisecond, 2*time.Second)):
			}
		}
	}
}

// alone reports whether a job has waited past AloneAfter for a provider
// while the node knows of none but itself.
func (rq *requester) alone(ctx context.Context, j *Job) bool {
	if rq.cfg.AloneAfter <= 0 || rq.p.OtherProviders == nil || j.State != market.StateBidding ||
		j.WaitingSince.IsZero() || time.Since(j.WaitingSince) < rq.cfg.AloneAfter {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := rq.p.OtherProviders(ctx)
	return err == nil && n == 0
}

// holdInputs pins the module and every input, fetching what is not here.
func (rq *requester) holdInputs(ctx context.Context, j *Job) error {
	for _, c := range j.Spec.Contents() {
		id, err := cid.Decode(c.CID)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Field, err)
		}
		if err := rq.p.Content.Pin(ctx, id, "job "+j.ID, nil); err != nil {
			return fmt.Errorf("%s (%s): %w", c.Field, c.CID, err)
		}
	}
	if rq.p.CheckInputs != nil {
		return rq.p.CheckInputs(ctx, j.Spec)
	}
	return nil
}

// cancelled records a cancellation by the user. When the engine itself is
// stopping, the job keeps its state: it resumes at the next start.
func (rq *requester) cancelled(j *Job, reason string) {
	if rq.ctx.Err() != nil {
		return
	}
	if j.Provider != "" && (j.State == market.StateRunning || j.State == market.StateAwarded) {
		rq.sendCancel(j, reason)
	}
	j, err := rq.update(j.ID, func(j *Job) error { return j.move(market.StateCancelled, reason) })
	if err == nil {
		rq.notify(j, reason)
	}
}

func (rq *requester) sendCancel(j *Job, reason string) {
	prov, err := peer.Decode(j.Provider)
	if err != nil {
		return
	}
	env, err := market.Seal(rq.p.Key, market.TypeCancel, market.Cancel{JobID: j.ID, Attempt: j.Attempt, Requester: rq.self.String(), Reason: reason})
	if err != nil {
		return
	}
	s, _, w, err := rq.newStream(rq.ctx, prov, wire.CancelProtocol, 5*time.Second)
	if err != nil {
		return
	}
	defer s.Close()
	writeEnvelope(w, env)
}

// maxPeerReason bounds a reason a peer gives that this node records or logs.
const maxPeerReason = 1000

// addrInfo parses a peer's addresses.
func addrInfo(id string, addrs []string) (peer.AddrInfo, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	info := peer.AddrInfo{ID: pid}
	for _, a := range addrs {
		if ma, err := multiaddr.NewMultiaddr(a); err == nil {
			info.Addrs = append(info.Addrs, ma)
		}
	}
	return info, nil
}
