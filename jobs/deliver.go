package jobs

import (
	"errors"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// finish signs the result, stores it and delivers it to the requester.
func (pv *provider) finish(j *Job, res market.Result, logs *logSink) {
	logs.close()
	res.LogTail = logs.tail()
	if added, err := pv.p.Content.AddUnannounced(pv.ctx, logs.path); err == nil {
		res.LogCID = added.CID.String()
	}
	res.FinishedAt = time.Now().UTC()
	if res.FinishedAt.Before(res.StartedAt) {
		res.StartedAt = res.FinishedAt
	}
	res.Reason = wire.Truncate(res.Reason, maxPeerReason)
	j.Result = &res
	pv.moveProvided(j, market.StateReporting, res.Status)
	pv.deliver(j)
}

// deliver sends the result until the requester takes it or the deadline
// passes.
func (pv *provider) deliver(j *Job) {
	env, err := market.Seal(pv.p.Key, market.TypeResult, *j.Result)
	if err != nil {
		pv.moveProvided(j, market.StateFailed, err.Error())
		return
	}
	j.ResultEnvelope = &env
	info, _ := addrInfo(j.Requester, j.RequesterAddrs)
	backoff := 200 * time.Millisecond
	for {
		err := pv.sendResult(info, env)
		if errors.Is(err, errRejected) {
			pv.moveProvided(j, market.StateFailed, "result refused by the requester: "+err.Error())
			pv.releaseContent(j)
			return
		}
		if err == nil {
			final := market.StateSucceeded
			if j.Result.Status != market.StatusSucceeded {
				final = market.StateFailed
			}
			pv.moveProvided(j, final, "result delivered")
			pv.releaseContent(j)
			return
		}
		if time.Now().After(j.Deadline.Add(time.Hour)) || pv.ctx.Err() != nil {
			if pv.ctx.Err() == nil {
				pv.moveProvided(j, market.StateFailed, "result not delivered: "+err.Error())
			}
			return
		}
		pv.log.Debug("result not delivered yet", "job", j.ID, "error", err)
		select {
		case <-pv.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (pv *provider) sendResult(info peer.AddrInfo, env market.Envelope) error {
	reply, err := pv.exchange(info, wire.ResultProtocol, env, 10*time.Second)
	if err != nil {
		return err
	}
	switch reply.Code {
	case wire.CodeOK, wire.CodeFinal:
		return nil
	case wire.CodeRejected:
		return fmt.Errorf("%w: %w", errRejected, reply.Err())
	}
	return reply.Err()
}

// errRejected: the requester refused the result for good.
var errRejected = errors.New("refused")

// releaseContent unpins a delivered job's outputs and log on the provider:
// they stay available until the next garbage collection, by which time
// the requester holds its own copy.
func (pv *provider) releaseContent(j *Job) {
	if j.Result == nil {
		return
	}
	cids := []string{j.Result.LogCID}
	for _, o := range j.Result.Outputs {
		cids = append(cids, o.CID)
	}
	for _, s := range cids {
		if c, err := cid.Decode(s); err == nil {
			pv.p.Content.Unpin(c)
		}
	}
}

func (pv *provider) moveProvided(j *Job, to market.State, detail string) {
	from := j.State
	if err := j.move(to, detail); err != nil {
		pv.log.Warn("provider job state", "job", j.ID, "error", err)
		return
	}
	if err := pv.store.put(j); err != nil {
		pv.log.Error("store provider job", "job", j.ID, "error", err)
		return
	}
	pv.moved(j, from)
}

// recoverProvided handles a job left unfinished by a restart: a job that
// was running cannot be resumed, so the requester hears it failed through
// the provider's fault and auctions it again; a finished one is delivered.
func (pv *provider) recoverProvided(j *Job) {
	switch j.State {
	case market.StateReporting:
		if j.Result != nil {
			pv.deliver(j)
			return
		}
		fallthrough
	default:
		now := time.Now().UTC()
		j.Result = &market.Result{JobID: j.ID, Attempt: j.Attempt, Provider: pv.self.String(), Status: market.StatusFailed,
			ExitCode: providerFault, Reason: "the provider restarted while the job ran", StartedAt: now, FinishedAt: now}
		if j.State != market.StateReporting {
			pv.moveProvided(j, market.StateReporting, "restarted")
		}
		pv.deliver(j)
	}
}
