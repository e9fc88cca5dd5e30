package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

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
				rq.p.Metrics.BidReceived(false)
				continue
			}
			if rq.rep.Summarize(c.bid.Provider, rq.outcomes(c.bid.Provider)).Banned {
				rq.log.Info("bid refused: provider banned for mismatches", "job", j.ID, "provider", c.bid.Provider)
				rq.p.Metrics.BidReceived(false)
				continue
			}
			if excluded[c.bid.Provider] {
				rq.p.Metrics.BidReceived(false)
				continue
			}
			rq.p.Metrics.BidReceived(true)
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

// candidate adds what this node knows of the bidder: reputation from its
// own past outcomes and the receipts it counted, latency, relay.
func (rq *requester) candidate(c candidate) market.Candidate {
	rep := rq.rep.Summarize(c.bid.Provider, rq.outcomes(c.bid.Provider)).Score
	out := market.Candidate{Bid: c.bid, Reputation: rep,
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
	w := bufWriter(s)
	data, err := wire.ReadFrame(bufReader(s), market.MaxEnvelopeBytes)
	var env market.Envelope
	if err == nil {
		env, err = market.ParseEnvelope(data)
	}
	if err != nil || env.Type != market.TypeBid || env.Signer != s.Conn().RemotePeer().String() {
		rq.log.Debug("bad bid", "peer", s.Conn().RemotePeer(), "error", err)
		s.Reset()
		return
	}
	// Most bids of a large swarm come after their auction has closed: the
	// auction the bid names is looked up before its signature is checked,
	// which costs more than the rest of the bid.
	var named struct {
		JobID   string `json:"job_id"`
		Attempt int    `json:"attempt"`
	}
	if json.Unmarshal(env.Payload, &named) != nil {
		s.Reset()
		return
	}
	rq.mu.Lock()
	_, open := rq.auctions[auctionKey(named.JobID, named.Attempt)]
	rq.mu.Unlock()
	if !open {
		wire.WriteReply(w, wire.Reply{Code: wire.CodeClosed})
		return
	}
	var bid market.Bid
	signer, err := env.Open(market.TypeBid, &bid)
	if err != nil || signer != s.Conn().RemotePeer() {
		rq.log.Debug("bad bid", "peer", s.Conn().RemotePeer(), "error", err)
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
		var provAddrs []string
		for _, a := range rq.p.Host.Peerstore().Addrs(prov) {
			if len(provAddrs) < market.MaxRequesterAddrs {
				provAddrs = append(provAddrs, a.String())
			}
		}
		if j.Parent != "" && !rq.claimReplica(j, c.Bid, observedAddrs(rq.p.Host, prov, provAddrs)) {
			continue // another replica's provider, or not independent of one
		}
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
		j2, err := rq.update(j.ID, func(j *Job) error {
			j.Provider, j.Price, j.Deadline, j.ProviderAddrs = c.Bid.Provider, c.Bid.Price, deadline, provAddrs
			if j.Parent != "" {
				j.Payee = c.Bid.Payee
			}
			return j.move(market.StateAwarded, "to "+c.Bid.Provider)
		})
		if err != nil {
			return false
		}
		rq.notify(j2, "to "+c.Bid.Provider)
		ack, ackEnv, err := rq.sendAward(ctx, prov, w)
		rq.p.Metrics.Awarded(err == nil && ack.Accepted)
		if err == nil && ack.Accepted {
			j3, err := rq.update(j.ID, func(j *Job) error {
				j.Ack = &ackEnv // the receipt checks that it names the escrow
				return j.move(market.StateRunning, "acked by "+c.Bid.Provider)
			})
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
		rq.p.Metrics.Reauctioned(CauseAwardRefused)
		rq.notify(back, c.Bid.Provider+": "+reason)
	}
	return false
}

func (rq *requester) sendAward(ctx context.Context, p peer.ID, w market.Award) (market.Ack, market.Envelope, error) {
	env, err := market.Seal(rq.p.Key, market.TypeAward, w)
	if err != nil {
		return market.Ack{}, market.Envelope{}, err
	}
	s, r, bw, err := rq.newStream(ctx, p, wire.AwardProtocol, rq.cfg.AckTimeout)
	if err != nil {
		return market.Ack{}, market.Envelope{}, err
	}
	defer s.Close()
	if err := writeEnvelope(bw, env); err != nil {
		s.Reset()
		return market.Ack{}, market.Envelope{}, err
	}
	var ack market.Ack
	ackEnv, err := readEnvelope(r, market.TypeAck, &ack)
	if err != nil {
		s.Reset()
		return market.Ack{}, market.Envelope{}, err
	}
	if ackEnv.Signer != p.String() || ack.JobID != w.JobID || ack.Attempt != w.Attempt || ack.Provider != p.String() {
		return market.Ack{}, market.Envelope{}, errors.New("ack does not match the award")
	}
	return ack, ackEnv, nil
}

// observedAddrs is what independence is judged by: where the provider's
// connections come from, as this node sees them, which a peer cannot
// choose the way it chooses the addresses it announces; then those it
// announces.
func observedAddrs(h host.Host, p peer.ID, announced []string) []string {
	var out []string
	for _, c := range h.Network().ConnsToPeer(p) {
		out = append(out, c.RemoteMultiaddr().String())
	}
	return append(out, announced...)
}
