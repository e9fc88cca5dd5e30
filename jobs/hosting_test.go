package jobs

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/cyxwiz/cyxwiz/settlement/memledger"
	bolt "go.etcd.io/bbolt"
)

func TestServeHostingAmount(t *testing.T) {
	for _, tc := range []struct {
		price        uint64
		served, wall time.Duration
		want         uint64
	}{
		{1000, 30 * time.Second, 100 * time.Second, 300},
		{1000, 30*time.Second + 999*time.Millisecond, 100 * time.Second, 309},
		{7, time.Second, 3 * time.Second, 2},
		{1000, time.Millisecond, 100 * time.Second, 0},
		{1000, 0, 100 * time.Second, 0},
		{1000, -time.Second, 100 * time.Second, 0},
		{1000, 100 * time.Second, 100 * time.Second, 1000},
		{1000, time.Hour, 100 * time.Second, 1000},
		{1<<64 - 1, 24 * time.Hour, 7 * 24 * time.Hour, (1<<64 - 1) / 7},
	} {
		if got := hostingAmount(tc.price, tc.served, tc.wall); got != tc.want {
			t.Errorf("hostingAmount(%d, %s, %s) = %d, want %d", tc.price, tc.served, tc.wall, got, tc.want)
		}
	}
}

// TestHostingAllowance: the requester allows the time from the ack of the
// last award to the cancellation, plus the margin; an ack of an earlier
// award does not count.
func TestServeHostingAllowance(t *testing.T) {
	t0 := time.Now().UTC()
	at := func(d time.Duration, s market.State) Event { return Event{Time: t0.Add(d), State: s} }
	j := &Job{Spec: market.Spec{Kind: market.KindServe, Limits: market.Limits{WallSeconds: 100}}}
	for _, tc := range []struct {
		name   string
		events []Event
		want   uint64
	}{
		{"acked then cancelled", []Event{at(0, market.StateAwarded), at(time.Second, market.StateRunning), at(31*time.Second, market.StateCancelled)}, 320},
		{"never acked", []Event{at(0, market.StateAwarded), at(30*time.Second, market.StateCancelled)}, 0},
		{"an earlier award's ack", []Event{at(0, market.StateRunning), at(10*time.Second, market.StateBidding),
			at(11*time.Second, market.StateAwarded), at(40*time.Second, market.StateCancelled)}, 0},
		{"acked again after a re-auction", []Event{at(0, market.StateRunning), at(10*time.Second, market.StateBidding),
			at(11*time.Second, market.StateAwarded), at(12*time.Second, market.StateRunning), at(20*time.Second, market.StateCancelled)}, 100},
		{"past the wall time", []Event{at(0, market.StateRunning), at(200*time.Second, market.StateCancelled)}, 1000},
	} {
		j.Events = tc.events
		if got := hostingAllowance(j, 1000); got != tc.want {
			t.Errorf("%s: hostingAllowance = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// hostingRig is a requester that cancelled a priced serve job 30 s after
// its provider acked, an arbiter, and the provider's ledger account, on
// an in-memory ledger: the escrow of 1000 is locked, and the provider's
// result with its split is still to come.
type hostingRig struct {
	ledger                  *memledger.Ledger
	req, prov, arb          *memledger.Party
	reqHost, provHost, arbH *p2p.Host
	db                      *bolt.DB
	job                     *Job
	terms                   market.EscrowTerms
}

const (
	hostingMint  = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
	hostingFunds = 10_000
	hostingPrice = 1000
)

func newHostingRig(t *testing.T) *hostingRig {
	hosts := p2ptest.MockNet(t, 3, 2*time.Millisecond)
	r := &hostingRig{ledger: memledger.New(), arbH: hosts[0], reqHost: hosts[1], provHost: hosts[2]}
	party := func() *memledger.Party {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		p := r.ledger.Party(k)
		r.ledger.Fund(p.Address(), memledger.NativeMint, 1_000_000)
		return p
	}
	r.req, r.prov, r.arb = party(), party(), party()
	r.ledger.Fund(r.req.Address(), hostingMint, hostingFunds)
	settlementEngine(t, r.arbH, nil, &Settlement{Escrow: r.arb, Mint: hostingMint, Serve: true}, nil)

	spec, err := market.ParseSpec([]byte(`{"kind":"serve","serve":{"model":"` + testModule + `"},"limits":{"wall_seconds":100},"price":{"max":"1000","mint":"` + hostingMint + `"}}`))
	if err != nil {
		t.Fatal(err)
	}
	id := newJobID()
	terms := market.EscrowTerms{Terms: settlement.Terms{JobID: id + "/1", Requester: r.req.Address(), Provider: r.prov.Address(),
		Arbiter: r.arb.Address(), Mint: hostingMint, Amount: hostingPrice, Deadline: time.Now().Add(time.Hour).Truncate(time.Second)},
		ArbiterPeer: r.arbH.ID().String()}
	if terms.Ref, err = r.req.Lock(context.Background(), terms.Terms); err != nil {
		t.Fatal(err)
	}
	r.terms = terms
	now := time.Now().UTC()
	ev := func(d time.Duration, s market.State) Event { return Event{Time: now.Add(d), State: s} }
	r.job = &Job{ID: id, Role: RoleRequester, State: market.StateCancelled, Attempt: 1, Spec: spec, Requester: r.reqHost.ID().String(),
		Provider: r.provHost.ID().String(), Price: hostingPrice, Deadline: now.Add(time.Hour), Reason: "cancelled by the requester",
		Escrows: []EscrowRecord{{Attempt: 1, ProviderPeer: r.provHost.ID().String(), Terms: terms, State: EscrowLocked, UpdatedAt: now}},
		Events: []Event{ev(-40*time.Second, market.StateSubmitted), ev(-40*time.Second, market.StateBidding), ev(-40*time.Second, market.StateAwarded),
			ev(-40*time.Second, market.StateRunning), ev(-10*time.Second, market.StateCancelled)},
		CreatedAt: now, UpdatedAt: now}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "jobs.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r.db = db
	return r
}

// settlementEngine starts an engine with settlement on h; seed, when
// given, is stored before it starts (as a restart finds it).
func settlementEngine(t *testing.T, h *p2p.Host, db *bolt.DB, s *Settlement, seed *Job) *Engine {
	t.Helper()
	if db == nil {
		var err error
		if db, err = bolt.Open(filepath.Join(t.TempDir(), "jobs.db"), 0o600, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
	}
	e, err := New(Params{Host: h, Key: h.Peerstore().PrivKey(h.ID()), DB: db, WorkDir: t.TempDir(), Config: DefaultConfig(), Settlement: s})
	if err != nil {
		t.Fatal(err)
	}
	if seed != nil {
		if err := e.c.store.put(seed); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// requester starts the requester's engine on the rig's store, seeded with
// seed when given.
func (r *hostingRig) requester(t *testing.T, seed *Job) *Engine {
	return settlementEngine(t, r.reqHost, r.db, &Settlement{Escrow: r.req, Mint: hostingMint, Arbiter: r.arbH.ID(),
		Every: 20 * time.Millisecond}, seed)
}

// result is the provider's signed result of the stopped deployment with a
// split of amount (nil po: one proposed for amount).
func (r *hostingRig) result(t *testing.T, amount uint64, po *settlement.Payout) market.Result {
	t.Helper()
	if po == nil {
		p, err := r.prov.ProposeSplit(context.Background(), r.terms.Ref, r.terms.Terms, settlement.Split, amount)
		if err != nil {
			t.Fatal(err)
		}
		po = &p
	}
	now := time.Now().UTC()
	return market.Result{JobID: r.job.ID, Attempt: 1, Provider: r.provHost.ID().String(), Status: market.StatusFailed, ExitCode: -1,
		Reason: "cancelled", Payout: po.Tx, PayoutKind: market.PayoutSplit, PayoutAmount: amount, StartedAt: now.Add(-30 * time.Second), FinishedAt: now}
}

// send delivers a result as the provider does and returns the reply.
func (r *hostingRig) send(t *testing.T, res market.Result) wire.Reply {
	t.Helper()
	env, err := market.Seal(r.provHost.Peerstore().PrivKey(r.provHost.ID()), market.TypeResult, res)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := r.provHost.NewStream(ctx, r.reqHost.ID(), wire.ResultProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	w := bufWriter(s)
	if err := writeEnvelope(w, env); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	reply, err := wire.ReadReply(bufReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

func (r *hostingRig) balances(t *testing.T, wantReq, wantProv uint64) {
	t.Helper()
	ctx := context.Background()
	gotReq, _ := r.req.Balance(ctx, r.req.Address(), hostingMint)
	gotProv, _ := r.req.Balance(ctx, r.prov.Address(), hostingMint)
	if gotReq != wantReq || gotProv != wantProv {
		t.Errorf("requester holds %d, provider %d; want %d and %d", gotReq, gotProv, wantReq, wantProv)
	}
}

// waitEscrowState waits until the job's escrow is in state.
func waitEscrowState(t *testing.T, e *Engine, id string, state EscrowState) EscrowRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := e.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if rec := j.Escrows[0]; rec.State == state {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("escrow %+v, never %s", j.Escrows[0], state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitEscrowError waits until the job's open escrow records an error
// containing want.
func waitEscrowError(t *testing.T, e *Engine, id, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := e.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if rec := j.Escrows[0]; strings.Contains(rec.Error, want) {
			if rec.State != EscrowLocked {
				t.Fatalf("escrow %+v, want it still locked", rec)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("escrow %+v, never an error naming %q", j.Escrows[0], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHostingSplit: the requester co-signs a split for the time it saw
// served, and the ledger pays exactly that to the provider and the rest
// back; a result sent again changes nothing.
func TestServeHostingSplit(t *testing.T) {
	r := newHostingRig(t)
	e := r.requester(t, r.job)
	res := r.result(t, 300, nil)
	if reply := r.send(t, res); reply.Code != wire.CodeOK {
		t.Fatalf("the split's result answered %+v", reply)
	}
	rec := waitEscrowState(t, e, r.job.ID, EscrowReleased)
	if rec.Paid != 300 || rec.Tx == "" || rec.Error != "" {
		t.Errorf("escrow %+v, want 300 paid by a transaction", rec)
	}
	r.balances(t, hostingFunds-300, 300)
	if reply := r.send(t, res); reply.Code != wire.CodeFinal {
		t.Errorf("the result sent again answered %+v, want %s", reply, wire.CodeFinal)
	}
	if st, err := r.req.Status(context.Background(), r.terms.Ref); err != nil || st.State != settlement.Released || st.Returned != hostingPrice-300 {
		t.Errorf("vault %+v (%v), want released with %d returned", st, err, hostingPrice-300)
	}
	r.balances(t, hostingFunds-300, 300)
}

// TestHostingRefusals: a split that claims more time than the requester
// saw served, or whose transaction pays otherwise than it says, is not
// co-signed: the provider gets nothing, and the escrow is refunded whole
// after its deadline, with the arbiter.
func TestServeHostingRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  func(r *hostingRig) market.Result
		why  string
	}{
		{"more time than served", func(r *hostingRig) market.Result { return r.result(t, 400, nil) }, "split refused"},
		{"the whole vault", func(r *hostingRig) market.Result { return r.result(t, hostingPrice, nil) }, "split refused"},
		{"a tampered amount", func(r *hostingRig) market.Result {
			po, err := r.prov.ProposeSplit(context.Background(), r.terms.Ref, r.terms.Terms, settlement.Split, 900)
			if err != nil {
				t.Fatal(err)
			}
			return r.result(t, 300, &po) // says 300, pays 900
		}, "payout refused"},
		{"a release passed off as a split", func(r *hostingRig) market.Result {
			po, err := r.prov.Propose(context.Background(), r.terms.Ref, r.terms.Terms, settlement.Release)
			if err != nil {
				t.Fatal(err)
			}
			return r.result(t, 300, &po)
		}, "payout refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHostingRig(t)
			e := r.requester(t, r.job)
			if reply := r.send(t, tc.res(r)); reply.Code != wire.CodeOK {
				t.Fatalf("the result answered %+v", reply)
			}
			waitEscrowError(t, e, r.job.ID, tc.why)
			r.balances(t, hostingFunds-hostingPrice, 0)
			r.ledger.Warp(time.Until(r.terms.Deadline) + time.Second)
			rec := waitEscrowState(t, e, r.job.ID, EscrowRefunded)
			if rec.Paid != 0 || rec.Tx == "" {
				t.Errorf("refunded escrow %+v", rec)
			}
			r.balances(t, hostingFunds, 0)
		})
	}
}

// TestHostingRestarts: a requester that stopped after it took the
// provider's split, before it co-signed, co-signs it once it is back; one
// that stopped after its co-signature landed, before it recorded it,
// finds the split on the ledger. Either way the escrow settles once, and
// a later restart or the result sent again changes nothing.
func TestServeHostingRestarts(t *testing.T) {
	t.Run("before the co-signature", func(t *testing.T) {
		r := newHostingRig(t)
		j := *r.job
		res := r.result(t, 300, nil)
		j.Result = &res
		e := r.requester(t, &j)
		rec := waitEscrowState(t, e, r.job.ID, EscrowReleased)
		if rec.Paid != 300 || rec.Tx == "" {
			t.Errorf("escrow %+v, want 300 paid", rec)
		}
		r.balances(t, hostingFunds-300, 300)
		e.Close()
		e = r.requester(t, nil)
		if reply := r.send(t, res); reply.Code != wire.CodeFinal {
			t.Errorf("the result sent after the restart answered %+v", reply)
		}
		time.Sleep(100 * time.Millisecond) // a few passes of the loop
		if got, _ := e.Get(r.job.ID); got.Escrows[0].State != EscrowReleased || got.Escrows[0].Tx != rec.Tx {
			t.Errorf("after a restart the escrow is %+v, want it as it was", got.Escrows[0])
		}
		r.balances(t, hostingFunds-300, 300)
	})
	t.Run("after the co-signature", func(t *testing.T) {
		r := newHostingRig(t)
		j := *r.job
		res := r.result(t, 300, nil)
		j.Result = &res
		// The co-signature landed; the node stopped before it recorded it.
		if _, err := r.req.CoSign(context.Background(), settlement.Payout{Kind: settlement.Split, Ref: r.terms.Ref, Amount: 300, Tx: res.Payout}, r.terms.Terms); err != nil {
			t.Fatal(err)
		}
		e := r.requester(t, &j)
		rec := waitEscrowState(t, e, r.job.ID, EscrowReleased)
		if rec.Paid != 300 {
			t.Errorf("escrow %+v, want 300 paid", rec)
		}
		r.balances(t, hostingFunds-300, 300)
		// The deadline passes: nothing is refunded.
		r.ledger.Warp(time.Until(r.terms.Deadline) + time.Second)
		time.Sleep(100 * time.Millisecond)
		if got, _ := e.Get(r.job.ID); got.Escrows[0].State != EscrowReleased {
			t.Errorf("escrow %+v after the deadline", got.Escrows[0])
		}
		r.balances(t, hostingFunds-300, 300)
	})
}

// TestServeHostingProviderRestart: a provider that stopped after it
// proposed its split, before the requester took the result, sends it
// again once it is back, and the escrow settles once.
func TestServeHostingProviderRestart(t *testing.T) {
	r := newHostingRig(t)
	e := r.requester(t, r.job)
	res := r.result(t, 300, nil)
	now := time.Now().UTC()
	provided := &Job{ID: r.job.ID, Role: RoleProvider, State: market.StateReporting, Attempt: 1, Spec: r.job.Spec,
		Requester: r.reqHost.ID().String(), Provider: r.provHost.ID().String(), Price: hostingPrice, Deadline: r.job.Deadline,
		Escrows: []EscrowRecord{{Attempt: 1, ProviderPeer: r.provHost.ID().String(), Terms: r.terms, State: EscrowLocked, UpdatedAt: now}},
		Result:  &res, Events: []Event{{Time: now, State: market.StateReporting}}, CreatedAt: now, UpdatedAt: now}
	pe := settlementEngine(t, r.provHost, nil, &Settlement{Escrow: r.prov, Mint: hostingMint, Arbiter: r.arbH.ID()}, provided)
	rec := waitEscrowState(t, e, r.job.ID, EscrowReleased)
	if rec.Paid != 300 {
		t.Errorf("escrow %+v, want 300 paid", rec)
	}
	r.balances(t, hostingFunds-300, 300)
	deadline := time.Now().Add(10 * time.Second)
	for {
		jobs, err := pe.Provided()
		if err == nil && len(jobs) == 1 && jobs[0].State == market.StateFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the provider's job: %+v, %v", jobs, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
