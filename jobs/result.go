package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

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
			rq.requeue(cur, CauseNoResult, "provider "+cur.Provider+" sent no result by the deadline")
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
				rq.requeue(cur, CauseProviderLost, "provider "+cur.Provider+" unreachable for "+rq.cfg.ProviderLost.String())
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

// requeue excludes the job's provider and sends the job back to bidding,
// for cause (one of the Cause values).
func (rq *requester) requeue(j *Job, cause, reason string) {
	j, err := rq.update(j.ID, func(j *Job) error {
		j.Excluded = append(j.Excluded, j.Provider)
		j.WaitingSince = time.Now().UTC()
		j.Result, j.ResultEnvelope = nil, nil
		return j.move(market.StateBidding, reason)
	})
	if err == nil {
		rq.p.Metrics.Reauctioned(cause)
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
		rq.requeue(j, CauseProviderFault, "provider failed: "+r.Reason)
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
			rq.requeue(j, CauseFetchFailed, fmt.Sprintf("fetch output %s from %s: %v", o.Name, j.Provider, err))
			return false
		}
	}
	j2, err := rq.update(j.ID, func(j *Job) error { return j.move(market.StateSucceeded, "outputs fetched") })
	if err == nil {
		if j2.Parent == "" {
			rq.count(j2.Provider, true) // a replica counts once compared
		}
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
	var res market.Result
	msg, err := readSigned(s, 30*time.Second, market.TypeResult, &res)
	if err != nil {
		rq.log.Warn("bad result", "peer", s.Conn().RemotePeer(), "error", err)
		s.Reset()
		return
	}
	signer, w, env := msg.signer, msg.w, msg.env
	if err := market.CheckJobID(res.JobID); err != nil {
		wire.WriteReply(w, wire.Refuse(err))
		return
	}
	hosting := false
	j, err := rq.update(res.JobID, func(j *Job) error {
		award := market.Award{JobID: j.ID, Attempt: j.Attempt, Provider: j.Provider, Spec: j.Spec}
		if err := market.CheckResult(res, signer, award); err != nil {
			return err
		}
		if j.State.Final() && takesHostingResult(j, res) {
			// A deployment this node stopped: the result carries the
			// split that pays for the time served.
			j.Result, j.ResultEnvelope, hosting = &res, &env, true
			return nil
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
	if hosting {
		rq.pay.kickSettle()
		return
	}
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
