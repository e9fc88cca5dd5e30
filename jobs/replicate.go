package jobs

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// A replicated job (verification mode replicate, N replicas) runs as N
// replicas: each a job of its own, with its own auctions, award, escrow
// and receipts, awarded to a provider independent of the other
// replicas' (see claimReplica). The replicated job waits until every
// replica has ended, then compares their results (sameResult). When a
// strict majority of the N agree, it takes their result: those replicas
// are paid as any job is, and the others' escrows are refunded and their
// receipts say mismatch. Without a majority, a further replica is run,
// up to 2N in all; then the job fails and no replica is paid. A
// spot-checked job runs on the same machinery (see spot.go).

// Verdicts of a replica.
const (
	// VerdictAgree: the replica's result is the majority's.
	VerdictAgree = "agree"
	// VerdictMismatch: its result differs from the majority's; it is not
	// paid, and its receipt says mismatch.
	VerdictMismatch = "mismatch"
	// VerdictUnchecked: the replicated job was cancelled before the
	// results were compared, or it is a spot-checked job that was not
	// drawn for a check; the replica is settled as a job of its own.
	VerdictUnchecked = "unchecked"
	// VerdictUndecided: no majority was found, so nothing tells which
	// replica was right: none is paid, and none is blamed.
	VerdictUndecided = "undecided"
)

// maxReplicaRuns bounds the replicas a job of n replicas runs in all,
// tie-breakers and replacements of failed ones included.
func maxReplicaRuns(n int) int { return 2 * n }

// replicaPoll is how often a replicated job looks at its replicas when
// nothing wakes it: a replica that changes state wakes it at once.
const replicaPoll = time.Second

// replicaClaim is the provider a replica was last awarded to.
type replicaClaim struct {
	parent, peer, payee string
	prefixes            []string
}

// submitReplicated stores a replicated or spot-checked job with its
// first replicas (and the spot-check draw), in one transaction, and
// starts them.
func (rq *requester) submitReplicated(spec market.Spec, now time.Time) (*Job, error) {
	j := &Job{ID: newJobID(), Role: RoleRequester, State: market.StateSubmitted, Spec: spec,
		Requester: rq.self.String(), CreatedAt: now, UpdatedAt: now,
		Events: []Event{{Time: now, State: market.StateSubmitted}}}
	if rate := spec.SpotRate(); rate > 0 {
		j.Spot = spotDraw(rate)
	}
	all := []*Job{j}
	for range j.firstReplicas() {
		r := rq.newReplica(j, now)
		j.Replicas = append(j.Replicas, r.ID)
		all = append(all, r)
	}
	if err := rq.store.putAll(all); err != nil {
		return nil, fmt.Errorf("store job: %w", err)
	}
	for _, x := range all {
		rq.p.Metrics.JobMoved(RoleRequester, "", x.State, 0)
	}
	rq.notify(j, "")
	for _, r := range all[1:] {
		rq.startRequester(r.ID)
	}
	rq.startRequester(j.ID)
	return j, nil
}

// newReplica is a new replica of job j: its spec less the verification,
// which is the replicated job's to do. Nothing in it tells its provider
// that it is a replica, or a spot check.
func (rq *requester) newReplica(j *Job, now time.Time) *Job {
	spec := j.Spec
	spec.Verification = &market.Verification{Mode: market.VerifyNone}
	return &Job{ID: newJobID(), Role: RoleRequester, State: market.StateSubmitted, Spec: spec,
		Requester: rq.self.String(), Parent: j.ID, CreatedAt: now, UpdatedAt: now,
		Events: []Event{{Time: now, State: market.StateSubmitted, Detail: "replica of " + j.ID}}}
}

// Replicas returns the replicas of a replicated job, in order.
func (c *core) Replicas(j *Job) ([]*Job, error) {
	out := make([]*Job, 0, len(j.Replicas))
	for _, id := range j.Replicas {
		r, err := c.Get(id)
		if err != nil {
			return nil, fmt.Errorf("replica %s: %w", id, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// runReplicated drives a replicated job to a final state as its replicas
// end.
func (rq *requester) runReplicated(ctx context.Context, id string) {
	tick := time.NewTicker(replicaPoll)
	defer tick.Stop()
	wake := make(chan struct{}, 1)
	rq.wakeups.Store(id, wake)
	defer rq.wakeups.Delete(id)
	for {
		j, err := rq.Get(id)
		if err != nil {
			rq.log.Error("job vanished", "job", id, "error", err)
			return
		}
		if j.State.Final() {
			return
		}
		reps, err := rq.Replicas(j)
		if err != nil {
			rq.failReplicated(j, err.Error())
			return
		}
		if ctx.Err() != nil {
			rq.cancelReplicated(j, reps)
			return
		}
		if rq.stepReplicated(j, reps) {
			return
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-wake:
		}
	}
}

// replicatedPath is the way a replicated job goes to success; it follows
// its replicas: bidding until each has an award, running until each has
// ended, fetching while their results are compared.
var replicatedPath = []market.State{market.StateSubmitted, market.StateBidding, market.StateAwarded,
	market.StateRunning, market.StateFetching, market.StateSucceeded}

// advance moves a replicated job along replicatedPath up to state to.
func (rq *requester) advance(id string, to market.State, detail string) {
	j, err := rq.update(id, func(j *Job) error {
		from, end := slices.Index(replicatedPath, j.State), slices.Index(replicatedPath, to)
		if from < 0 || end <= from {
			return nil
		}
		for _, s := range replicatedPath[from+1 : end+1] {
			if err := j.move(s, detail); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && j.State == to {
		rq.notify(j, detail)
	}
}

// stepReplicated looks at the replicas once; it returns true when the
// job has reached a final state.
func (rq *requester) stepReplicated(j *Job, reps []*Job) bool {
	n := j.replicasWanted()
	if j.State == market.StateSubmitted {
		rq.advance(j.ID, market.StateBidding, startDetail(j))
	}
	awarded, ended := true, true
	for _, r := range reps {
		if r.State == market.StateSubmitted || r.State == market.StateBidding {
			awarded = false
		}
		if !r.State.Final() {
			ended = false
		}
	}
	if awarded && (j.State == market.StateSubmitted || j.State == market.StateBidding) {
		rq.advance(j.ID, market.StateRunning, "every replica awarded")
	}
	if !ended {
		return false
	}
	var ids []string
	var results []*market.Result
	for _, r := range reps {
		if res := replicaVote(r); res != nil {
			ids, results = append(ids, r.ID), append(results, res)
		}
	}
	groups := groupResults(j.Spec, ids, results)
	if win, ok := majority(groups, n); ok {
		rq.decideReplicated(j, groups, &win)
		return true
	}
	if len(reps) < maxReplicaRuns(n) {
		rq.addReplica(j, groups)
		return false
	}
	rq.decideReplicated(j, groups, nil)
	return true
}

// startDetail says how a replicated or spot-checked job runs, when it
// starts.
func startDetail(j *Job) string {
	switch j.Spot {
	case SpotChecked:
		return "spot check: 2 replicas, one after the other"
	case SpotUnchecked:
		return "not spot-checked: 1 replica"
	}
	return fmt.Sprintf("%d replicas", j.replicasWanted())
}

// replicaVote is the result a replica that ended brings to the
// comparison: a success, or a failure of the job itself that shows it
// ran; nil when its providers failed it or it was cancelled, for a
// failure that depends on timing (wall time, a stop), and for a failure
// that printed nothing: "exit code 1" costs nothing to claim, and two
// providers that run nothing would agree on it.
func replicaVote(r *Job) *market.Result {
	res := r.Result
	if res == nil || res.Attempt != r.Attempt {
		return nil
	}
	switch {
	case r.State == market.StateSucceeded:
		return res
	case r.State != market.StateFailed || res.Status != market.StatusFailed || res.ExitCode == providerFault:
		return nil
	}
	switch reasonClass(res.Reason) {
	case compute.ReasonWallTime, compute.ReasonCancelled, "":
		return nil
	}
	if res.LogCID == "" || res.LogTail == "" {
		return nil
	}
	return res
}

// addReplica runs one more replica: the ones that ended brought no
// majority.
func (rq *requester) addReplica(j *Job, groups []replicaGroup) {
	r := rq.newReplica(j, time.Now().UTC())
	detail := fmt.Sprintf("no majority yet (%s): replica %d", describeGroups(groups), len(j.Replicas)+1)
	switch {
	case j.Spot == SpotChecked && len(j.Replicas) == 1 && len(groups) == 1:
		detail = "spot check: replica 2, on another provider"
	case len(groups) == 0:
		detail = fmt.Sprintf("no replica brought a result: replica %d", len(j.Replicas)+1)
	}
	// The replica and the job that names it are stored in one
	// transaction: a crash leaves neither a replica without its job nor a
	// job naming a replica that is not there.
	j2, err := rq.updateWith(j.ID, []*Job{r}, func(j *Job) error {
		j.Replicas = append(j.Replicas, r.ID)
		j.UpdatedAt = time.Now().UTC()
		j.Events = append(j.Events, Event{Time: j.UpdatedAt, State: j.State, Detail: detail})
		return nil
	})
	if err != nil {
		rq.log.Error("add replica", "job", j.ID, "error", err)
		return
	}
	rq.p.Metrics.JobMoved(RoleRequester, "", r.State, 0)
	rq.log.Info("replica added", "job", j.ID, "replica", r.ID, "groups", describeGroups(groups))
	rq.notify(j2, detail)
	rq.startRequester(r.ID)
}

// decideReplicated records the comparison: each replica's verdict, and
// the job's end, with the majority's result (win), or failed when no
// majority was found (win nil).
func (rq *requester) decideReplicated(j *Job, groups []replicaGroup, win *replicaGroup) {
	n := j.replicasWanted()
	summary := describeGroups(groups)
	for _, g := range groups {
		for _, id := range g.ids {
			switch {
			case win != nil && j.Spot == SpotUnchecked:
				rq.setVerdict(id, VerdictUnchecked, "")
			case win != nil && slices.Contains(win.ids, id):
				rq.setVerdict(id, VerdictAgree, "")
			case win != nil:
				_, diff := sameResult(j.Spec, win.result, g.result)
				rq.setVerdict(id, VerdictMismatch, fmt.Sprintf("its result differs from the majority of the replicas (%s): %s", summary, diff))
			default:
				rq.setVerdict(id, VerdictUndecided, fmt.Sprintf("no majority of the %d replicas agree (%s)", n, summary))
			}
		}
	}
	rq.clearClaims(j.ID)
	if rq.p.Settlement != nil {
		rq.pay.kickSettle()
	}
	if win == nil {
		reason := fmt.Sprintf("no majority of the %d replicas agree (%s) after %d replicas", n, summary, len(j.Replicas))
		if len(groups) == 0 {
			reason = fmt.Sprintf("no replica brought a result after %d replicas", len(j.Replicas))
		}
		rq.failReplicated(j, reason)
		return
	}
	res := *win.result
	res.JobID, res.Attempt = j.ID, j.Attempt
	detail := fmt.Sprintf("%d of %d replicas agree", len(win.ids), n)
	if j.Spot == SpotUnchecked {
		detail = "not spot-checked"
	}
	if _, err := rq.update(j.ID, func(j *Job) error {
		j.Result = &res
		return nil
	}); err != nil {
		return
	}
	if res.Status == market.StatusSucceeded {
		rq.advance(j.ID, market.StateSucceeded, detail)
		return
	}
	rq.failReplicated(j, detail+": "+res.Reason)
}

func (rq *requester) failReplicated(j *Job, reason string) {
	j, err := rq.update(j.ID, func(j *Job) error { return j.move(market.StateFailed, reason) })
	if err == nil {
		rq.notify(j, reason)
	}
}

// setVerdict records a replica's verdict; a mismatch turns the outcome
// of its last attempt into a mismatch, with why. The verdict counts for
// the provider's reputation: a success once the replica agrees (or goes
// unchecked), a failure for a mismatch.
func (rq *requester) setVerdict(id, verdict, why string) {
	r, err := rq.update(id, func(r *Job) error {
		r.Verdict = verdict
		if verdict != VerdictMismatch {
			return nil
		}
		for i := range r.Outcomes {
			if o := &r.Outcomes[i]; o.Attempt == r.Attempt && o.Receipt == nil {
				o.Outcome, o.Fault, o.Reason = market.OutcomeMismatch, market.FaultProvider, wire.Truncate(why, maxPeerReason)
			}
		}
		return nil
	})
	if err != nil {
		return
	}
	if verdict != VerdictMismatch {
		if r.State == market.StateSucceeded {
			rq.count(r.Provider, true)
		}
		return
	}
	rq.log.Warn("replica mismatch", "job", r.Parent, "replica", id, "provider", r.Provider, "reason", why)
	rq.count(r.Provider, false)
	rq.notify(r, "mismatch: "+why)
}

// cancelReplicated stops the replicas of a cancelled job, waits a little
// for them to end, and records the cancel. When the engine itself is
// stopping, nothing is recorded: the job resumes at the next start.
func (rq *requester) cancelReplicated(j *Job, reps []*Job) {
	if rq.ctx.Err() != nil {
		return
	}
	for _, r := range reps {
		if !r.State.Final() {
			rq.Cancel(r.ID)
		}
	}
	for range 100 {
		reps, _ = rq.Replicas(j)
		if !slices.ContainsFunc(reps, func(r *Job) bool { return !r.State.Final() }) {
			break
		}
		select {
		case <-rq.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, r := range reps {
		if replicaVote(r) != nil {
			rq.setVerdict(r.ID, VerdictUnchecked, "")
		}
	}
	rq.clearClaims(j.ID)
	rq.cancelled(j, "cancelled by the requester")
}

// claimReplica reports whether a bid may win an award of replica j: its
// provider is independent of the other replicas' as far as this node can
// tell (another peer, another ledger account, none of its public IP
// prefixes shared), and then claims it for j.
func (rq *requester) claimReplica(j *Job, bid market.Bid, addrs []string) bool {
	c := replicaClaim{parent: j.Parent, peer: bid.Provider, payee: bid.Payee, prefixes: publicPrefixes(addrs)}
	rq.mu.Lock()
	defer rq.mu.Unlock()
	for id, o := range rq.claims {
		if id == j.ID || o.parent != c.parent {
			continue
		}
		if o.peer == c.peer || c.payee != "" && o.payee == c.payee ||
			slices.ContainsFunc(c.prefixes, func(p string) bool { return slices.Contains(o.prefixes, p) }) {
			return false
		}
	}
	rq.claims[j.ID] = c
	return true
}

// clearClaims forgets the claims of a decided job's replicas.
func (rq *requester) clearClaims(parent string) {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	for id, c := range rq.claims {
		if c.parent == parent {
			delete(rq.claims, id)
		}
	}
}

// resumeClaim restores the claim of a stored replica (rq.mu held).
func (rq *requester) resumeClaim(r *Job) {
	if r.Parent == "" || r.Provider == "" {
		return
	}
	if p, err := rq.store.get(RoleRequester, r.Parent, 0); err != nil || p.State.Final() {
		return
	}
	rq.claims[r.ID] = replicaClaim{parent: r.Parent, peer: r.Provider, payee: r.Payee, prefixes: publicPrefixes(r.ProviderAddrs)}
}

// publicPrefixes are the networks of a peer's public IP addresses: /24
// for IPv4, /48 for IPv6. Loopback and private addresses say nothing of
// independence (a local swarm shares them) and are left out.
func publicPrefixes(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		ma, err := multiaddr.NewMultiaddr(a)
		if err != nil || !manet.IsPublicAddr(ma) {
			continue
		}
		ip, err := manet.ToIP(ma)
		if err != nil {
			continue
		}
		bits := 48
		if v4 := ip.To4(); v4 != nil {
			ip, bits = v4, 24
		}
		mask := net.CIDRMask(bits, len(ip)*8)
		if p := (&net.IPNet{IP: ip.Mask(mask), Mask: mask}).String(); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
