package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestCapacityChecks: an indexer challenges the providers it sees; one
// that inflates its bench_score, one that answers wrong and one that does
// not answer are marked unverified and ranked last; the honest one is
// verified, by the indexer a requester trusts.
func TestCapacityChecks(t *testing.T) {
	icfg := testConfig()
	icfg.Role, icfg.Market.Provider = RoleIndexer, false
	icfg.Indexer.CapacitySeconds, icfg.Indexer.ChallengeSeconds = 1, 600
	idx := startNode(t, icfg, 0)
	info, err := idx.client.NodeInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pcfg := testConfig()
	pcfg.Swarm.Bootstrap = info.Addresses
	honest := startNode(t, pcfg, 0)
	inflated := startNodeEdit(t, pcfg, 0, func(p *Params) {
		p.cheatCapacity = func(c *market.Capacity) { c.BenchScore *= 1000 }
	})
	wrong := startNodeEdit(t, pcfg, 0, func(p *Params) {
		p.cheatChallenge = func(context.Context, market.Challenge, []byte) ([]byte, error) { return make([]byte, 32), nil }
	})
	silent := startNodeEdit(t, pcfg, 0, func(p *Params) {
		p.cheatChallenge = func(context.Context, market.Challenge, []byte) ([]byte, error) { return nil, errors.New("no") }
	})
	rcfg := testConfig()
	rcfg.Market.Provider = false
	rcfg.Swarm.Bootstrap = info.Addresses
	rcfg.Market.Attesters = []string{idx.Host().ID().String()}
	req := startNode(t, rcfg, 0)

	want := map[string]string{
		honest.Host().ID().String():   market.CapacityVerified,
		inflated.Host().ID().String(): market.CapacityUnverified,
		wrong.Host().ID().String():    market.CapacityUnverified,
		silent.Host().ID().String():   market.CapacityUnverified,
	}
	var got []api.ProviderInfo
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err = req.client.MarketProviders(context.Background(), api.ProvidersParams{})
		if err != nil {
			t.Fatal(err)
		}
		done := len(got) == len(want)
		for _, p := range got {
			done = done && p.Capacity == want[p.ID]
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			for _, p := range got {
				t.Errorf("provider %s: capacity %q, want %q", p.ID, p.Capacity, want[p.ID])
			}
			t.Fatal("capacity checks did not settle")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got[0].ID != honest.Host().ID().String() || got[0].AttestedBy[0] != idx.Host().ID().String() {
		t.Errorf("first provider %s attested by %v, want the verified %s by the indexer", got[0].ID, got[0].AttestedBy, honest.Host().ID())
	}
	// A node that trusts no indexer takes no attestation.
	other := startNode(t, func() Config { c := rcfg; c.Market.Attesters = []string{}; return c }(), 0)
	list, err := other.client.MarketProviders(context.Background(), api.ProvidersParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		if p.Capacity != market.CapacityUnchecked {
			t.Errorf("untrusting node: provider %s is %q, want unchecked", p.ID, p.Capacity)
		}
	}
}

// TestChallengeFloodRefused: a provider answers one challenge per peer
// per window, and refuses the next with CodeFull and a reason.
func TestChallengeFloodRefused(t *testing.T) {
	nodes := swarm(t, 2)
	c, p := nodes[0], nodes[1]
	ch := market.Challenge{Kind: market.ChallengeHash, Size: market.MinChallengeMiB}
	seed := make([]byte, market.ChallengeSeedBytes)
	if _, _, _, err := askChallenge(t.Context(), c.Host(), p.Host().ID(), ch, seed); err != nil {
		t.Fatalf("first challenge: %v", err)
	}
	_, _, _, err := askChallenge(t.Context(), c.Host(), p.Host().ID(), ch, seed)
	var re *wire.ReplyError
	if !errors.As(err, &re) || re.Code != wire.CodeFull || !strings.Contains(re.Reason, "one challenge per peer") {
		t.Fatalf("second challenge: %v, want refused as full with the limit", err)
	}
	// Out of bounds: refused before any work.
	_, _, _, err = askChallenge(t.Context(), c.Host(), p.Host().ID(), market.Challenge{Kind: market.ChallengeHash, Size: 1 << 20}, seed)
	if !errors.As(err, &re) || re.Code != wire.CodeRejected {
		t.Fatalf("huge challenge: %v, want rejected", err)
	}
}

// TestChallengeResponderLimits: in-flight and remembered-peer bounds.
func TestChallengeResponderLimits(t *testing.T) {
	r := newChallengeResponder(nil)
	now := time.Now()
	for i := range challengesInFlight {
		if err := r.admit(peer.ID(rune('a'+i)), now); err != nil {
			t.Fatalf("admit %d: %v", i, err)
		}
	}
	if err := r.admit("z", now); !errors.Is(err, errChallengeLimit) {
		t.Errorf("admit past the in-flight bound = %v, want %v", err, errChallengeLimit)
	}
	<-r.slots
	if err := r.admit("z", now.Add(time.Second)); err != nil {
		t.Errorf("admit after a slot freed = %v", err)
	}
}

// TestAttestationTrust: a forged attestation, one by an untrusted signer
// or of the wrong type is ignored.
func TestAttestationTrust(t *testing.T) {
	key, id := testPeerKey(t, 1)
	other, otherID := testPeerKey(t, 2)
	now := time.Now()
	a := market.Attestation{Provider: otherID.String(), Verified: true, Checks: []string{"hash"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	seal := func(k interface{}, typ string, v any) []byte {
		env, err := market.Seal(key, typ, v)
		if k != nil {
			env, err = market.Seal(other, typ, v)
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := env.Marshal()
		return data
	}
	trusted := map[peer.ID]bool{id: true}
	if _, _, err := openAttestation(seal(nil, market.TypeAttestation, a), trusted, now); err != nil {
		t.Fatalf("trusted attestation refused: %v", err)
	}
	env, _ := market.Seal(key, market.TypeAttestation, a)
	env.Payload = []byte(strings.Replace(string(env.Payload), `"verified":true`, `"verified":false`, 1))
	forged, _ := env.Marshal()
	for name, data := range map[string][]byte{
		"forged":     forged,
		"untrusted":  seal(other, market.TypeAttestation, a),
		"wrong type": seal(nil, market.TypeCapacity, a),
		"expired":    seal(nil, market.TypeAttestation, market.Attestation{Provider: a.Provider, IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}),
	} {
		if _, _, err := openAttestation(data, trusted, now); err == nil {
			t.Errorf("%s attestation taken", name)
		}
	}
}

// testPeerKey is the seeded identity seed, as a key and its peer ID.
func testPeerKey(t *testing.T, seed byte) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, err := crypto.UnmarshalPrivateKey(seededKey(t, seed))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}
