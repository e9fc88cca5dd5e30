package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

// TestRecordOutcome: each way an acked attempt ends is recorded with
// whose fault it was; attempts no provider acked leave no outcome.
func TestRecordOutcome(t *testing.T) {
	failedResult := &market.Result{Status: market.StatusFailed, ExitCode: 3}
	faultResult := &market.Result{Status: market.StatusFailed, ExitCode: providerFault}
	for _, tc := range []struct {
		name           string
		from, to       market.State
		result         *market.Result
		outcome, fault string
	}{
		{"succeeded", market.StateFetching, market.StateSucceeded, nil, market.OutcomeSucceeded, market.FaultNone},
		{"re-auctioned", market.StateRunning, market.StateBidding, nil, market.OutcomeFailed, market.FaultProvider},
		{"outputs lost", market.StateFetching, market.StateBidding, nil, market.OutcomeFailed, market.FaultProvider},
		{"the job failed", market.StateRunning, market.StateFailed, failedResult, market.OutcomeFailed, market.FaultRequester},
		{"the provider failed", market.StateRunning, market.StateFailed, faultResult, market.OutcomeFailed, market.FaultProvider},
		{"cancelled", market.StateRunning, market.StateCancelled, nil, market.OutcomeCancelled, market.FaultRequester},
		{"never acked", market.StateAwarded, market.StateBidding, nil, "", ""},
		{"never awarded", market.StateBidding, market.StateFailed, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &Job{ID: newJobID(), Role: RoleRequester, State: tc.from, Attempt: 2, Provider: "prov", Price: 7, Result: tc.result,
				Events: []Event{{Time: time.Now().Add(-time.Minute), State: market.StateRunning}}}
			if err := j.move(tc.to, "why"); err != nil {
				t.Fatal(err)
			}
			if tc.outcome == "" {
				if len(j.Outcomes) != 0 {
					t.Fatalf("outcomes %+v, want none", j.Outcomes)
				}
				return
			}
			if len(j.Outcomes) != 1 {
				t.Fatalf("outcomes %+v, want one", j.Outcomes)
			}
			o := j.Outcomes[0]
			if o.Outcome != tc.outcome || o.Fault != tc.fault || o.Attempt != 2 || o.Provider != "prov" || o.Price != 7 || !o.StartedAt.Before(o.EndedAt) {
				t.Errorf("outcome %+v, want %s/%s of attempt 2", o, tc.outcome, tc.fault)
			}
		})
	}
}

// TestCountersign: a provider countersigns a receipt that matches its
// record of the attempt and refuses, saying why, one that blames it for
// a result it delivered, one for an attempt it never ran, and one about
// another requester's job.
func TestCountersign(t *testing.T) {
	hosts := p2ptest.MockNet(t, 3, 5*time.Millisecond)
	prov := mockEngine(t, hosts[0], 128)
	req := mockEngine(t, hosts[1], 0)
	other := mockEngine(t, hosts[2], 0)
	now := time.Now().UTC()
	spec := testSpec(t)
	ran := func(id string, requester string, state market.State, res *market.Result, events ...Event) {
		j := &Job{ID: id, Role: RoleProvider, State: state, Attempt: 1, Requester: requester, Price: 9, Spec: spec,
			Result: res, Deadline: now.Add(time.Minute), Events: events}
		if err := prov.c.store.put(j); err != nil {
			t.Fatal(err)
		}
	}
	out := market.OutputRef{Name: "result", CID: testModule, Size: 3}
	accepted := Event{Time: now.Add(-2 * time.Minute), State: market.StateAccepted}
	reporting := Event{Time: now.Add(-30 * time.Second), State: market.StateReporting}
	delivered := Event{Time: now, State: market.StateSucceeded, Detail: "result delivered"}
	good := &market.Result{Status: market.StatusSucceeded, Outputs: []market.OutputRef{out}}
	okJob, badJob, otherJob, refusedJob := newJobID(), newJobID(), newJobID(), newJobID()
	ran(okJob, hosts[1].ID().String(), market.StateSucceeded, good, accepted, reporting, delivered)
	ran(badJob, hosts[1].ID().String(), market.StateSucceeded, good, accepted, reporting, delivered)
	ran(otherJob, hosts[2].ID().String(), market.StateSucceeded, good, accepted, reporting, delivered)
	// A good result the requester refused to take.
	ran(refusedJob, hosts[1].ID().String(), market.StateFailed, good, accepted, reporting,
		Event{Time: now, State: market.StateFailed, Detail: "result refused by the requester: no"})

	type edit func(*market.Receipt)
	ask := func(e *Engine, id, outcome, fault string, price uint64, edits ...edit) ([]byte, error) {
		r := market.Receipt{JobID: id, Attempt: 1, Requester: e.c.self.String(), Provider: hosts[0].ID().String(), Kind: market.KindWASM,
			Outcome: outcome, Fault: fault, Price: price, StartedAt: now.Add(-time.Minute), EndedAt: now, IssuedAt: now}
		for _, f := range edits {
			f(&r)
		}
		env, err := market.Seal(e.c.p.Key, market.TypeReceipt, r)
		if err != nil {
			t.Fatal(err)
		}
		return e.rcpt.askCountersign(&Job{ID: id}, AttemptOutcome{Provider: r.Provider, Receipt: &market.SignedReceipt{Receipt: env}})
	}
	if sig, err := ask(req, okJob, market.OutcomeSucceeded, market.FaultNone, 9); err != nil || len(sig) == 0 {
		t.Fatalf("a true receipt: %v", err)
	}
	withOutput := func(r *market.Receipt) { r.Outputs = []market.OutputRef{out} }
	if sig, err := ask(req, okJob, market.OutcomeSucceeded, market.FaultNone, 9, withOutput); err != nil || len(sig) == 0 {
		t.Fatalf("a true receipt naming the output: %v", err)
	}
	for _, tc := range []struct {
		name           string
		e              *Engine
		id             string
		outcome, fault string
		price          uint64
		want           string
		edits          []edit
	}{
		{"blamed after refusing a good result", req, refusedJob, market.OutcomeFailed, market.FaultProvider, 9, "by the deadline", nil},
		{"another kind", req, okJob, market.OutcomeSucceeded, market.FaultNone, 9, "wasm job",
			[]edit{func(r *market.Receipt) { r.Kind = market.KindTrain }}},
		{"outputs it never made", req, okJob, market.OutcomeSucceeded, market.FaultNone, 9, "did not deliver",
			[]edit{func(r *market.Receipt) { r.Outputs = []market.OutputRef{{Name: market.OutputModel, CID: testModule}} }}},
		{"started before the award", req, okJob, market.OutcomeSucceeded, market.FaultNone, 9, "before this provider",
			[]edit{func(r *market.Receipt) { r.StartedAt = now.Add(-time.Hour) }}},
		{"blamed for a delivered result", req, badJob, market.OutcomeFailed, market.FaultProvider, 9, "delivered a result", nil},
		{"another price", req, okJob, market.OutcomeSucceeded, market.FaultNone, 90, "price", nil},
		{"never ran", req, newJobID(), market.OutcomeSucceeded, market.FaultNone, 9, "no such attempt", nil},
		{"another requester's job", req, otherJob, market.OutcomeSucceeded, market.FaultNone, 9, "another requester", nil},
		{"a third party's word", other, okJob, market.OutcomeFailed, market.FaultProvider, 9, "another requester", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := ask(tc.e, tc.id, tc.outcome, tc.fault, tc.price, tc.edits...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || sig != nil {
				t.Errorf("countersign = %x, %v; want a refusal naming %q", sig, err, tc.want)
			}
		})
	}
}

// TestValidateReceipt: the receipts topic takes a fresh, well-signed
// receipt and rejects forged, stale and oversized ones.
func TestValidateReceipt(t *testing.T) {
	hosts := p2ptest.MockNet(t, 2, time.Millisecond)
	reqKey := hosts[0].Peerstore().PrivKey(hosts[0].ID())
	provKey := hosts[1].Peerstore().PrivKey(hosts[1].ID())
	now := time.Now().UTC()
	seal := func(key interface {
		Sign([]byte) ([]byte, error)
	}, edit func(*market.Receipt)) []byte {
		r := market.Receipt{JobID: newJobID(), Attempt: 1, Requester: hosts[0].ID().String(), Provider: hosts[1].ID().String(),
			Outcome: market.OutcomeSucceeded, Fault: market.FaultNone, StartedAt: now, EndedAt: now, IssuedAt: now}
		edit(&r)
		env, err := market.Seal(reqKey, market.TypeReceipt, r)
		if err != nil {
			t.Fatal(err)
		}
		sr := market.SignedReceipt{Receipt: env}
		if key != nil {
			sr.Countersignature, _ = market.Countersign(key.Sign, env)
		}
		data, _ := sr.Marshal()
		return data
	}
	check := func(data []byte) pubsub.ValidationResult {
		return validateReceipt(t.Context(), hosts[1].ID(), &pubsub.Message{Message: &pb.Message{Data: data}})
	}
	if got := check(seal(provKey, func(*market.Receipt) {})); got != pubsub.ValidationAccept {
		t.Errorf("a good receipt: %v", got)
	}
	if got := check(seal(nil, func(*market.Receipt) {})); got != pubsub.ValidationAccept {
		t.Errorf("a receipt its provider did not countersign: %v", got)
	}
	// A stale one (a replay, or a clock that is off) is dropped without
	// blaming the peer that relayed it.
	stale := func(r *market.Receipt) {
		r.StartedAt, r.EndedAt, r.IssuedAt = now.Add(-time.Hour), now.Add(-time.Hour), now.Add(-time.Hour)
	}
	if got := check(seal(provKey, stale)); got != pubsub.ValidationIgnore {
		t.Errorf("a stale receipt: %v, want ignored", got)
	}
	for name, data := range map[string][]byte{
		"countersigned by the requester": seal(reqKey, func(*market.Receipt) {}),
		"about the requester itself":     seal(nil, func(r *market.Receipt) { r.Provider = r.Requester }),
		"oversized":                      append(seal(nil, func(*market.Receipt) {}), make([]byte, market.MaxReceiptBytes)...),
		"not JSON":                       []byte("receipt"),
	} {
		if got := check(data); got != pubsub.ValidationReject {
			t.Errorf("%s: %v, want rejected", name, got)
		}
	}
}

// TestStaleReceiptSignedAgain: a receipt that grew too old to publish
// before it went out (the node was down, the provider slow) is signed
// anew and its provider asked again, not retried forever.
func TestStaleReceiptSignedAgain(t *testing.T) {
	hosts := p2ptest.MockNet(t, 2, time.Millisecond)
	e := mockEngine(t, hosts[0], 0)
	old := time.Now().UTC().Add(-time.Hour)
	r := market.Receipt{JobID: newJobID(), Attempt: 1, Requester: hosts[0].ID().String(), Provider: hosts[1].ID().String(),
		Kind: market.KindWASM, Outcome: market.OutcomeSucceeded, Fault: market.FaultNone, StartedAt: old, EndedAt: old, IssuedAt: old}
	env, err := market.Seal(e.c.p.Key, market.TypeReceipt, r)
	if err != nil {
		t.Fatal(err)
	}
	j := &Job{ID: r.JobID, Role: RoleRequester, State: market.StateSucceeded, Attempt: 1, Spec: testSpec(t), Requester: r.Requester,
		Outcomes: []AttemptOutcome{{Attempt: 1, Provider: r.Provider, Outcome: r.Outcome, Fault: r.Fault, StartedAt: old, EndedAt: old,
			Receipt: &market.SignedReceipt{Receipt: env}, Tries: countersignTries, Countersign: "unreachable"}}}
	if err := e.c.store.put(j); err != nil {
		t.Fatal(err)
	}
	e.rcpt.countersignOrPublish(j, 0)
	j, _ = e.Get(j.ID)
	if o := j.Outcomes[0]; o.Receipt != nil || o.Tries != 0 || o.Countersign != "" || o.Published {
		t.Fatalf("outcome %+v, want its stale receipt cleared for signing anew", o)
	}
	e.rcpt.sign(j, 0)
	j, _ = e.Get(j.ID)
	fresh, _, err := j.Outcomes[0].Receipt.Open()
	if err != nil || fresh.CheckFresh(time.Now()) != nil {
		t.Fatalf("signed anew: %+v, %v", fresh, err)
	}
}
