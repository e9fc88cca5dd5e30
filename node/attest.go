package node

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Bounds of attestations.
const (
	// maxAttestPeers bounds the providers one attestations request names.
	maxAttestPeers = 256
	// maxAttestFrame bounds an attestations request or answer.
	maxAttestFrame = 1 << 20
	// maxAttested bounds the providers an indexer keeps attestations of.
	maxAttested = 10000
)

// attestRequest asks an indexer for its attestations of Peers.
type attestRequest struct {
	Peers []string `json:"peers"`
}

// attestAnswer carries the signed attestations an indexer has.
type attestAnswer struct {
	Attestations [][]byte `json:"attestations"`
}

// attested is one provider's latest attestation, as its indexer keeps it.
type attested struct {
	a   market.Attestation
	env []byte
}

// attester is an indexer's capacity checker: every scan it reads the
// providers' records and challenges each whose claim has no fresh
// attestation, one at a time; it serves the attestations it signed on
// AttestationsProtocol. Start starts its goroutine, Close stops it.
type attester struct {
	host    *p2p.Host
	key     crypto.PrivKey
	every   time.Duration // how often a provider is checked
	scan    time.Duration // how often records are read
	gpus    bool
	records func(ctx context.Context) ([]market.Capacity, error)
	log     *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	got map[string]attested
}

// Start serves attestations and starts checking.
func (a *attester) Start(context.Context) error {
	a.got = map[string]attested{}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan struct{})
	a.host.SetStreamHandler(wire.AttestationsProtocol, a.serve)
	go a.run(ctx)
	return nil
}

// Close stops checking and serving, and waits for the goroutine.
func (a *attester) Close() error {
	a.host.RemoveStreamHandler(wire.AttestationsProtocol)
	a.cancel()
	<-a.done
	return nil
}

func (a *attester) run(ctx context.Context) {
	defer close(a.done)
	baseline := compute.BenchScore(50 * time.Millisecond)
	for {
		records, err := a.records(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Debug("capacity records not read", "error", err)
		}
		for _, c := range records {
			if ctx.Err() != nil {
				return
			}
			if c.Peer != a.host.ID().String() && a.due(c, time.Now()) {
				a.check(ctx, c, baseline)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.scan):
		}
	}
}

// due reports whether c's claim has no fresh attestation.
func (a *attester) due(c market.Capacity, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	old, ok := a.got[c.Peer]
	return !ok || now.Sub(old.a.IssuedAt) >= a.every || old.a.BenchScore != c.BenchScore || old.a.GPUs != len(c.GPUs)
}

// check challenges c's claims and keeps the signed attestation. A
// provider that takes no challenge now (its rate limit) gets none.
func (a *attester) check(ctx context.Context, c market.Capacity, baseline float64) {
	plans := []market.Challenge{market.PlanChallenge(c, false)}
	if a.gpus && len(c.GPUs) > 0 {
		plans = append(plans, market.PlanChallenge(c, true))
	}
	att := market.Attestation{Provider: c.Peer, BenchScore: c.BenchScore, GPUs: len(c.GPUs), Verified: true}
	for _, ch := range plans {
		out := challenge(ctx, a.host, c, ch, baseline)
		if out.limited || ctx.Err() != nil {
			return
		}
		att.Checks = append(att.Checks, ch.Kind)
		if out.err != nil {
			att.Verified, att.Reason = false, wire.Truncate(ch.Kind+": "+out.err.Error(), 512)
			break
		}
	}
	att.IssuedAt = time.Now().UTC()
	att.ExpiresAt = att.IssuedAt.Add(min(3*a.every, market.MaxAttestationLife))
	env, err := market.Seal(a.key, market.TypeAttestation, att)
	if err != nil {
		a.log.Error("attestation not signed", "error", err)
		return
	}
	data, err := env.Marshal()
	if err != nil {
		a.log.Error("attestation not signed", "error", err)
		return
	}
	a.log.Info("capacity checked", "provider", c.Peer, "verified", att.Verified, "reason", att.Reason)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.got) >= maxAttested {
		for p, old := range a.got {
			if !old.a.ExpiresAt.After(time.Now()) {
				delete(a.got, p)
			}
		}
	}
	if len(a.got) < maxAttested {
		a.got[c.Peer] = attested{a: att, env: data}
	}
}

// signed returns the attestations kept of peers, still fresh.
func (a *attester) signed(peers []string, now time.Time) [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := [][]byte{}
	for _, p := range peers {
		if at, ok := a.got[p]; ok && at.a.ExpiresAt.After(now) {
			out = append(out, at.env)
		}
	}
	return out
}

func (a *attester) serve(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	br, bw := bufio.NewReader(s), bufio.NewWriter(s)
	var req attestRequest
	if err := wire.ReadJSON(br, maxAttestFrame, &req); err != nil || len(req.Peers) > maxAttestPeers {
		s.Reset()
		return
	}
	if err := wire.WriteJSON(bw, attestAnswer{Attestations: a.signed(req.Peers, time.Now())}); err != nil {
		s.Reset()
	}
}

// fetchAttestations asks indexer id for its attestations of peers.
func fetchAttestations(ctx context.Context, h *p2p.Host, id peer.ID, peers []string) ([][]byte, error) {
	if len(peers) > maxAttestPeers {
		peers = peers[:maxAttestPeers]
	}
	s, err := h.NewStream(ctx, id, wire.AttestationsProtocol)
	if err != nil {
		return nil, fmt.Errorf("open attestations stream: %w", err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	br, bw := bufio.NewReader(s), bufio.NewWriter(s)
	if err := wire.WriteJSON(bw, attestRequest{Peers: peers}); err != nil {
		s.Reset()
		return nil, fmt.Errorf("ask attestations: %w", err)
	}
	var ans attestAnswer
	if err := wire.ReadJSON(br, maxAttestFrame, &ans); err != nil {
		s.Reset()
		return nil, fmt.Errorf("read attestations: %w", err)
	}
	return ans.Attestations, nil
}

// openAttestation opens one signed attestation, taking it only from a
// trusted indexer.
func openAttestation(data []byte, trusted map[peer.ID]bool, now time.Time) (market.Attestation, peer.ID, error) {
	env, err := market.ParseEnvelope(data)
	if err != nil {
		return market.Attestation{}, "", err
	}
	var a market.Attestation
	signer, err := env.Open(market.TypeAttestation, &a)
	if err != nil {
		return market.Attestation{}, "", err
	}
	if !trusted[signer] {
		return market.Attestation{}, "", fmt.Errorf("attestation by %s, not a trusted indexer (market.attesters)", signer)
	}
	if err := market.CheckAttestation(a, now); err != nil {
		return market.Attestation{}, "", err
	}
	return a, signer, nil
}

// capacityStates decides each record's state from the attestations of
// the trusted indexers (and of this node, when it is one): unverified
// when any says so, else verified when any says so, else unchecked. It
// returns the states and the indexers behind each, by peer.
func capacityStates(ctx context.Context, h *p2p.Host, self *attester, trusted []peer.ID, records []market.Capacity) (map[string]string, map[string][]string) {
	peers := make([]string, 0, len(records))
	for _, c := range records {
		peers = append(peers, c.Peer)
	}
	trust := map[peer.ID]bool{}
	var mu sync.Mutex
	var all [][]byte
	var wg sync.WaitGroup
	for _, id := range trusted {
		trust[id] = true
		if id == h.ID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := fetchAttestations(ctx, h, id, peers)
			if err != nil {
				return
			}
			mu.Lock()
			all = append(all, got...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if self != nil {
		trust[h.ID()] = true
		all = append(all, self.signed(peers, time.Now())...)
	}
	byPeer := map[string]market.Capacity{}
	for _, c := range records {
		byPeer[c.Peer] = c
	}
	states, by := map[string]string{}, map[string][]string{}
	for _, data := range all {
		a, signer, err := openAttestation(data, trust, time.Now())
		if err != nil {
			continue
		}
		c, ok := byPeer[a.Provider]
		if !ok {
			continue
		}
		st := market.CapacityState(c, a)
		if st == market.CapacityUnchecked || states[c.Peer] == market.CapacityUnverified {
			continue
		}
		if st == market.CapacityUnverified && states[c.Peer] == market.CapacityVerified {
			by[c.Peer] = nil
		}
		states[c.Peer] = st
		by[c.Peer] = append(by[c.Peer], signer.String())
	}
	return states, by
}
