package jobs

import (
	"context"
	"errors"
	"fmt"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Submit validates a spec, stores the job and starts its auction. It
// returns the job's ID at once.
func (e *Engine) Submit(spec market.Spec) (*Job, error) {
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	j := &Job{ID: newJobID(), Role: RoleRequester, State: market.StateSubmitted, Spec: spec,
		Requester: e.self.String(), CreatedAt: now, UpdatedAt: now,
		Events: []Event{{Time: now, State: market.StateSubmitted}}}
	if err := e.store.put(j); err != nil {
		return nil, fmt.Errorf("store job: %w", err)
	}
	e.notify(j, "")
	e.startRequester(j.ID)
	return j, nil
}

// Get returns a job this node requested.
func (e *Engine) Get(id string) (*Job, error) { return e.store.get(RoleRequester, id, 0) }

// List returns the jobs this node requested, newest first.
func (e *Engine) List() ([]*Job, error) { return e.store.list(RoleRequester) }

// Provided returns the jobs this node ran or runs for others.
func (e *Engine) Provided() ([]*Job, error) { return e.store.list(RoleProvider) }

// Cancel stops a job at whatever stage it is.
func (e *Engine) Cancel(id string) (*Job, error) {
	j, err := e.Get(id)
	if err != nil {
		return nil, err
	}
	if j.State.Final() {
		return j, fmt.Errorf("job %s is already %s", id, j.State)
	}
	e.mu.Lock()
	stop := e.waiting[id]
	e.mu.Unlock()
	if stop != nil {
		stop() // the loop records the cancellation and tells the provider
	}
	return j, nil
}

func (e *Engine) startRequester(id string) {
	ctx, cancel := context.WithCancel(e.ctx)
	e.mu.Lock()
	e.waiting[id] = cancel
	e.results[id] = make(chan struct{}, 1)
	e.mu.Unlock()
	e.spawn(func() {
		defer func() {
			e.mu.Lock()
			delete(e.waiting, id)
			delete(e.results, id)
			e.mu.Unlock()
			cancel()
		}()
		e.runRequester(ctx, id)
	})
}

// runRequester drives one job to a final state: auctions, awards, waits for
// the result, fetches the outputs; a failed or silent provider means a new
// auction, until MaxFailures providers have failed it or no provider takes
// it within BidTimeout.
func (e *Engine) runRequester(ctx context.Context, id string) {
	fail := func(reason string) {
		j, err := e.update(id, func(j *Job) error { return j.move(market.StateFailed, reason) })
		if err == nil {
			e.notify(j, reason)
		}
	}
	for {
		j, err := e.Get(id)
		if err != nil {
			e.log.Error("job vanished", "job", id, "error", err)
			return
		}
		if ctx.Err() != nil {
			e.cancelled(j, "cancelled by the requester")
			return
		}
		switch j.State {
		case market.StateRunning:
			if !e.awaitResult(ctx, j) {
				continue
			}
			return
		case market.StateFetching:
			if e.fetchOutputs(ctx, j) {
				return
			}
			continue
		}
		if j.State == market.StateSubmitted {
			// The requester serves the job's data: it must hold every
			// input before any provider is asked to fetch it.
			if err := e.holdInputs(ctx, j); err != nil {
				if ctx.Err() != nil {
					e.cancelled(j, "cancelled by the requester")
					return
				}
				fail(err.Error())
				return
			}
		}
		// submitted, bidding or awarded (after a restart): a new auction.
		if len(j.Excluded) >= e.cfg.MaxFailures {
			fail(fmt.Sprintf("%d providers failed the job", len(j.Excluded)))
			return
		}
		if !j.WaitingSince.IsZero() && time.Since(j.WaitingSince) > e.cfg.BidTimeout && j.State == market.StateBidding {
			fail(fmt.Sprintf("%v within %s (%d auctions)", errNoProvider, e.cfg.BidTimeout, j.Attempt))
			return
		}
		j, err = e.update(id, func(j *Job) error {
			if j.State != market.StateBidding || j.WaitingSince.IsZero() {
				j.WaitingSince = time.Now().UTC()
			}
			j.Attempt++
			j.Provider = ""
			return j.move(market.StateBidding, fmt.Sprintf("auction %d", j.Attempt))
		})
		if err != nil {
			e.log.Error("job state", "job", id, "error", err)
			return
		}
		e.notify(j, fmt.Sprintf("auction %d", j.Attempt))
		// Auctions run a few at a time: a burst of jobs queues here rather
		// than flooding the swarm with announcements nobody can take.
		select {
		case e.auctionSlots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		bids, err := e.auction(ctx, j)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("auction failed", "job", id, "error", err)
		}
		awarded := len(bids) > 0 && e.award(ctx, j, bids)
		<-e.auctionSlots
		if !awarded && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(min(time.Duration(j.Attempt)*100*time.Millisecond, 2*time.Second)):
			}
		}
	}
}

// holdInputs pins the module and every input, fetching what is not here.
func (e *Engine) holdInputs(ctx context.Context, j *Job) error {
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
		if err := e.p.Content.Pin(ctx, id, "job "+j.ID, nil); err != nil {
			return fmt.Errorf("%s (%s): %v", names[c], c, err)
		}
	}
	if e.p.CheckInputs != nil {
		return e.p.CheckInputs(ctx, j.Spec)
	}
	return nil
}

// cancelled records a cancellation by the user. When the engine itself is
// stopping, the job keeps its state: it resumes at the next start.
func (e *Engine) cancelled(j *Job, reason string) {
	if e.ctx.Err() != nil {
		return
	}
	if j.Provider != "" && (j.State == market.StateRunning || j.State == market.StateAwarded) {
		e.sendCancel(j, reason)
	}
	j, err := e.update(j.ID, func(j *Job) error { return j.move(market.StateCancelled, reason) })
	if err == nil {
		e.notify(j, reason)
	}
}

func auctionKey(id string, attempt int) string { return fmt.Sprintf("%s/%d", id, attempt) }

// auction announces the job and collects bids until the window closes, or
// EnoughBids arrive, or BidGrace after the first bid.
func (e *Engine) auction(ctx context.Context, j *Job) ([]market.Candidate, error) {
	now := time.Now().UTC()
	var addrs []string
	for _, a := range e.p.Host.Addrs() {
		if len(addrs) < market.MaxRequesterAddrs {
			addrs = append(addrs, a.String())
		}
	}
	a := market.Announcement{JobID: j.ID, Requester: e.self.String(), RequesterAddrs: addrs, Attempt: j.Attempt,
		Spec: j.Spec, IssuedAt: now, BidsUntil: now.Add(e.cfg.BidWindow)}
	env, err := market.Seal(e.p.Key, market.TypeAnnouncement, a)
	if err != nil {
		return nil, err
	}
	data, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	bids := make(chan candidate, 64)
	key := auctionKey(j.ID, j.Attempt)
	e.mu.Lock()
	e.auctions[key] = bids
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.auctions, key)
		e.mu.Unlock()
	}()
	if err := e.topic.Publish(ctx, data); err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	window := time.NewTimer(e.cfg.BidWindow)
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
				e.log.Warn("bid rejected", "job", j.ID, "provider", c.signer, "error", err)
				continue
			}
			if excluded[c.bid.Provider] {
				continue
			}
			out = append(out, e.candidate(c))
			if len(out) >= e.cfg.EnoughBids {
				return out, nil
			}
			if grace == nil {
				grace = time.After(e.cfg.BidGrace)
			}
		}
	}
}

// candidate adds what this node knows of the bidder: reputation from past
// outcomes, latency, relay.
func (e *Engine) candidate(c candidate) market.Candidate {
	out := market.Candidate{Bid: c.bid, Reputation: e.outcomes(c.bid.Provider).Reputation(),
		Latency: e.p.Host.Peerstore().LatencyEWMA(c.signer)}
	for _, conn := range e.p.Host.Network().ConnsToPeer(c.signer) {
		if conn.Stat().Limited {
			out.Relayed = true
		}
	}
	return out
}

// outcomes returns this node's tally of finished jobs with a provider.
func (e *Engine) outcomes(provider string) market.Outcomes {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tally[provider]
}

// count records an outcome with a provider.
func (e *Engine) count(provider string, succeeded bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.tally[provider]
	if succeeded {
		o.Succeeded++
	} else {
		o.Failed++
	}
	e.tally[provider] = o
}

// handleBid takes one bid from a provider.
func (e *Engine) handleBid(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := bufReader(s), bufWriter(s)
	var bid market.Bid
	env, err := readEnvelope(r, market.TypeBid, &bid)
	if err != nil {
		e.log.Debug("bad bid", "peer", s.Conn().RemotePeer(), "error", err)
		s.Reset()
		return
	}
	signer, _ := peer.Decode(env.Signer)
	if signer != s.Conn().RemotePeer() {
		s.Reset()
		return
	}
	e.mu.Lock()
	ch, ok := e.auctions[auctionKey(bid.JobID, bid.Attempt)]
	e.mu.Unlock()
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
func (e *Engine) award(ctx context.Context, j *Job, cands []market.Candidate) bool {
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
		deadline := now.Add(e.cfg.InputTimeout + wall*waits + e.cfg.ResultMargin)
		w := market.Award{JobID: j.ID, Attempt: j.Attempt, Requester: e.self.String(), Provider: c.Bid.Provider,
			Price: c.Bid.Price, Spec: j.Spec, IssuedAt: now, Deadline: deadline}
		if e.settles(j) && c.Bid.Price > 0 {
			t, lockErr := e.lockEscrow(ctx, j, c.Bid, deadline)
			if errors.Is(lockErr, settlement.ErrFunds) {
				j2, err := e.update(j.ID, func(j *Job) error { return j.move(market.StateFailed, lockErr.Error()) })
				if err == nil {
					e.notify(j2, j2.Reason)
				}
				return true
			}
			if lockErr != nil {
				e.log.Info("no escrow for this bid", "job", j.ID, "provider", c.Bid.Provider, "error", lockErr)
				continue
			}
			w.Escrow = t
			w.IssuedAt = time.Now().UTC() // the lock took a ledger round trip
		}
		var provAddrs []string
		for _, a := range e.p.Host.Peerstore().Addrs(prov) {
			if len(provAddrs) < market.MaxRequesterAddrs {
				provAddrs = append(provAddrs, a.String())
			}
		}
		j2, err := e.update(j.ID, func(j *Job) error {
			j.Provider, j.Price, j.Deadline, j.ProviderAddrs = c.Bid.Provider, c.Bid.Price, deadline, provAddrs
			return j.move(market.StateAwarded, "to "+c.Bid.Provider)
		})
		if err != nil {
			return false
		}
		e.notify(j2, "to "+c.Bid.Provider)
		ack, err := e.sendAward(ctx, prov, w)
		if err == nil && ack.Accepted {
			j3, err := e.update(j.ID, func(j *Job) error { return j.move(market.StateRunning, "acked by "+c.Bid.Provider) })
			if err == nil {
				e.notify(j3, "acked by "+c.Bid.Provider)
			}
			return true
		}
		reason := "no ack"
		if err != nil {
			reason = err.Error()
		} else if ack.Reason != "" {
			reason = "refused: " + wire.Truncate(ack.Reason, maxPeerReason)
		}
		e.log.Info("award not taken", "job", j.ID, "provider", c.Bid.Provider, "reason", reason)
		if err != nil {
			// The ack may have been lost: make sure this provider stops.
			e.sendCancel(&Job{ID: j.ID, Attempt: j.Attempt, Provider: c.Bid.Provider}, "award withdrawn")
		}
		back, err := e.update(j.ID, func(j *Job) error {
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
		e.notify(back, c.Bid.Provider+": "+reason)
	}
	return false
}

func (e *Engine) sendAward(ctx context.Context, p peer.ID, w market.Award) (market.Ack, error) {
	env, err := market.Seal(e.p.Key, market.TypeAward, w)
	if err != nil {
		return market.Ack{}, err
	}
	s, r, bw, err := e.newStream(ctx, p, wire.AwardProtocol, e.cfg.AckTimeout)
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
func (e *Engine) awaitResult(ctx context.Context, j *Job) bool {
	e.mu.Lock()
	arrived := e.results[j.ID]
	e.mu.Unlock()
	timer := time.NewTimer(time.Until(j.Deadline))
	defer timer.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	var lostSince time.Time
	for {
		cur, err := e.Get(j.ID)
		if err != nil {
			return true
		}
		if r := cur.Result; r != nil && r.Attempt == cur.Attempt && r.Provider == cur.Provider {
			return e.takeResult(ctx, cur)
		}
		select {
		case <-ctx.Done():
			e.cancelled(cur, "cancelled by the requester")
			return true
		case <-timer.C:
			e.sendCancel(cur, "result deadline passed")
			e.requeue(cur, "provider "+cur.Provider+" sent no result by the deadline")
			return false
		case <-arrived:
		case <-check.C:
			// A provider that stays unreachable has failed: re-auction.
			if e.reachable(ctx, cur) {
				lostSince = time.Time{}
				continue
			}
			if lostSince.IsZero() {
				lostSince = time.Now()
			}
			if time.Since(lostSince) >= e.cfg.ProviderLost {
				e.requeue(cur, "provider "+cur.Provider+" unreachable for "+e.cfg.ProviderLost.String())
				return false
			}
		}
	}
}

// reachable reports whether a connection to a job's provider exists or
// can be made: at the addresses the peerstore knows, those kept with the
// job (the peerstore is empty after a restart), then those the DHT finds.
func (e *Engine) reachable(ctx context.Context, j *Job) bool {
	p, err := peer.Decode(j.Provider)
	if err != nil {
		return false
	}
	h := e.p.Host
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
func (e *Engine) requeue(j *Job, reason string) {
	j, err := e.update(j.ID, func(j *Job) error {
		j.Excluded = append(j.Excluded, j.Provider)
		j.WaitingSince = time.Now().UTC()
		j.Result, j.ResultEnvelope = nil, nil
		return j.move(market.StateBidding, reason)
	})
	if err == nil {
		e.count(j.Excluded[len(j.Excluded)-1], false)
		e.notify(j, reason)
	}
}

// takeResult acts on a verified result.
func (e *Engine) takeResult(ctx context.Context, j *Job) bool {
	r := j.Result
	if r.Status == market.StatusSucceeded {
		j2, err := e.update(j.ID, func(j *Job) error { return j.move(market.StateFetching, "result in") })
		if err != nil {
			return true
		}
		e.notify(j2, "result in")
		return e.fetchOutputs(ctx, j2)
	}
	if r.ExitCode == providerFault {
		e.requeue(j, "provider failed: "+r.Reason)
		return false
	}
	j2, err := e.update(j.ID, func(j *Job) error { return j.move(market.StateFailed, r.Reason) })
	if err == nil {
		e.notify(j2, r.Reason)
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
func (e *Engine) fetchOutputs(ctx context.Context, j *Job) bool {
	for _, o := range j.Result.Outputs {
		c, err := cid.Decode(o.CID)
		if err == nil {
			err = e.pinOutput(ctx, c, j.ID+"/"+o.Name, j.Spec.OutputLimit(o.Name))
		}
		if err != nil {
			if ctx.Err() != nil {
				e.cancelled(j, "cancelled by the requester")
				return true
			}
			// The outputs are gone with their provider, or it sent more
			// than the spec allows: run the job again elsewhere.
			e.requeue(j, fmt.Sprintf("fetch output %s from %s: %v", o.Name, j.Provider, err))
			return false
		}
	}
	j2, err := e.update(j.ID, func(j *Job) error { return j.move(market.StateSucceeded, "outputs fetched") })
	if err == nil {
		e.count(j2.Provider, true)
		e.notify(j2, "outputs fetched")
	}
	if e.p.Settlement != nil {
		e.kickSettle() // release the escrow
	}
	return true
}

// HoldLog pins a finished job's log by the CID its result names, within
// the log limit (an honest provider keeps no more), so that reading it
// never fetches more than that from a provider.
func (e *Engine) HoldLog(ctx context.Context, j *Job) error {
	if j.Result == nil || j.Result.LogCID == "" {
		return nil
	}
	c, err := cid.Decode(j.Result.LogCID)
	if err != nil {
		return err
	}
	return e.pinOutput(ctx, c, j.ID+"/log", e.cfg.MaxLogBytes+int64(len(truncatedNote(e.cfg.MaxLogBytes)))+tailBytes)
}

// errOutputTooLarge: an output's DAG passed its max_bytes while it came.
var errOutputTooLarge = errors.New("larger than its max_bytes")

// pinOutput pins one output, stopping the fetch once its blocks pass
// what an output of maxBytes may take (market.OutputBlockLimit).
func (e *Engine) pinOutput(ctx context.Context, c cid.Cid, name string, maxBytes int64) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	bound := market.OutputBlockLimit(maxBytes)
	err := e.p.Content.Pin(ctx, c, name, func(done, _ int64) {
		if done > bound {
			cancel(fmt.Errorf("%w (%d bytes)", errOutputTooLarge, maxBytes))
		}
	})
	if cause := context.Cause(ctx); errors.Is(cause, errOutputTooLarge) {
		e.p.Content.Unpin(c)
		return cause
	}
	return err
}

// handleResult takes a provider's signed result.
func (e *Engine) handleResult(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	r, w := bufReader(s), bufWriter(s)
	var res market.Result
	env, err := readEnvelope(r, market.TypeResult, &res)
	if err != nil {
		e.log.Warn("bad result", "peer", s.Conn().RemotePeer(), "error", err)
		s.Reset()
		return
	}
	signer, _ := peer.Decode(env.Signer)
	if err := market.CheckJobID(res.JobID); err != nil {
		wire.WriteReply(w, wire.Refuse(err))
		return
	}
	j, err := e.update(res.JobID, func(j *Job) error {
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
		e.log.Warn("result rejected", "job", res.JobID, "peer", signer, "error", err)
		wire.WriteReply(w, wire.Refuse(err))
		return
	}
	wire.WriteReply(w, wire.OK)
	e.mu.Lock()
	ch := e.results[j.ID]
	e.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (e *Engine) sendCancel(j *Job, reason string) {
	prov, err := peer.Decode(j.Provider)
	if err != nil {
		return
	}
	env, err := market.Seal(e.p.Key, market.TypeCancel, market.Cancel{JobID: j.ID, Attempt: j.Attempt, Requester: e.self.String(), Reason: reason})
	if err != nil {
		return
	}
	s, _, w, err := e.newStream(e.ctx, prov, wire.CancelProtocol, 5*time.Second)
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
