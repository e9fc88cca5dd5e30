package jobs

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/cyxwiz/cyxwiz/settlement/memledger"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	bolt "go.etcd.io/bbolt"
)

const testModule = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"

// mockEngine is a started engine on a mocknet host; with memMiB > 0 it
// is a provider offering that much memory (it runs nothing: the tests
// stop before a job would run).
func mockEngine(t *testing.T, h *p2p.Host, memMiB int64) *Engine {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "jobs.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p := Params{Host: h, Key: h.Peerstore().PrivKey(h.ID()), DB: db, WorkDir: t.TempDir(), Config: DefaultConfig()}
	if memMiB > 0 {
		p.Executors = map[string]compute.Executor{market.KindWASM: nil}
		p.Capacity = func() (market.Capacity, bool) {
			return market.Capacity{Peer: h.ID().String(), CPUCores: 4, MemoryMiB: memMiB, DiskMiB: 1024, Executors: []string{market.KindWASM}}, true
		}
	}
	e, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func testSpec(t *testing.T) market.Spec {
	t.Helper()
	s, err := market.ParseSpec([]byte(`{"kind":"wasm","wasm":{"module":"` + testModule + `"},"resources":{"cpu":1,"memory_mib":256,"disk_mib":64},"limits":{"wall_seconds":60}}`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// exchangeEnvelope sends one sealed message from h to p over proto and
// reads the envelope that answers it, opened as typ into v.
func exchangeEnvelope(t *testing.T, h *p2p.Host, p peer.ID, proto protocol.ID, key crypto.PrivKey, typ string, msg any, answer string, v any) error {
	t.Helper()
	env, err := market.Seal(key, typ, msg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	w := bufWriter(s)
	if err := writeEnvelope(w, env); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = readEnvelope(bufReader(s), answer, v)
	return err
}

// TestProviderRefusesAwards: the provider side acks no award that is
// forged, meant for another provider, stale, or beyond its offer, and
// says why; it records no job for any of them.
func TestProviderRefusesAwards(t *testing.T) {
	hosts := p2ptest.MockNet(t, 3, 5*time.Millisecond)
	prov, req, other := hosts[0], hosts[1], hosts[2]
	e := mockEngine(t, prov, 128)
	reqKey := req.Peerstore().PrivKey(req.ID())
	now := time.Now().UTC()
	valid := market.Award{JobID: newJobID(), Attempt: 1, Requester: req.ID().String(), Provider: prov.ID().String(),
		Spec: testSpec(t), IssuedAt: now, Deadline: now.Add(time.Minute)}
	for _, tc := range []struct {
		name  string
		key   crypto.PrivKey
		edit  func(*market.Award)
		cause string
	}{
		{"signed by another peer", other.Peerstore().PrivKey(other.ID()), func(a *market.Award) { a.Requester = other.ID().String() }, "not sent by its signer"},
		{"for another provider", reqKey, func(a *market.Award) { a.Provider = other.ID().String() }, "not this provider"},
		{"stale", reqKey, func(a *market.Award) { a.IssuedAt = now.Add(-time.Hour) }, "stale"},
		{"past its deadline", reqKey, func(a *market.Award) { a.Deadline = now.Add(-time.Second) }, "deadline"},
		{"beyond the offer", reqKey, func(*market.Award) {}, "memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := valid
			tc.edit(&a)
			var ack market.Ack
			if err := exchangeEnvelope(t, req, prov.ID(), wire.AwardProtocol, tc.key, market.TypeAward, a, market.TypeAck, &ack); err != nil {
				t.Fatalf("no ack: %v", err)
			}
			if ack.Accepted || !strings.Contains(ack.Reason, tc.cause) {
				t.Errorf("ack %+v, want a refusal naming %q", ack, tc.cause)
			}
		})
	}
	if jobs, err := e.Provided(); err != nil || len(jobs) != 0 {
		t.Errorf("provided jobs %v (%v), want none", jobs, err)
	}
}

// TestRequesterBids: a bid for no open auction is answered closed, one
// sent by a peer other than its signer is cut, and a good one reaches
// its auction.
func TestRequesterBids(t *testing.T) {
	hosts := p2ptest.MockNet(t, 3, 5*time.Millisecond)
	reqHost, prov, other := hosts[0], hosts[1], hosts[2]
	e := mockEngine(t, reqHost, 0)
	provKey := prov.Peerstore().PrivKey(prov.ID())
	bid := market.Bid{JobID: newJobID(), Attempt: 1, Provider: prov.ID().String(), ExpiresAt: time.Now().Add(time.Minute)}

	send := func(from *p2p.Host, key crypto.PrivKey) (wire.Reply, error) {
		env, err := market.Seal(key, market.TypeBid, bid)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := from.NewStream(ctx, reqHost.ID(), wire.BidProtocol)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		w := bufWriter(s)
		if err := writeEnvelope(w, env); err != nil {
			return wire.Reply{}, err
		}
		if err := w.Flush(); err != nil {
			return wire.Reply{}, err
		}
		return wire.ReadReply(bufReader(s))
	}

	if r, err := send(prov, provKey); err != nil || r.Code != wire.CodeClosed {
		t.Errorf("bid for no auction: %+v, %v; want %s", r, err, wire.CodeClosed)
	}
	if r, err := send(other, provKey); err == nil {
		t.Errorf("bid relayed by another peer answered %+v, want the stream cut", r)
	}

	bids := make(chan candidate, 1)
	e.req.mu.Lock()
	e.req.auctions[auctionKey(bid.JobID, bid.Attempt)] = bids
	e.req.mu.Unlock()
	if r, err := send(prov, provKey); err != nil || r.Code != wire.CodeOK {
		t.Errorf("bid for an open auction: %+v, %v", r, err)
	}
	select {
	case c := <-bids:
		if c.signer != prov.ID() || c.bid.JobID != bid.JobID {
			t.Errorf("auction got %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Error("the bid did not reach its auction")
	}
}

// TestArbiterProtocol: an arbiter tells its ledger address, a node that is
// not one refuses, and a refund for an escrow the arbiter is no member of
// is refused without touching the ledger.
func TestArbiterProtocol(t *testing.T) {
	hosts := p2ptest.MockNet(t, 3, 5*time.Millisecond)
	ledger := memledger.New()
	party := func() *memledger.Party {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return ledger.Party(k)
	}
	arbParty := party()
	withSettlement := func(h *p2p.Host, s *Settlement) *Engine {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "jobs.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		e, err := New(Params{Host: h, Key: h.Peerstore().PrivKey(h.ID()), DB: db, WorkDir: t.TempDir(), Config: DefaultConfig(), Settlement: s})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	withSettlement(hosts[0], &Settlement{Escrow: arbParty, Mint: "mint", Serve: true})
	withSettlement(hosts[1], &Settlement{Escrow: party(), Mint: "mint"})
	client := withSettlement(hosts[2], &Settlement{Escrow: party(), Mint: "mint", Arbiter: hosts[0].ID()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if addr, err := client.pay.arbiterAddress(ctx); err != nil || addr != arbParty.Address() {
		t.Errorf("arbiter address %q (%v), want %q", addr, err, arbParty.Address())
	}
	var res arbiterResponse
	if err := client.pay.askArbiterPeer(ctx, hosts[1].ID().String(), arbiterRequest{Op: opAddress}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Code != wire.CodeRejected || !strings.Contains(res.Reason, "not an arbiter") {
		t.Errorf("a node that is no arbiter answered %+v", res.Reply)
	}
	terms := market.EscrowTerms{Terms: settlement.Terms{JobID: "job/1", Arbiter: "someone-else"}, Ref: settlement.Ref{Vault: "vault"}}
	res = arbiterResponse{}
	if err := client.pay.askArbiter(ctx, arbiterRequest{Op: opRefund, Terms: &terms}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Code != wire.CodeRejected || !strings.Contains(res.Reason, "not a member") {
		t.Errorf("refund of another arbiter's escrow answered %+v", res.Reply)
	}
	if res.Tx != "" {
		t.Errorf("refund refused with a transaction %q", res.Tx)
	}
}
