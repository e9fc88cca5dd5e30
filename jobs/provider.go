package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/p2p/wire"

	"github.com/cyxwiz/cyxwiz/market"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// provider is the side of the engine that sells work: it reads job
// announcements, bids, takes awards, queues and runs jobs and delivers
// their results.
type provider struct {
	*core
	pay     *settler
	sub     *pubsub.Subscription
	modules moduleCache // bytes of recently run modules
	admit   *admission  // which queued jobs may run

	mu      sync.Mutex
	running map[string]context.CancelFunc // jobID/attempt -> stop
	seen    map[string]time.Time          // announcements seen
	load    market.Load
}

func newProvider(c *core, pay *settler) *provider {
	pv := &provider{core: c, pay: pay, running: map[string]context.CancelFunc{}, seen: map[string]time.Time{}}
	pv.admit = newAdmission(c.cfg.MaxConcurrent, pv.offeredMemory)
	return pv
}

func (pv *provider) isProvider() bool { return len(pv.p.Executors) > 0 && pv.p.Capacity != nil }

// offeredMemory is the memory in MiB the provider's capacity offers now.
func (pv *provider) offeredMemory() int64 {
	if pv.p.Capacity == nil {
		return 0
	}
	c, _ := pv.p.Capacity()
	return c.MemoryMiB
}

// start reads the announcements of sub until stop.
func (pv *provider) start(sub *pubsub.Subscription) {
	pv.sub = sub
	pv.spawn(pv.readAnnouncements)
	pv.spawn(pv.sweepSeen)
}

// stop ends the reading of announcements.
func (pv *provider) stop() {
	if pv.sub != nil {
		pv.sub.Cancel()
	}
}

// resume recovers the jobs a provider was running when it stopped.
func (pv *provider) resume(jobs []*Job) {
	for _, j := range jobs {
		if j.State.Final() {
			continue
		}
		pv.spawn(func() { pv.recoverProvided(j) })
	}
}

func bufReader(s network.Stream) *bufio.Reader { return bufio.NewReader(s) }
func bufWriter(s network.Stream) *bufio.Writer { return bufio.NewWriter(s) }

// validateAnnouncement is the jobs topic's validator: a valid signature by
// the message's author, a fresh and well-formed announcement. Invalid
// messages are rejected (their sender is scored down); replays of an
// announcement already seen are ignored.
func (pv *provider) validateAnnouncement(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if len(msg.Data) > market.MaxEnvelopeBytes {
		return pubsub.ValidationReject
	}
	env, err := market.ParseEnvelope(msg.Data)
	if err != nil {
		return pubsub.ValidationReject
	}
	var a market.Announcement
	signer, err := env.Open(market.TypeAnnouncement, &a)
	if err != nil {
		return pubsub.ValidationReject
	}
	if err := market.CheckAnnouncement(a, signer, time.Now()); err != nil {
		pv.log.Debug("announcement rejected", "from", from, "error", err)
		return pubsub.ValidationReject
	}
	// Keyed by requester too: another peer announcing the same job ID
	// must not hide the real requester's announcements.
	key := a.Requester + "/" + auctionKey(a.JobID, a.Attempt)
	pv.mu.Lock()
	_, dup := pv.seen[key]
	if !dup {
		pv.seen[key] = time.Now()
	}
	pv.mu.Unlock()
	if dup {
		return pubsub.ValidationIgnore
	}
	msg.ValidatorData = a
	return pubsub.ValidationAccept
}

// sweepSeen forgets announcements older than they may be replayed.
func (pv *provider) sweepSeen() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-pv.ctx.Done():
			return
		case <-t.C:
		}
		pv.mu.Lock()
		for k, at := range pv.seen {
			if time.Since(at) > 2*market.MaxAnnouncementAge {
				delete(pv.seen, k)
			}
		}
		pv.mu.Unlock()
	}
}

// readAnnouncements bids for announced jobs the strategy accepts.
func (pv *provider) readAnnouncements() {
	for {
		msg, err := pv.sub.Next(pv.ctx)
		if err != nil {
			return
		}
		a, ok := msg.ValidatorData.(market.Announcement)
		if !ok || a.Requester == pv.self.String() || !pv.isProvider() {
			continue
		}
		capacity, ok := pv.p.Capacity()
		if !ok {
			continue
		}
		pv.mu.Lock()
		load := pv.load
		pv.mu.Unlock()
		d := pv.strategy().ShouldBid(market.BidRequest{Announcement: a, Capacity: capacity, Load: load})
		if !d.Bid {
			pv.log.Debug("not bidding", "job", a.JobID, "reason", d.Reason)
			continue
		}
		bid := market.Bid{JobID: a.JobID, Attempt: a.Attempt, Provider: pv.self.String(),
			Price: capacity.Prices.Quote(a.Spec), QueueDepth: pv.queueDepth(load), ExpiresAt: time.Now().Add(time.Minute)}
		if a.Spec.Price != nil {
			bid.Mint = a.Spec.Price.Mint
			if st := pv.p.Settlement; st != nil && bid.Mint == st.Mint && bid.Price > 0 {
				if st.Arbiter == "" {
					// It could not check an escrow, and takes no job in its
					// mint without one.
					pv.log.Debug("not bidding", "job", a.JobID, "reason", "no trusted arbiter (settlement.arbiter)")
					continue
				}
				bid.Payee = st.Escrow.Address()
			}
		}
		pv.spawn(func() {
			err := pv.sendBid(a, bid)
			pv.p.Metrics.BidSent(err == nil)
			if err != nil {
				pv.log.Debug("bid not delivered", "job", a.JobID, "error", err)
			}
		})
	}
}

// strategy is the provider's bid strategy: a job it can run, at its
// price, from a requester it serves, with room in its queue. Jobs beyond
// MaxConcurrent wait in a queue of up to QueueFactor times as many; bids
// say how deep the queue is.
func (pv *provider) strategy() market.BidStrategy {
	return market.All(market.ExecutorSupported(), market.Fits(), market.MinPrice(),
		market.AllowDeny(pv.cfg.Allow, pv.cfg.Deny), market.QueueRoom(pv.cfg.MaxConcurrent, pv.cfg.MaxConcurrent*queueFactor),
		market.ServeStartsNow(pv.cfg.MaxConcurrent))
}

// queueFactor sizes the provider's queue relative to MaxConcurrent.
const queueFactor = 4

// queueDepth is how many jobs would run before a new one.
func (pv *provider) queueDepth(l market.Load) int {
	return max(0, l.Running+l.Queued-pv.cfg.MaxConcurrent+1)
}

func (pv *provider) sendBid(a market.Announcement, bid market.Bid) error {
	info, err := addrInfo(a.Requester, a.RequesterAddrs)
	if err != nil {
		return err
	}
	env, err := market.Seal(pv.p.Key, market.TypeBid, bid)
	if err != nil {
		return err
	}
	reply, err := pv.exchange(info, wire.BidProtocol, env, 5*time.Second)
	if err != nil {
		return err
	}
	return reply.Err()
}

// exchange sends one envelope to a peer, dialling it when needed, and
// returns its reply.
func (pv *provider) exchange(info peer.AddrInfo, proto protocol.ID, env market.Envelope, timeout time.Duration) (wire.Reply, error) {
	ctx, cancel := context.WithTimeout(pv.ctx, timeout)
	defer cancel()
	if len(pv.p.Host.Network().ConnsToPeer(info.ID)) == 0 {
		if err := pv.p.Host.Connect(ctx, info); err != nil {
			return wire.Reply{}, err
		}
	}
	s, r, w, err := pv.newStream(ctx, info.ID, proto, timeout)
	if err != nil {
		return wire.Reply{}, err
	}
	defer s.Close()
	if err := writeEnvelope(w, env); err != nil {
		s.Reset()
		return wire.Reply{}, err
	}
	return wire.ReadReply(r)
}

// handleAward answers an award with a signed ack and starts the job.
func (pv *provider) handleAward(s network.Stream) {
	defer s.Close()
	var award market.Award
	msg, err := readSigned(s, 10*time.Second, market.TypeAward, &award)
	if err != nil {
		pv.log.Debug("bad award", "peer", s.Conn().RemotePeer(), "error", err)
		s.Reset()
		return
	}
	signer, w := msg.signer, msg.w
	ack := market.Ack{JobID: award.JobID, Attempt: award.Attempt, Provider: pv.self.String()}
	if err := pv.takeAward(award, signer, s.Conn().RemotePeer()); err != nil {
		ack.Reason = err.Error()
	} else {
		ack.Accepted = true
		if award.Escrow != nil {
			ack.Vault = award.Escrow.Vault
		}
	}
	ackEnv, err := market.Seal(pv.p.Key, market.TypeAck, ack)
	if err != nil {
		s.Reset()
		return
	}
	if err := writeEnvelope(w, ackEnv); err != nil {
		s.Reset()
		pv.log.Warn("ack not delivered", "job", award.JobID, "error", err)
	}
}

// takeAward checks an award and, when it can be run, records the job and
// starts it. Its error is the reason the ack gives.
func (pv *provider) takeAward(award market.Award, signer, from peer.ID) error {
	if signer != from {
		return errors.New("award not sent by its signer")
	}
	if err := market.CheckAward(award, signer, pv.self, time.Now()); err != nil {
		return err
	}
	capacity, ok := pv.p.Capacity()
	if !ok {
		return errors.New("no capacity to offer")
	}
	if err := pv.pay.verifyEscrow(award); err != nil {
		return err
	}
	key := auctionKey(award.JobID, award.Attempt)
	run, err := pv.register(award, capacity, from, key)
	if err != nil {
		return err
	}
	pv.spawn(func() {
		defer func() {
			pv.mu.Lock()
			delete(pv.running, key)
			pv.mu.Unlock()
			run.cancel()
		}()
		pv.execute(run.ctx, run.job)
	})
	return nil
}

// acceptedRun is a job the provider took: stored, queued, and bounded by
// its deadline.
type acceptedRun struct {
	job    *Job
	ctx    context.Context
	cancel context.CancelFunc
}

// register checks an award against the provider's load and, when it fits,
// records the job as accepted and queued; its error says why not.
func (pv *provider) register(award market.Award, capacity market.Capacity, from peer.ID, key string) (acceptedRun, error) {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if pv.isClosing() {
		return acceptedRun{}, errors.New("the provider is shutting down")
	}
	if _, dup := pv.running[key]; dup {
		return acceptedRun{}, errors.New("already running this job")
	}
	a := market.Announcement{JobID: award.JobID, Requester: award.Requester, Attempt: award.Attempt, Spec: award.Spec}
	if d := pv.strategy().ShouldBid(market.BidRequest{Announcement: a, Capacity: capacity, Load: pv.load}); !d.Bid {
		return acceptedRun{}, errors.New(d.Reason)
	}
	var addrs []string
	for _, ma := range pv.p.Host.Peerstore().Addrs(from) {
		addrs = append(addrs, ma.String())
	}
	if award.Escrow != nil {
		if ok, err := pv.store.claimVault(award.Escrow.Vault, award.JobID, award.Attempt); err != nil || !ok {
			return acceptedRun{}, errors.New("the escrow already pays for another job")
		}
	}
	now := time.Now().UTC()
	j := &Job{ID: award.JobID, Role: RoleProvider, State: market.StateAccepted, Attempt: award.Attempt, Spec: award.Spec,
		Requester: award.Requester, Provider: pv.self.String(), Price: award.Price, Deadline: award.Deadline,
		RequesterAddrs: addrs, CreatedAt: now, UpdatedAt: now, Events: []Event{{Time: now, State: market.StateAccepted}}}
	if award.Escrow != nil {
		j.Escrows = []EscrowRecord{{Attempt: award.Attempt, ProviderPeer: pv.self.String(), Terms: *award.Escrow, State: EscrowLocked, UpdatedAt: now}}
	}
	if err := pv.store.put(j); err != nil {
		return acceptedRun{}, fmt.Errorf("cannot record the job: %w", err)
	}
	pv.p.Metrics.JobMoved(RoleProvider, "", j.State, 0)
	ctx, cancel := context.WithDeadline(pv.ctx, award.Deadline)
	pv.running[key] = cancel
	pv.load.Queued++
	return acceptedRun{job: j, ctx: ctx, cancel: cancel}, nil
}

// handleCancel stops a job at its requester's request.
func (pv *provider) handleCancel(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	var c market.Cancel
	env, err := readEnvelope(bufReader(s), market.TypeCancel, &c)
	if err != nil {
		s.Reset()
		return
	}
	j, err := pv.store.get(RoleProvider, c.JobID, c.Attempt)
	if err != nil || j.Requester != env.Signer || c.Requester != env.Signer {
		return
	}
	pv.mu.Lock()
	stop := pv.running[auctionKey(c.JobID, c.Attempt)]
	pv.mu.Unlock()
	if stop != nil {
		pv.log.Info("job cancelled by its requester", "job", c.JobID, "reason", wire.Truncate(c.Reason, maxPeerReason))
		stop()
	}
}
