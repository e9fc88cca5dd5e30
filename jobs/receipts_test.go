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
	ran := func(id string, requester string, res *market.Result, events ...Event) {
		j := &Job{ID: id, Role: RoleProvider, State: market.StateSucceeded, Attempt: 1, Requester: requester, Price: 9, Result: res, Events: events}
		if err := prov.c.store.put(j); err != nil {
			t.Fatal(err)
		}
	}
	delivered := Event{Time: now, State: market.StateSucceeded, Detail: "result delivered"}
	okJob, badJob, otherJob := newJobID(), newJobID(), newJobID()
	ran(okJob, hosts[1].ID().String(), &market.Result{Status: market.StatusSucceeded}, delivered)
	ran(badJob, hosts[1].ID().String(), &market.Result{Status: market.StatusSucceeded}, delivered)
	ran(otherJob, hosts[2].ID().String(), &market.Result{Status: market.StatusSucceeded}, delivered)

	ask := func(e *Engine, id, outcome, fault string, price uint64) ([]byte, error) {
		r := market.Receipt{JobID: id, Attempt: 1, Requester: e.c.self.String(), Provider: hosts[0].ID().String(), Kind: market.KindWASM,
			Outcome: outcome, Fault: fault, Price: price, StartedAt: now.Add(-time.Minute), EndedAt: now, IssuedAt: now}
		env, err := market.Seal(e.c.p.Key, market.TypeReceipt, r)
		if err != nil {
			t.Fatal(err)
		}
		return e.rcpt.askCountersign(&Job{ID: id}, AttemptOutcome{Provider: r.Provider, Receipt: &market.SignedReceipt{Receipt: env}})
	}
	if sig, err := ask(req, okJob, market.OutcomeSucceeded, market.FaultNone, 9); err != nil || len(sig) == 0 {
		t.Fatalf("a true receipt: %v", err)
	}
	for _, tc := range []struct {
		name           string
		e              *Engine
		id             string
		outcome, fault string
		price          uint64
		want           string
	}{
		{"blamed for a delivered result", req, badJob, market.OutcomeFailed, market.FaultProvider, 9, "delivered a result"},
		{"another price", req, okJob, market.OutcomeSucceeded, market.FaultNone, 90, "price"},
		{"never ran", req, newJobID(), market.OutcomeSucceeded, market.FaultNone, 9, "no such attempt"},
		{"another requester's job", req, otherJob, market.OutcomeSucceeded, market.FaultNone, 9, "another requester"},
		{"a third party's word", other, okJob, market.OutcomeFailed, market.FaultProvider, 9, "another requester"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := ask(tc.e, tc.id, tc.outcome, tc.fault, tc.price)
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
	for name, data := range map[string][]byte{
		"countersigned by the requester": seal(reqKey, func(*market.Receipt) {}),
		"stale (a replay)":               seal(provKey, func(r *market.Receipt) { r.IssuedAt = now.Add(-time.Hour) }),
		"about the requester itself":     seal(nil, func(r *market.Receipt) { r.Provider = r.Requester }),
		"oversized":                      append(seal(nil, func(*market.Receipt) {}), make([]byte, market.MaxReceiptBytes)...),
		"not JSON":                       []byte("receipt"),
	} {
		if got := check(data); got != pubsub.ValidationReject {
			t.Errorf("%s: %v, want rejected", name, got)
		}
	}
}
