package node

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Provider-side bounds of challenges: what keeps them cheap.
const (
	// challengePerPeer is how often one peer may challenge a provider.
	challengePerPeer = 10 * time.Minute
	// challengesInFlight bounds the challenges a provider answers at once.
	challengesInFlight = 2
	// challengeDeadline bounds one challenge's stream.
	challengeDeadline = 30 * time.Second
	// maxChallengeFrame bounds each frame of a challenge.
	maxChallengeFrame = 4 << 10
	// maxChallengers bounds the peers a provider remembers challenging it.
	maxChallengers = 4096
)

// errChallengeLimit: a provider takes no more challenges from a peer, or
// none at all, now.
var errChallengeLimit = errors.New("challenge rate limit")

// solveFunc answers a challenge; tests swap in a provider that cheats.
type solveFunc func(ctx context.Context, c market.Challenge, seed []byte) ([]byte, error)

// challengeResponder answers a provider's challenges, at most one per
// peer per challengePerPeer and challengesInFlight at once. It starts no
// goroutine: libp2p runs each stream's handler.
type challengeResponder struct {
	solve solveFunc
	every time.Duration
	slots chan struct{}

	mu   sync.Mutex
	last map[peer.ID]time.Time
}

func newChallengeResponder(solve solveFunc) *challengeResponder {
	if solve == nil {
		solve = market.SolveChallenge
	}
	return &challengeResponder{solve: solve, every: challengePerPeer, slots: make(chan struct{}, challengesInFlight),
		last: map[peer.ID]time.Time{}}
}

// admit takes a slot for a challenge from p, or says why not.
func (r *challengeResponder) admit(p peer.ID, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[p]; ok && now.Sub(t) < r.every {
		return fmt.Errorf("%w: one challenge per peer every %v, next at %s", errChallengeLimit, r.every, t.Add(r.every).UTC().Format(time.RFC3339))
	}
	if len(r.last) >= maxChallengers {
		for q, t := range r.last {
			if now.Sub(t) >= r.every {
				delete(r.last, q)
			}
		}
		if len(r.last) >= maxChallengers {
			return fmt.Errorf("%w: too many challengers", errChallengeLimit)
		}
	}
	select {
	case r.slots <- struct{}{}:
	default:
		return fmt.Errorf("%w: %d challenges in flight", errChallengeLimit, challengesInFlight)
	}
	r.last[p] = now
	return nil
}

func (r *challengeResponder) handle(s network.Stream) {
	defer s.Close()
	if err := r.serve(s); err != nil {
		s.Reset()
	}
}

func (r *challengeResponder) serve(s network.Stream) error {
	if err := s.SetDeadline(time.Now().Add(challengeDeadline)); err != nil {
		return err
	}
	br, bw := bufio.NewReader(s), bufio.NewWriter(s)
	var c market.Challenge
	if err := wire.ReadJSON(br, maxChallengeFrame, &c); err != nil {
		return fmt.Errorf("read challenge: %w", err)
	}
	if err := market.CheckChallenge(c); err != nil {
		return wire.WriteReply(bw, wire.Refuse(err))
	}
	if err := r.admit(s.Conn().RemotePeer(), time.Now()); err != nil {
		return wire.WriteReply(bw, wire.Reply{Code: wire.CodeFull, Reason: err.Error()})
	}
	defer func() { <-r.slots }()
	if err := wire.WriteReply(bw, wire.OK); err != nil {
		return err
	}
	var seed market.ChallengeSeed
	if err := wire.ReadJSON(br, maxChallengeFrame, &seed); err != nil {
		return fmt.Errorf("read challenge seed: %w", err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(challengeDeadline))
	defer cancel()
	digest, err := r.solve(ctx, c, seed.Seed)
	if err != nil {
		return err
	}
	return wire.WriteJSON(bw, market.ChallengeAnswer{Digest: digest})
}

// challengeOutcome is what one challenge found.
type challengeOutcome struct {
	// limited: the provider took no challenge now (rate limit): no
	// verdict either way.
	limited bool
	// err is why the claim failed; nil when it held.
	err error
}

// challenge checks one claim of record c with challenge ch: it computes
// the answer itself first, timing that against baseline (its own hash
// speed, MB/s, measured at start) to learn how loaded it is now, then
// times the provider's answer.
func challenge(ctx context.Context, h *p2p.Host, c market.Capacity, ch market.Challenge, baseline float64) challengeOutcome {
	id, err := peer.Decode(c.Peer)
	if err != nil {
		return challengeOutcome{err: fmt.Errorf("provider id: %w", err)}
	}
	seed := make([]byte, market.ChallengeSeedBytes)
	if _, err := rand.Read(seed); err != nil {
		return challengeOutcome{err: err}
	}
	start := time.Now()
	want, err := market.SolveChallenge(ctx, ch, seed)
	if err != nil {
		return challengeOutcome{limited: true}
	}
	slowdown := 1.0
	if ch.Kind == market.ChallengeHash && baseline > 0 {
		slowdown = time.Since(start).Seconds() / market.ExpectedTime(market.Capacity{BenchScore: baseline}, ch).Seconds()
	}
	got, elapsed, rtt, err := askChallenge(ctx, h, id, ch, seed)
	var re *wire.ReplyError
	if errors.As(err, &re) && re.Code == wire.CodeFull {
		return challengeOutcome{limited: true}
	}
	if err != nil {
		return challengeOutcome{err: fmt.Errorf("no answer: %w", err)}
	}
	return challengeOutcome{err: market.JudgeChallenge(want, got, market.ExpectedTime(c, ch), elapsed, rtt, slowdown)}
}

// askChallenge runs the protocol's four frames with provider id.
func askChallenge(ctx context.Context, h *p2p.Host, id peer.ID, ch market.Challenge, seed []byte) (digest []byte, elapsed, rtt time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, challengeDeadline)
	defer cancel()
	s, err := h.NewStream(ctx, id, wire.ChallengeProtocol)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("open challenge stream: %w", err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	br, bw := bufio.NewReader(s), bufio.NewWriter(s)
	t0 := time.Now()
	if err := wire.WriteJSON(bw, ch); err != nil {
		s.Reset()
		return nil, 0, 0, fmt.Errorf("send challenge: %w", err)
	}
	r, err := wire.ReadReply(br)
	if err != nil {
		s.Reset()
		return nil, 0, 0, fmt.Errorf("read challenge reply: %w", err)
	}
	if err := r.Err(); err != nil {
		return nil, 0, 0, err
	}
	rtt = time.Since(t0)
	t1 := time.Now()
	if err := wire.WriteJSON(bw, market.ChallengeSeed{Seed: seed}); err != nil {
		s.Reset()
		return nil, 0, 0, fmt.Errorf("send challenge seed: %w", err)
	}
	var a market.ChallengeAnswer
	if err := wire.ReadJSON(br, maxChallengeFrame, &a); err != nil {
		s.Reset()
		return nil, 0, 0, fmt.Errorf("read challenge answer: %w", err)
	}
	return a.Digest, time.Since(t1), rtt, nil
}
