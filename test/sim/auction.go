package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Timeouts of the provider's and the requester's exchanges, as the jobs
// engine sets them: a bid's exchange, and a result's.
const (
	bidTimeout    = 5 * time.Second
	resultTimeout = 10 * time.Second
)

// auction is one attempt of a job: its announcement and the bids it took.
type auction struct {
	j     *job
	ann   market.Announcement
	open  bool
	cands []market.Candidate
}

// auctionKey names one attempt of a job, as the jobs engine does.
func auctionKey(id string, attempt int) string { return fmt.Sprintf("%s/%d", id, attempt) }

// replyBytes is the size of a reply envelope (wire.Reply).
func replyBytes(r wire.Reply) int {
	b, _ := json.Marshal(r)
	return len(b) + 1
}

// startAuction announces j's next attempt, or fails the job once it has
// waited past BidTimeout.
func (s *sim) startAuction(j *job) {
	if s.net.now-j.waiting > s.cfg.BidTimeout {
		j.state = stateFailed
		return
	}
	j.attempt++
	rq := s.nodes[j.requester]
	now := s.clock()
	a := market.Announcement{JobID: j.id, Requester: rq.text, Attempt: j.attempt, Spec: j.spec, IssuedAt: now,
		BidsUntil: now.Add(s.cfg.BidWindow),
		RequesterAddrs: []string{fmt.Sprintf("/ip4/10.%d.%d.%d/udp/4001/quic-v1", j.requester>>16&255, j.requester>>8&255, j.requester&255),
			fmt.Sprintf("/ip6/fd00::%x/udp/4001/quic-v1", j.requester)}}
	var data []byte
	err := s.timed("seal announcement", func() error {
		env, err := market.Seal(rq.key, market.TypeAnnouncement, a)
		if err != nil {
			return err
		}
		data, err = env.Marshal()
		return err
	})
	if err != nil {
		j.state = stateFailed
		return
	}
	au := &auction{j: j, ann: a, open: true}
	rq.auctions[auctionKey(j.id, j.attempt)] = au
	s.st.auctions++
	s.announceBytes = len(data)
	m := &message{author: j.requester, bytes: len(data)}
	m.receive = func(b int32) bool { return s.onAnnouncement(b, data) }
	s.g.publish(m)
	s.net.at(s.cfg.BidWindow, func() { s.closeAuction(au) })
}

// onAnnouncement is node b's topic validator and bidder: it opens and
// checks the envelope with the market's code, then bids when its
// strategy takes the job.
func (s *sim) onAnnouncement(b int32, data []byte) bool {
	var a market.Announcement
	var signer peer.ID
	err := s.timed("validate announcement", func() error {
		env, err := market.ParseEnvelope(data)
		if err != nil {
			return err
		}
		if signer, err = env.Open(market.TypeAnnouncement, &a); err != nil {
			return err
		}
		return market.CheckAnnouncement(a, signer, s.clock())
	})
	if err != nil {
		s.st.rejected++
		return false
	}
	n := s.nodes[b]
	if a.Requester == n.text || !n.provider {
		return true
	}
	d := s.strategy().ShouldBid(market.BidRequest{Announcement: a, Capacity: n.capacity, Load: n.load})
	if !d.Bid {
		return true
	}
	bid := market.Bid{JobID: a.JobID, Attempt: a.Attempt, Provider: n.text, Price: n.capacity.Prices.Quote(a.Spec),
		QueueDepth: max(0, n.load.Running+n.load.Queued-s.cfg.MaxConcurrent+1), ExpiresAt: s.clock().Add(time.Minute),
		Mint: a.Spec.Price.Mint}
	var bidData []byte
	err = s.timed("seal bid", func() error {
		env, err := market.Seal(n.key, market.TypeBid, bid)
		if err != nil {
			return err
		}
		bidData, err = env.Marshal()
		return err
	})
	if err != nil {
		return true
	}
	rq := s.index(a.Requester)
	s.connect(b, rq, func() {
		start := s.net.now
		s.net.send("bid", b, rq, len(bidData)+1, bidTimeout, func() {
			reply := s.handleBid(rq, b, bidData)
			s.net.send("bid reply", rq, b, replyBytes(reply), bidTimeout-(s.net.now-start), func() {})
		})
	})
	return true
}

// index finds a node by its peer ID text; -1: none.
func (s *sim) index(text string) int32 {
	if i, ok := s.byText[text]; ok {
		return i
	}
	return -1
}

// handleBid is the requester's side of a bid: open the envelope, find the
// auction, check the bid against its announcement, keep the candidate.
func (s *sim) handleBid(r, from int32, data []byte) wire.Reply {
	var bid market.Bid
	var signer peer.ID
	err := s.timed("open bid", func() error {
		env, err := market.ParseEnvelope(data)
		if err != nil {
			return err
		}
		signer, err = env.Open(market.TypeBid, &bid)
		return err
	})
	if err != nil || signer != s.nodes[from].id {
		return wire.Reply{Code: wire.CodeClosed}
	}
	s.st.bidsDelivered++
	au, ok := s.nodes[r].auctions[auctionKey(bid.JobID, bid.Attempt)]
	if !ok || !au.open {
		s.st.bidsLate++
		return wire.Reply{Code: wire.CodeClosed}
	}
	if err := s.timed("check bid", func() error { return market.CheckBid(bid, signer, au.ann, s.clock()) }); err != nil {
		return wire.Reply{Code: wire.CodeClosed}
	}
	c := market.Candidate{Bid: bid, Reputation: s.nodes[r].tally[bid.Provider].Reputation(), Latency: s.net.rtt(r, from)}
	au.cands = append(au.cands, c)
	if len(au.cands) >= s.cfg.EnoughBids {
		s.closeAuction(au)
	} else if len(au.cands) == 1 {
		s.net.at(s.cfg.BidGrace, func() { s.closeAuction(au) })
	}
	return wire.OK
}

// closeAuction ends the bidding and offers the job to the bidders in the
// market's rank order.
func (s *sim) closeAuction(au *auction) {
	if !au.open {
		return
	}
	au.open = false
	if len(au.cands) == 0 {
		s.st.noBids++
		s.again(au.j)
		return
	}
	var ranked []market.Candidate
	_ = s.timed("rank", func() error { ranked = market.Rank(au.cands, au.j.spec.MaxPrice()); return nil })
	s.award(au, ranked, 0)
}

// again runs another auction after the jobs engine's back-off.
func (s *sim) again(j *job) {
	s.net.at(min(time.Duration(j.attempt)*100*time.Millisecond, 2*time.Second), func() { s.startAuction(j) })
}

// award offers the job to ranked[i]; a refusal or no ack within
// AckTimeout moves on to the next bidder.
func (s *sim) award(au *auction, ranked []market.Candidate, i int) {
	j := au.j
	if i >= len(ranked) {
		s.st.allRefused++
		s.again(j)
		return
	}
	c := ranked[i]
	p := s.index(c.Bid.Provider)
	rq := s.nodes[j.requester]
	now := s.clock()
	wall := time.Duration(j.spec.Limits.WallSeconds) * time.Second
	deadline := now.Add(s.cfg.InputTimeout + wall*time.Duration(1+min(c.Bid.QueueDepth, maxQueueWaits)) + s.cfg.ResultMargin)
	w := market.Award{JobID: j.id, Attempt: j.attempt, Requester: rq.text, Provider: c.Bid.Provider, Price: c.Bid.Price,
		Spec: j.spec, IssuedAt: now, Deadline: deadline}
	var data []byte
	if err := s.timed("seal award", func() error {
		env, err := market.Seal(rq.key, market.TypeAward, w)
		if err != nil {
			return err
		}
		data, err = env.Marshal()
		return err
	}); err != nil {
		s.award(au, ranked, i+1)
		return
	}
	s.st.awardsSent++
	answered := false
	s.net.at(s.cfg.AckTimeout, func() {
		if answered {
			return
		}
		answered = true
		s.st.acksLost++
		// The ack may have been lost: make sure this provider stops.
		s.net.send("cancel", j.requester, p, 200, 0, func() { s.cancel(p, j) })
		s.award(au, ranked, i+1)
	})
	start := s.net.now
	s.net.send("award", j.requester, p, len(data)+1, s.cfg.AckTimeout, func() {
		ack, ackData := s.handleAward(p, data)
		s.net.send("ack", p, j.requester, len(ackData)+1, s.cfg.AckTimeout-(s.net.now-start), func() {
			if answered {
				return
			}
			answered = true
			if err := s.openAck(j.requester, p, ackData, w); err != nil || !ack.Accepted {
				s.st.refused++
				s.award(au, ranked, i+1)
				return
			}
			s.st.awarded++
			if s.g.o.neighbour(j.requester, p) {
				s.st.neighbourWins++
			}
			j.state, j.started, j.provider, j.award = stateRunning, s.net.now, p, w
		})
	})
}

// handleAward is the provider's side of an award: open and check it, ask
// the strategy again with the load of now, take the job and ack.
func (s *sim) handleAward(p int32, data []byte) (market.Ack, []byte) {
	n := s.nodes[p]
	var w market.Award
	err := s.timed("open award", func() error {
		env, err := market.ParseEnvelope(data)
		if err != nil {
			return err
		}
		signer, err := env.Open(market.TypeAward, &w)
		if err != nil {
			return err
		}
		return market.CheckAward(w, signer, n.id, s.clock())
	})
	ack := market.Ack{JobID: w.JobID, Attempt: w.Attempt, Provider: n.text, Accepted: err == nil}
	if err != nil {
		ack.Reason = err.Error()
	} else {
		a := market.Announcement{JobID: w.JobID, Requester: w.Requester, Attempt: w.Attempt, Spec: w.Spec}
		if d := s.strategy().ShouldBid(market.BidRequest{Announcement: a, Capacity: n.capacity, Load: n.load}); !d.Bid {
			ack.Accepted, ack.Reason = false, d.Reason
		} else {
			s.take(p, s.jobs[s.jobIndex(w.JobID)])
		}
	}
	var out []byte
	_ = s.timed("seal ack", func() error {
		env, err := market.Seal(n.key, market.TypeAck, ack)
		if err != nil {
			return err
		}
		out, err = env.Marshal()
		return err
	})
	return ack, out
}

// jobIndex is the index of a job by its ID (see jobID).
func (s *sim) jobIndex(id string) int {
	var i int
	fmt.Sscanf(id[3:], "%d", &i)
	return i
}

// openAck is the requester's check of an ack: signed by the provider, for
// this award.
func (s *sim) openAck(r, p int32, data []byte, w market.Award) error {
	return s.timed("open ack", func() error {
		env, err := market.ParseEnvelope(data)
		if err != nil {
			return err
		}
		var ack market.Ack
		signer, err := env.Open(market.TypeAck, &ack)
		if err != nil {
			return err
		}
		if signer != s.nodes[p].id || ack.JobID != w.JobID || ack.Attempt != w.Attempt {
			return errors.New("ack does not match the award")
		}
		return nil
	})
}

// finish ends j on provider p: it frees the slot and sends the signed
// result, which the requester checks against the award.
func (s *sim) finish(p int32, j *job) {
	n := s.nodes[p]
	if !n.taken[j.id] {
		return // cancelled: its slot is already free
	}
	delete(n.taken, j.id)
	s.release(p)
	if j.provider != p {
		return // an award whose ack was lost; the requester moved on
	}
	now := s.clock()
	res := market.Result{JobID: j.id, Attempt: j.award.Attempt, Provider: n.text, Status: market.StatusSucceeded,
		Outputs: []market.OutputRef{{Name: "result", CID: j.spec.Inputs[0].CID, Size: 4096}},
		LogCID:  j.spec.Inputs[0].CID, LogTail: "done\n",
		Usage:     market.Usage{WallMillis: j.runtime.Milliseconds(), InputBytes: 1 << 20, OutputBytes: 4096},
		StartedAt: now.Add(-j.runtime), FinishedAt: now}
	var data []byte
	if err := s.timed("seal result", func() error {
		env, err := market.Seal(n.key, market.TypeResult, res)
		if err != nil {
			return err
		}
		data, err = env.Marshal()
		return err
	}); err != nil {
		return
	}
	s.net.send("result", p, j.requester, len(data)+1, resultTimeout, func() {
		err := s.timed("open result", func() error {
			env, err := market.ParseEnvelope(data)
			if err != nil {
				return err
			}
			var r market.Result
			signer, err := env.Open(market.TypeResult, &r)
			if err != nil {
				return err
			}
			return market.CheckResult(r, signer, j.award)
		})
		s.net.send("result reply", j.requester, p, replyBytes(wire.OK), 0, func() {})
		if err == nil && !j.done {
			j.done = true
			s.st.results++
			rq := s.nodes[j.requester]
			o := rq.tally[n.text]
			o.Succeeded++
			rq.tally[n.text] = o
		}
	})
}
