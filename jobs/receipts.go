package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// AttemptOutcome is how one attempt of a requester's job ended: an
// attempt whose provider acked its award, with the signed receipt once
// the attempt's escrow has settled.
type AttemptOutcome struct {
	Attempt   int       `json:"attempt"`
	Provider  string    `json:"provider"`
	Price     uint64    `json:"price"`
	Outcome   string    `json:"outcome"`
	Fault     string    `json:"fault"`
	Reason    string    `json:"reason,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	// Receipt is the signed receipt; Countersign says why the provider did
	// not countersign it, when it did not.
	Receipt     *market.SignedReceipt `json:"receipt,omitempty"`
	Countersign string                `json:"countersign,omitempty"`
	// Ack is the provider's signed ack of the attempt's award.
	Ack *market.Envelope `json:"ack,omitempty"`
	// Tries counts the requests for the provider's countersignature.
	Tries     int       `json:"tries,omitempty"`
	NextTry   time.Time `json:"next_try,omitempty"`
	Published bool      `json:"published,omitempty"`
}

// done reports whether nothing is left to do for the outcome's receipt.
func (o AttemptOutcome) done() bool { return o.Published }

// recordOutcome notes how the attempt of a requester's job that its
// provider acked ended, when a move from "from" to "to" ends it.
func (j *Job) recordOutcome(from, to market.State, detail string) {
	if j.Role != RoleRequester || j.Provider == "" || from != market.StateRunning && from != market.StateFetching {
		return
	}
	o := AttemptOutcome{Attempt: j.Attempt, Provider: j.Provider, Price: j.Price, Reason: detail, EndedAt: j.UpdatedAt, Ack: j.Ack}
	for _, ev := range j.Events {
		if ev.State == market.StateRunning {
			o.StartedAt = ev.Time // the latest ack
		}
	}
	switch to {
	case market.StateSucceeded:
		o.Outcome, o.Fault, o.Reason = market.OutcomeSucceeded, market.FaultNone, ""
	case market.StateCancelled:
		o.Outcome, o.Fault = market.OutcomeCancelled, market.FaultRequester
	case market.StateFailed:
		o.Outcome, o.Fault = market.OutcomeFailed, market.FaultProvider
		if r := j.Result; r != nil && r.Status == market.StatusFailed && r.ExitCode != providerFault {
			o.Fault = market.FaultRequester // the job's own failure
		}
	case market.StateBidding:
		o.Outcome, o.Fault = market.OutcomeFailed, market.FaultProvider
	default:
		return
	}
	if o.StartedAt.IsZero() || o.StartedAt.After(o.EndedAt) {
		o.StartedAt = o.EndedAt
	}
	o.Reason = wire.Truncate(o.Reason, maxPeerReason)
	j.Outcomes = append(j.Outcomes, o)
}

// pendingReceipt reports whether a job has an attempt whose receipt is
// still to sign or to publish.
func pendingReceipt(j *Job) bool {
	return slices.ContainsFunc(j.Outcomes, func(o AttemptOutcome) bool { return !o.done() })
}

// Receipt bounds and pacing.
const (
	// countersignTries bounds the requests for a countersignature before
	// the receipt goes out with the requester's signature alone.
	countersignTries = 3
	countersignEvery = 20 * time.Second
	receiptTimeout   = 10 * time.Second
	maxReceiptAnswer = 8 << 10
)

// receipts is the engine's part that signs receipts: once an attempt has
// ended and its escrow has settled, the requester signs how it ended,
// asks the provider to countersign, keeps the receipt with the job and
// publishes it on the receipts topic. As a provider, it countersigns the
// receipts that agree with its own record.
type receipts struct {
	*core

	mu      sync.Mutex
	topic   *pubsub.Topic
	pending map[string]bool // requester jobs with a receipt to do
	kick    chan struct{}
}

func newReceipts(c *core) *receipts {
	r := &receipts{core: c, pending: map[string]bool{}, kick: make(chan struct{}, 1)}
	c.afterUpdate = r.noteJob
	return r
}

// start registers the receipts topic's validator, joins it and starts
// the loop.
func (rc *receipts) start() error {
	ps := rc.p.Host.PubSub
	if err := ps.RegisterTopicValidator(wire.ReceiptsTopic, validateReceipt); err != nil {
		return fmt.Errorf("receipts topic validator: %w", err)
	}
	t, err := rc.p.Host.Topic(wire.ReceiptsTopic)
	if err != nil {
		return err
	}
	rc.topic = t
	if err := rc.listen(t); err != nil {
		return err
	}
	rc.p.Host.SetStreamHandler(wire.ReceiptProtocol, rc.handler(rc.handleReceipt))
	rc.spawn(rc.loop)
	return nil
}

func (rc *receipts) stop() {
	rc.p.Host.RemoveStreamHandler(wire.ReceiptProtocol)
	rc.p.Host.PubSub.UnregisterTopicValidator(wire.ReceiptsTopic)
}

// noteJob is called after each stored update of a requester job.
func (rc *receipts) noteJob(j *Job) {
	if !pendingReceipt(j) {
		return
	}
	rc.mu.Lock()
	fresh := !rc.pending[j.ID]
	rc.pending[j.ID] = true
	rc.mu.Unlock()
	if fresh {
		select {
		case rc.kick <- struct{}{}:
		default:
		}
	}
}

func (rc *receipts) loop() {
	if jobs, err := rc.store.list(RoleRequester); err == nil {
		rc.mu.Lock()
		for _, j := range jobs {
			rc.countOwn(j)
			if pendingReceipt(j) {
				rc.pending[j.ID] = true
			}
		}
		rc.mu.Unlock()
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		rc.mu.Lock()
		ids := make([]string, 0, len(rc.pending))
		for id := range rc.pending {
			ids = append(ids, id)
		}
		rc.mu.Unlock()
		for _, id := range ids {
			if rc.ctx.Err() != nil {
				return
			}
			if !rc.advance(id) {
				rc.mu.Lock()
				delete(rc.pending, id)
				rc.mu.Unlock()
			}
		}
		select {
		case <-rc.ctx.Done():
			return
		case <-tick.C:
		case <-rc.kick:
		}
	}
}

// advance moves the receipts of one job on, one step each; it returns
// whether any is left to do.
func (rc *receipts) advance(id string) bool {
	j, err := rc.Get(id)
	if err != nil {
		return false
	}
	for i, o := range j.Outcomes {
		if o.done() {
			continue
		}
		switch {
		case o.Receipt == nil:
			rc.sign(j, i)
		case !o.Published:
			rc.countersignOrPublish(j, i)
		}
	}
	j, err = rc.Get(id)
	return err == nil && pendingReceipt(j)
}

// sign seals the receipt of outcome i once its escrow, if any, has
// settled.
func (rc *receipts) sign(j *Job, i int) {
	o := j.Outcomes[i]
	if j.Parent != "" && j.Verdict == "" && o.Attempt == j.Attempt &&
		(o.Outcome == market.OutcomeSucceeded || o.Outcome == market.OutcomeFailed && o.Fault == market.FaultRequester) {
		return // a replica's result is yet to be compared with the others'
	}
	r := market.Receipt{
		JobID: j.ID, Attempt: o.Attempt, Requester: rc.self.String(), Provider: o.Provider,
		Kind: j.Spec.Kind, Outcome: o.Outcome, Fault: o.Fault, Reason: o.Reason, Price: o.Price,
		StartedAt: o.StartedAt, EndedAt: o.EndedAt, IssuedAt: time.Now().UTC(),
	}
	if j.Spec.Price != nil {
		r.Mint = j.Spec.Price.Mint
	}
	for _, e := range j.Escrows {
		if e.Attempt != o.Attempt || e.ProviderPeer != o.Provider {
			continue
		}
		switch e.State {
		case EscrowLocked, EscrowLocking:
			return // signed once the escrow has settled
		case EscrowReleased, EscrowRefunded:
			r.Escrow = &market.ReceiptEscrow{
				Terms: e.Terms.Terms, Multisig: e.Terms.Multisig, Vault: e.Terms.Vault, State: string(e.State), Tx: e.Tx,
			}
		}
	}
	mismatch := o.Outcome == market.OutcomeMismatch
	if (o.Outcome == market.OutcomeSucceeded || mismatch) && j.Result != nil && j.Result.Attempt == o.Attempt {
		for _, out := range j.Result.Outputs {
			// A train job's weights are always named, so that a model
			// record can prove where its weights came from; a
			// mismatch names the outputs that differ, as evidence.
			if (rc.cfg.ReceiptOutputs || mismatch || j.Spec.Kind == market.KindTrain && out.Name == market.OutputModel) &&
				len(r.Outputs) < market.MaxReceiptOutputs {
				r.Outputs = append(r.Outputs, out)
			}
		}
	}
	env, err := market.Seal(rc.p.Key, market.TypeReceipt, r)
	if err != nil {
		rc.log.Error("seal receipt", "job", j.ID, "error", err)
		return
	}
	sr := &market.SignedReceipt{Receipt: env, Ack: o.Ack}
	if _, _, err := sr.Open(); err != nil {
		sr.Ack = nil // an ack that does not fit the receipt proves nothing
	}
	rc.update(j.ID, func(j *Job) error {
		j.Outcomes[i].Receipt = sr
		return nil
	})
	rc.rep.AddOwn(r) // an error: the attempt was counted before
}

// countersignOrPublish asks the provider to countersign the receipt of
// outcome i, and publishes it once it has, or refused, or stayed away for
// countersignTries requests.
func (rc *receipts) countersignOrPublish(j *Job, i int) {
	o := j.Outcomes[i]
	if r, _, err := o.Receipt.Open(); err != nil || r.CheckFresh(time.Now()) != nil {
		// Too old to publish (the node was down, or the provider slow to
		// answer): sign it anew and ask again.
		rc.update(j.ID, func(j *Job) error {
			x := &j.Outcomes[i]
			x.Receipt, x.Countersign, x.Tries, x.NextTry = nil, "", 0, time.Time{}
			return nil
		})
		return
	}
	if len(o.Receipt.Countersignature) == 0 && o.Countersign == "" && o.Tries < countersignTries {
		if time.Now().Before(o.NextTry) {
			return
		}
		sig, err := rc.askCountersign(j, o)
		var refused *wire.ReplyError
		j2, _ := rc.update(j.ID, func(j *Job) error {
			x := &j.Outcomes[i]
			x.Tries++
			x.NextTry = time.Now().Add(countersignEvery)
			switch {
			case err == nil:
				x.Receipt.Countersignature = sig
			case errors.As(err, &refused) && refused.Code == wire.CodeRejected:
				x.Countersign = refused.Reason
			case x.Tries >= countersignTries:
				x.Countersign = err.Error()
			}
			return nil
		})
		if j2 == nil {
			return
		}
		o = j2.Outcomes[i]
		if len(o.Receipt.Countersignature) == 0 && o.Countersign == "" {
			return // asked again later
		}
	}
	if rc.cfg.PublishReceipts {
		data, err := o.Receipt.Marshal()
		if err == nil {
			ctx, cancel := context.WithTimeout(rc.ctx, 5*time.Second)
			err = rc.topic.Publish(ctx, data)
			cancel()
		}
		if err != nil {
			rc.log.Warn("publish receipt", "job", j.ID, "attempt", o.Attempt, "error", err)
			return
		}
	}
	rc.update(j.ID, func(j *Job) error {
		j.Outcomes[i].Published = true
		return nil
	})
	rc.notify(j, fmt.Sprintf("receipt of attempt %d signed (%s)", o.Attempt, o.Outcome))
}

// receiptAnswer is the provider's answer to a receipt.
type receiptAnswer struct {
	wire.Reply
	Countersignature []byte `json:"countersignature,omitempty"`
}

func (rc *receipts) askCountersign(j *Job, o AttemptOutcome) ([]byte, error) {
	prov, err := peer.Decode(o.Provider)
	if err != nil {
		return nil, err
	}
	s, r, w, err := rc.newStream(rc.ctx, prov, wire.ReceiptProtocol, receiptTimeout)
	if err != nil {
		return nil, fmt.Errorf("ask %s to countersign: %w", prov, err)
	}
	defer s.Close()
	if err := writeEnvelope(w, o.Receipt.Receipt); err != nil {
		s.Reset()
		return nil, fmt.Errorf("send receipt: %w", err)
	}
	var ans receiptAnswer
	if err := wire.ReadJSON(r, maxReceiptAnswer, &ans); err != nil {
		s.Reset()
		return nil, fmt.Errorf("read countersignature: %w", err)
	}
	if err := ans.Err(); err != nil {
		return nil, err
	}
	signed := *o.Receipt
	signed.Countersignature = ans.Countersignature
	if _, counter, err := signed.Open(); err != nil || !counter {
		return nil, fmt.Errorf("provider's countersignature does not verify: %w", err)
	}
	return ans.Countersignature, nil
}

// handleReceipt is the provider's side: it countersigns a receipt that
// agrees with its own record of the attempt, and refuses one that does
// not, saying why.
func (rc *receipts) handleReceipt(s network.Stream) {
	defer s.Close()
	var r market.Receipt
	msg, err := readSigned(s, receiptTimeout, market.TypeReceipt, &r)
	if err != nil {
		s.Reset()
		return
	}
	answer := func(a receiptAnswer) {
		if err := wire.WriteJSON(msg.w, a); err != nil {
			s.Reset()
		}
	}
	if err := rc.agree(r, msg.signer); err != nil {
		code := wire.CodeRejected
		if errors.Is(err, errNotYet) {
			code = wire.CodeFailed
		}
		answer(receiptAnswer{Reply: wire.Reply{Code: code, Reason: wire.Truncate(err.Error(), wire.MaxReasonBytes)}})
		return
	}
	sig, err := market.Countersign(rc.p.Key.Sign, msg.env)
	if err != nil {
		answer(receiptAnswer{Reply: wire.Reply{Code: wire.CodeFailed, Reason: err.Error()}})
		return
	}
	answer(receiptAnswer{Reply: wire.OK, Countersignature: sig})
}

// errNotYet: the provider's own record of the attempt has not ended.
var errNotYet = errors.New("the attempt has not ended on this provider")

// agree checks a receipt against the provider's record of the attempt.
func (rc *receipts) agree(r market.Receipt, signer peer.ID) error {
	if err := market.CheckReceipt(r, signer); err != nil {
		return err
	}
	if r.Provider != rc.self.String() {
		return errors.New("the receipt names another provider")
	}
	pj, err := rc.store.get(RoleProvider, r.JobID, r.Attempt)
	if err != nil {
		return errors.New("this provider ran no such attempt")
	}
	switch {
	case pj.Requester != r.Requester:
		return errors.New("this provider ran the attempt for another requester")
	case pj.Price != r.Price:
		return fmt.Errorf("the award's price was %d, the receipt says %d", pj.Price, r.Price)
	case pj.Spec.Kind != r.Kind:
		return fmt.Errorf("the job is a %s job, the receipt says %s", pj.Spec.Kind, r.Kind)
	case !pj.State.Final():
		return fmt.Errorf("%w: it is %s", errNotYet, pj.State)
	case r.StartedAt.Before(eventTime(pj, market.StateAccepted).Add(-market.MaxClockSkew)):
		return errors.New("the receipt starts before this provider took the award")
	case r.Outcome == market.OutcomeMismatch:
		// It cannot see the other replicas' results.
		return errors.New("this provider stands by its result, which the receipt says differs from other replicas'")
	}
	if e := r.Escrow; e != nil && !slices.ContainsFunc(pj.Escrows, func(x EscrowRecord) bool { return sameEscrow(x, *e) }) {
		return errors.New("the receipt names an escrow this attempt did not have")
	}
	res := pj.Result
	for _, o := range r.Outputs {
		if r.Outcome != market.OutcomeSucceeded || res == nil || !slices.Contains(res.Outputs, o) {
			return fmt.Errorf("the receipt names an output %s this provider did not deliver", o.Name)
		}
	}
	delivered := res != nil && slices.ContainsFunc(pj.Events, func(ev Event) bool { return ev.Detail == "result delivered" })
	// A result of the job itself, ready by the deadline, clears the
	// provider even when the requester refused it or would not take it.
	ready := res != nil && res.ExitCode != providerFault && !eventTime(pj, market.StateReporting).IsZero() &&
		!eventTime(pj, market.StateReporting).After(pj.Deadline)
	switch r.Outcome + "/" + r.Fault {
	case market.OutcomeSucceeded + "/" + market.FaultNone:
		if !delivered || res.Status != market.StatusSucceeded {
			return errors.New("this provider delivered no successful result")
		}
	case market.OutcomeFailed + "/" + market.FaultRequester:
		if !delivered || res.Status != market.StatusFailed || res.ExitCode == providerFault {
			return errors.New("this provider reported no failure of the job itself")
		}
	case market.OutcomeFailed + "/" + market.FaultProvider:
		if delivered && res.ExitCode != providerFault {
			return fmt.Errorf("this provider delivered a result (%s), which the requester took", res.Status)
		}
		if ready {
			return errors.New("this provider had a result of the job by the deadline")
		}
	}
	return nil
}

// eventTime is when a provider job first reached state, zero if never.
func eventTime(j *Job, state market.State) time.Time {
	for _, ev := range j.Events {
		if ev.State == state {
			return ev.Time
		}
	}
	return time.Time{}
}

// sameEscrow reports whether a receipt names the escrow the provider
// checked: its terms, multisig and vault, all of them.
func sameEscrow(x EscrowRecord, e market.ReceiptEscrow) bool {
	a, b := x.Terms.Terms, e.Terms
	return x.Terms.Multisig == e.Multisig && x.Terms.Vault == e.Vault && a.JobID == b.JobID && a.Requester == b.Requester &&
		a.Provider == b.Provider && a.Arbiter == b.Arbiter && a.Mint == b.Mint && a.Amount == b.Amount && a.Deadline.Equal(b.Deadline)
}
