package jobs

import (
	"context"
	"errors"
	"fmt"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
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
}

type candidate struct {
	bid    market.Bid
	signer peer.ID
}

func newRequester(c *core, pay *settler) *requester {
	return &requester{core: c, pay: pay,
		auctions: map[string]chan candidate{}, results: map[string]chan struct{}{},
		waiting: map[string]context.CancelFunc{}, tally: map[string]market.Outcomes{},
		slots: make(chan struct{}, maxAuctions)}
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
		if j.State == market.StateSucceeded {
			o := rq.tally[j.Provider]
			o.Succeeded++
			rq.tally[j.Provider] = o
		}
	}
	rq.mu.Unlock()
	for _, j := range jobs {
		if !j.State.Final() {
			rq.log.Info("resuming job", "job", j.ID, "state", j.State)
			rq.startRequester(j.ID)
		}
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
	j := &Job{ID: newJobID(), Role: RoleRequester, State: market.StateSubmitted, Spec: spec,
		Requester: rq.self.String(), CreatedAt: now, UpdatedAt: now,
		Events: []Event{{Time: now, State: market.StateSubmitted}}}
	if err := rq.store.put(j); err != nil {
		return nil, fmt.Errorf("store job: %w", err)
	}
	rq.notify(j, "")
	rq.startRequester(j.ID)
	return j, nil
}

// Get returns a job this node requested.
func (c *core) Get(id string) (*Job, error) { return c.store.get(RoleRequester, id, 0) }

// List returns the jobs this node requested, newest first.
func (c *core) List() ([]*Job, error) { return c.store.list(RoleRequester) }

// Provided returns the jobs this node ran or runs for others.
func (c *core) Provided() ([]*Job, error) { return c.store.list(RoleProvider) }

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
		bids, err := rq.auction(ctx, j)
		if err != nil && ctx.Err() == nil {
			rq.log.Warn("auction failed", "job", id, "error", err)
		}
		awarded := len(bids) > 0 && rq.award(ctx, j, bids)
		<-rq.slots
		if !awarded && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(min(time.Duration(j.Attempt)*100*time.Millisecond, 2*time.Second)):
			}
		}
	}
}

// holdInputs pins the module and every input, fetching what is not here.
func (rq *requester) holdInputs(ctx context.Context, j *Job) error {
	names := map[string]string{}
	if j.Spec.WASM != nil {
		names[j.Spec.WASM.Module] = "wasm.module"
	}
	if j.Spec.Train != nil {
		names[j.Spec.Train.Dataset.CID] = "train.dataset"
	}
	for _, in := range j.Spec.Inputs {
		names[in.CID] = "input " + in.Name
	}
	for _, c := range j.Spec.CIDs() {
		id, err := cid.Decode(c)
		if err != nil {
			return fmt.Errorf("%s: %v", names[c], err)
		}
		if err := rq.p.Content.Pin(ctx, id, "job "+j.ID, nil); err != nil {
			return fmt.Errorf("%s (%s): %v", names[c], c, err)
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

func auctionKey(id string, attempt int) string { return fmt.Sprintf("%s/%d", id, attempt) }

// auction announces the job and collects bids until the window closes, or
// EnoughBids arrive, or BidGrace after the first bid.
func (rq *requester) auction(ctx context.Context, j *Job) ([]market.Candidate, error) {
	now := time.Now().UTC()
	var addrs []string
	for _, a := range rq.p.Host.Addrs() {
		if len(addrs) < market.MaxRequesterAddrs {
			addrs = append(addrs, a.String())
		}
	}
	a := market.Announcement{JobID: j.ID, Requester: rq.self.String(), RequesterAddrs: addrs, Attempt: j.Attempt,
		Spec: j.Spec, IssuedAt: now, BidsUntil: now.Add(rq.cfg.BidWindow)}
	env, err := market.Seal(rq.p.Key, market.TypeAnnouncement, a)
	if err != nil {
		return nil, err
	}
	data, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	bids := make(chan candidate, 64)
	key := auctionKey(j.ID, j.Attempt)
	rq.mu.Lock()
	rq.auctions[key] = bids
	rq.mu.Unlock()
	defer func() {
		rq.mu.Lock()
		delete(rq.auctions, key)
		rq.mu.Unlock()
	}()
	if err := rq.topic.Publish(ctx, data); err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	window := time.NewTimer(rq.cfg.BidWindow)
	defer window.Stop()
	var grace <-chan time.Time
	var out []market.Candidate
	excluded := map[string]bool{}
	for _, p := range j.Excluded {
		excluded[p] = true
	}
	for {
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-window.C:
			return out, nil
		case <-grace:
			return out, nil
		case c := <-bids:
			if err := market.CheckBid(c.bid, c.signer, a, time.Now()); err != nil {
				rq.log.Warn("bid rejected", "job", j.ID, "provider", c.signer, "error", err)
				continue
			}
			if excluded[c.bid.Provider] {
				continue
			}
			out = append(out, rq.candidate(c))
			if len(out) >= rq.cfg.EnoughBids {
				return out, nil
			}
			if grace == nil {
				grace = time.After(rq.cfg.BidGrace)
			}
		}
	}
}

// candidate adds what this node knows of the bidder: reputation from past
// outcomes, latency, relay.
func (rq *requester) candidate(c candidate) market.Candidate {
	out := market.Candidate{Bid: c.bid, Reputation: rq.outcomes(c.bid.Provider).Reputation(),
		Latency: rq.p.Host.Peerstore().LatencyEWMA(c.signer)}
	for _, conn := range rq.p.Host.Network().ConnsToPeer(c.signer) {
		if conn.Stat().Limited {
			out.Relayed = true
		}
	}
	return out
}

// outcomes returns this node's tally of finished jobs with a provider.
func (rq *requester) outcomes(provider string) market.Outcomes {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	return rq.tally[provider]
}

// count records an outcome with a provider.
func (rq *requester) count(provider string, succeeded bool) {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	o := rq.tally[provider]
	if succeeded {
		o.Succeeded++
	} else {
		o.Failed++
	}
	rq.tally[provider] = o
}

// handleBid takes one bid from a provider.
func (rq *requester) handleBid(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := bufReader(s), bufWriter(s)
	var bid market.Bid
	env, err := readEnvelope(r, market.TypeBid, &bid)
	if err != nil {
		rq.log.Debug("bad bid", "peer", s.Conn().RemotePeer(), "error", err)
		s.Reset()
		return
	}
	signer, _ := peer.Decode(env.Signer)
	if signer != s.Conn().RemotePeer() {
		s.Reset()
		return
	}
	rq.mu.Lock()
	ch, ok := rq.auctions[auctionKey(bid.JobID, bid.Attempt)]
	rq.mu.Unlock()
	if !ok {
		wire.WriteReply(w, wire.Reply{Code: wire.CodeClosed})
		return
	}
	select {
	case ch <- candidate{bid: bid, signer: signer}:
		wire.WriteReply(w, wire.OK)
	default:
		wire.WriteReply(w, wire.Reply{Code: wire.CodeFull})
	}
}

// award offers the job to the bidders in rank order until one acks.
func (rq *requester) award(ctx context.Context, j *Job, cands []market.Candidate) bool {
	for _, c := range market.Rank(cands, j.Spec.MaxPrice()) {
		prov, err := peer.Decode(c.Bid.Provider)
		if err != nil {
			continue
		}
		now := time.Now().UTC()
		// A queued job waits for the jobs ahead of it: one wall limit each,
		// counted for a few at most, so that no bid can stretch the wait.
		wall := time.Duration(j.Spec.Limits.WallSeconds) * time.Second
		waits := time.Duration(1 + min(c.Bid.QueueDepth, maxQueueWaits))
		deadline := now.Add(rq.cfg.InputTimeout + wall*waits + rq.cfg.ResultMargin)
		w := market.Award{JobID: j.ID, Attempt: j.Attempt, Requester: rq.self.String(), Provider: c.Bid.Provider,
			Price: c.Bid.Price, Spec: j.Spec, IssuedAt: now, Deadline: deadline}
		if rq.pay.settles(j) && c.Bid.Price > 0 {
			t, lockErr := rq.pay.lockEscrow(ctx, j, c.Bid, deadline)
			if errors.Is(lockErr, settlement.ErrFunds) {
				j2, err := rq.update(j.ID, func(j *Job) error { return j.move(market.StateFailed, lockErr.Error()) })
				if err == nil {
					rq.notify(j2, j2.Reason)
				}
				return true
			}
			if lockErr != nil {
				rq.log.Info("no escrow for this bid", "job", j.ID, "provider", c.Bid.Provider, "error", lockErr)
				continue
			}
			w.Escrow = t
			w.IssuedAt = time.Now().UTC() // the lock took a ledger round trip
		}
		var provAddrs []string
		for _, a := range rq.p.Host.Peerstore().Addrs(prov) {
			if len(provAddrs) < market.MaxRequesterAddrs {
				provAddrs = append(provAddrs, a.String())
			}
		}
		j2, err := rq.update(j.ID, func(j *Job) error {
			j.Provider, j.Price, j.Deadline, j.ProviderAddrs = c.Bid.Provider, c.Bid.Price, deadline, provAddrs
			return j.move(market.StateAwarded, "to "+c.Bid.Provider)
		})
		if err != nil {
			return false
		}
		rq.notify(j2, "to "+c.Bid.Provider)
		ack, err := rq.sendAward(ctx, prov, w)
		if err == nil && ack.Accepted {
			j3, err := rq.update(j.ID, func(j *Job) error { return j.move(market.StateRunning, "acked by "+c.Bid.Provider) })
			if err == nil {
				rq.notify(j3, "acked by "+c.Bid.Provider)
			}
			return true
		}
		reason := "no ack"
		if err != nil {
			reason = err.Error()
		} else if ack.Reason != "" {
			reason = "refused: " + wire.Truncate(ack.Reason, maxPeerReason)
		}
		rq.log.Info("award not taken", "job", j.ID, "provider", c.Bid.Provider, "reason", reason)
		if err != nil {
			// The ack may have been lost: make sure this provider stops.
			rq.sendCancel(&Job{ID: j.ID, Attempt: j.Attempt, Provider: c.Bid.Provider}, "award withdrawn")
		}
		back, err := rq.update(j.ID, func(j *Job) error {
			j.Result, j.ResultEnvelope = nil, nil
			if w.Escrow != nil {
				// Funds stay locked until the escrow's deadline: a bidder
				// that makes the requester lock and then refuses gets no
				// second award of this job.
				j.Excluded = append(j.Excluded, c.Bid.Provider)
			}
			return j.move(market.StateBidding, c.Bid.Provider+": "+reason)
		})
		if err != nil {
			return false
		}
		rq.notify(back, c.Bid.Provider+": "+reason)
	}
	return false
}

func (rq *requester) sendAward(ctx context.Context, p peer.ID, w market.Award) (market.Ack, error) {
	env, err := market.Seal(rq.p.Key, market.TypeAward, w)
	if err != nil {
		return market.Ack{}, err
	}
	s, r, bw, err := rq.newStream(ctx, p, wire.AwardProtocol, rq.cfg.AckTimeout)
	if err != nil {
		return market.Ack{}, err
	}
	defer s.Close()
	if err := writeEnvelope(bw, env); err != nil {
		s.Reset()
		return market.Ack{}, err
	}
	var ack market.Ack
	ackEnv, err := readEnvelope(r, market.TypeAck, &ack)
	if err != nil {
		s.Reset()
		return market.Ack{}, err
	}
	if ackEnv.Signer != p.String() || ack.JobID != w.JobID || ack.Attempt != w.Attempt || ack.Provider != p.String() {
		return market.Ack{}, errors.New("ack does not match the award")
	}
	return ack, nil
}

// awaitResult waits for the provider's result until the deadline. It
// returns true when the job reached a final state.
func (rq *requester) awaitResult(ctx context.Context, j *Job) bool {
	rq.mu.Lock()
	arrived := rq.results[j.ID]
	rq.mu.Unlock()
	timer := time.NewTimer(time.Until(j.Deadline))
	defer timer.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	var lostSince time.Time
	for {
		cur, err := rq.Get(j.ID)
		if err != nil {
			return true
		}
		if r := cur.Result; r != nil && r.Attempt == cur.Attempt && r.Provider == cur.Provider {
			return rq.takeResult(ctx, cur)
		}
		select {
		case <-ctx.Done():
			rq.cancelled(cur, "cancelled by the requester")
			return true
		case <-timer.C:
			rq.sendCancel(cur, "result deadline passed")
			rq.requeue(cur, "provider "+cur.Provider+" sent no result by the deadline")
			return false
		case <-arrived:
		case <-check.C:
			// A provider that stays unreachable has failed: re-auction.
			if rq.reachable(ctx, cur) {
				lostSince = time.Time{}
				continue
			}
			if lostSince.IsZero() {
				lostSince = time.Now()
			}
			if time.Since(lostSince) >= rq.cfg.ProviderLost {
				rq.requeue(cur, "provider "+cur.Provider+" unreachable for "+rq.cfg.ProviderLost.String())
				return false
			}
		}
	}
}

// reachable reports whether a connection to a job's provider exists or
// can be made: at the addresses the peerstore knows, those kept with the
// job (the peerstore is empty after a restart), then those the DHT finds.
func (rq *requester) reachable(ctx context.Context, j *Job) bool {
	p, err := peer.Decode(j.Provider)
	if err != nil {
		return false
	}
	h := rq.p.Host
	if len(h.Network().ConnsToPeer(p)) > 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, _ := addrInfo(j.Provider, j.ProviderAddrs)
	info.Addrs = append(info.Addrs, h.Peerstore().Addrs(p)...)
	if len(info.Addrs) > 0 && h.Connect(ctx, info) == nil {
		return true
	}
	if h.DHT == nil {
		return false
	}
	found, err := h.DHT.FindPeer(ctx, p)
	return err == nil && h.Connect(ctx, found) == nil
}

// requeue excludes the job's provider and sends the job back to bidding.
func (rq *requester) requeue(j *Job, reason string) {
	j, err := rq.update(j.ID, func(j *Job) error {
		j.Excluded = append(j.Excluded, j.Provider)
		j.WaitingSince = time.Now().UTC()
		j.Result, j.ResultEnvelope = nil, nil
		return j.move(market.StateBidding, reason)
	})
	if err == nil {
		rq.count(j.Excluded[len(j.Excluded)-1], false)
		rq.notify(j, reason)
	}
}

// takeResult acts on a verified result.
func (rq *requester) takeResult(ctx context.Context, j *Job) bool {
	r := j.Result
	if r.Status == market.StatusSucceeded {
		j2, err := rq.update(j.ID, func(j *Job) error { return j.move(market.StateFetching, "result in") })
		if err != nil {
			return true
		}
		rq.notify(j2, "result in")
		return rq.fetchOutputs(ctx, j2)
	}
	if r.ExitCode == providerFault {
		rq.requeue(j, "provider failed: "+r.Reason)
		return false
	}
	j2, err := rq.update(j.ID, func(j *Job) error { return j.move(market.StateFailed, r.Reason) })
	if err == nil {
		rq.notify(j2, r.Reason)
	}
	return true
}

// maxQueueWaits bounds the wall limits a result deadline allows for jobs
// queued ahead on the provider.
const maxQueueWaits = 4

// errFinal: a result for a job that has already ended.
var errFinal = errors.New("job has ended")

// providerFault is the exit code of results that report a fault of the
// provider rather than of the job (inputs unreachable, restart): the job
// goes to a new auction.
const providerFault = -100

// fetchOutputs pins every output, each within its max_bytes, then marks
// the job done. It returns false when the job went back to bidding.
func (rq *requester) fetchOutputs(ctx context.Context, j *Job) bool {
	for _, o := range j.Result.Outputs {
		c, err := cid.Decode(o.CID)
		if err == nil {
			err = rq.pinOutput(ctx, c, j.ID+"/"+o.Name, j.Spec.OutputLimit(o.Name))
		}
		if err != nil {
			if ctx.Err() != nil {
				rq.cancelled(j, "cancelled by the requester")
				return true
			}
			// The outputs are gone with their provider, or it sent more
			// than the spec allows: run the job again elsewhere.
			rq.requeue(j, fmt.Sprintf("fetch output %s from %s: %v", o.Name, j.Provider, err))
			return false
		}
	}
	j2, err := rq.update(j.ID, func(j *Job) error { return j.move(market.StateSucceeded, "outputs fetched") })
	if err == nil {
		rq.count(j2.Provider, true)
		rq.notify(j2, "outputs fetched")
	}
	if rq.p.Settlement != nil {
		rq.pay.kickSettle() // release the escrow
	}
	return true
}

// HoldLog pins a finished job's log by the CID its result names, within
// the log limit (an honest provider keeps no more), so that reading it
// never fetches more than that from a provider.
func (rq *requester) HoldLog(ctx context.Context, j *Job) error {
	if j.Result == nil || j.Result.LogCID == "" {
		return nil
	}
	c, err := cid.Decode(j.Result.LogCID)
	if err != nil {
		return err
	}
	return rq.pinOutput(ctx, c, j.ID+"/log", rq.cfg.MaxLogBytes+int64(len(truncatedNote(rq.cfg.MaxLogBytes)))+tailBytes)
}

// errOutputTooLarge: an output's DAG passed its max_bytes while it came.
var errOutputTooLarge = errors.New("larger than its max_bytes")

// pinOutput pins one output, stopping the fetch once its blocks pass
// what an output of maxBytes may take (market.OutputBlockLimit).
func (rq *requester) pinOutput(ctx context.Context, c cid.Cid, name string, maxBytes int64) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	bound := market.OutputBlockLimit(maxBytes)
	err := rq.p.Content.Pin(ctx, c, name, func(done, _ int64) {
		if done > bound {
			cancel(fmt.Errorf("%w (%d bytes)", errOutputTooLarge, maxBytes))
		}
	})
	if cause := context.Cause(ctx); errors.Is(cause, errOutputTooLarge) {
		rq.p.Content.Unpin(c)
		return cause
	}
	return err
}

// handleResult takes a provider's signed result.
func (rq *requester) handleResult(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	r, w := bufReader(s), bufWriter(s)
	var res market.Result
	env, err := readEnvelope(r, market.TypeResult, &res)
	if err != nil {
		rq.log.Warn("bad result", "peer", s.Conn().RemotePeer(), "error", err)
		s.Reset()
		return
	}
	signer, _ := peer.Decode(env.Signer)
	if err := market.CheckJobID(res.JobID); err != nil {
		wire.WriteReply(w, wire.Refuse(err))
		return
	}
	j, err := rq.update(res.JobID, func(j *Job) error {
		award := market.Award{JobID: j.ID, Attempt: j.Attempt, Provider: j.Provider, Spec: j.Spec}
		if err := market.CheckResult(res, signer, award); err != nil {
			return err
		}
		if j.State.Final() {
			return errFinal
		}
		// A quick job's result may come before the ack has been recorded.
		if j.State != market.StateRunning && j.State != market.StateAwarded {
			return fmt.Errorf("job is %s", j.State)
		}
		j.Result, j.ResultEnvelope = &res, &env
		return nil
	})
	if errors.Is(err, errFinal) {
		wire.WriteReply(w, wire.Reply{Code: wire.CodeFinal}) // nothing more to do; stop retrying
		return
	}
	if err != nil {
		rq.log.Warn("result rejected", "job", res.JobID, "peer", signer, "error", err)
		wire.WriteReply(w, wire.Refuse(err))
		return
	}
	wire.WriteReply(w, wire.OK)
	rq.mu.Lock()
	ch := rq.results[j.ID]
	rq.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
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
