package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/reputation"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Engine runs both sides of the market for one node. It wires together
// four parts, each with its own state and lock: the requester side
// (auctions, awards, results), the provider side (announcements, bids,
// the queue and the runs), the escrow flow with the arbiter protocol, and
// the receiver of streamed logs. They share a core: the host, the job
// store and the goroutines the engine owns.
type Engine struct {
	c    *core
	req  *requester
	prov *provider
	pay  *settler
	logs *logReceiver
	rcpt *receipts
}

// core is what every part of the engine shares.
type core struct {
	p      Params
	cfg    Config
	log    *slog.Logger
	self   peer.ID
	store  *store
	topic  *pubsub.Topic // the jobs topic, joined by Start
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	locks  [64]sync.Mutex // requester jobs, by hash of the ID

	// rep scores providers from the receipts this node has seen.
	rep *reputation.Book

	// afterUpdate sees each requester job once an update is stored.
	afterUpdate func(*Job)
	// wakeups wake a replicated job (by ID) when one of its replicas
	// changes, so that it need not wait for its next look.
	wakeups sync.Map // string -> chan struct{}

	mu      sync.Mutex
	closing bool // Close has begun: no new work
}

// New builds the engine; Start begins its work.
func New(p Params) (*Engine, error) {
	st, err := openStore(p.DB)
	if err != nil {
		return nil, err
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Notify == nil {
		p.Notify = func(string, any) {}
	}
	if p.Metrics == nil {
		p.Metrics = noMetrics{}
	}
	if p.Config.MaxLogBytes <= 0 {
		p.Config.MaxLogBytes = DefaultConfig().MaxLogBytes
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &core{p: p, cfg: p.Config, log: p.Logger, self: p.Host.ID(), store: st, ctx: ctx, cancel: cancel, rep: newBook(p)}
	pay := newSettler(c)
	return &Engine{
		c:    c,
		req:  newRequester(c, pay),
		prov: newProvider(c, pay),
		pay:  pay,
		logs: newLogReceiver(c),
		rcpt: newReceipts(c),
	}, nil
}

// Start joins the jobs topic, installs the stream handlers and resumes
// the jobs left unfinished by an earlier run.
func (e *Engine) Start() error {
	c := e.c
	if err := c.p.Host.PubSub.RegisterTopicValidator(wire.JobsTopic, e.prov.validateAnnouncement); err != nil {
		return fmt.Errorf("jobs topic validator: %w", err)
	}
	topic, err := c.p.Host.Topic(wire.JobsTopic)
	if err != nil {
		return err
	}
	c.topic = topic
	sub, err := topic.Subscribe(pubsub.WithBufferSize(1024))
	if err != nil {
		return fmt.Errorf("subscribe to jobs topic: %w", err)
	}
	h := c.p.Host
	h.SetStreamHandler(wire.BidProtocol, c.handler(e.req.handleBid))
	h.SetStreamHandler(wire.ResultProtocol, c.handler(e.req.handleResult))
	h.SetStreamHandler(wire.LogProtocol, c.handler(e.logs.handleLogs))
	if e.prov.isProvider() {
		h.SetStreamHandler(wire.AwardProtocol, c.handler(e.prov.handleAward))
		h.SetStreamHandler(wire.CancelProtocol, c.handler(e.prov.handleCancel))
	}
	e.prov.start(sub)
	if err := e.rcpt.start(); err != nil {
		return err
	}
	if c.p.Settlement != nil {
		// Arbiters answer requests; every node takes dispute awards.
		h.SetStreamHandler(wire.ArbiterProtocol, c.handler(e.pay.handleArbiter))
		c.spawn(e.pay.settleLoop)
	}
	return e.resume()
}

// Close stops every loop and running job and waits for them.
func (e *Engine) Close() error {
	c := e.c
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	h := c.p.Host
	for _, p := range []protocol.ID{wire.BidProtocol, wire.ResultProtocol, wire.LogProtocol, wire.AwardProtocol, wire.CancelProtocol, wire.ArbiterProtocol} {
		h.RemoveStreamHandler(p)
	}
	e.rcpt.stop()
	c.cancel()
	e.prov.stop()
	c.wg.Wait()
	c.p.Host.PubSub.UnregisterTopicValidator(wire.JobsTopic)
	return nil
}

// resume restarts the loops of unfinished jobs and clears the job folders
// a crash left behind.
func (e *Engine) resume() error {
	if err := os.RemoveAll(filepath.Join(e.c.p.WorkDir, "run")); err != nil {
		e.c.log.Warn("clear old job folders", "error", err)
	}
	reqs, err := e.c.store.list(RoleRequester)
	if err != nil {
		return err
	}
	e.req.resume(reqs)
	provs, err := e.c.store.list(RoleProvider)
	if err != nil {
		return err
	}
	e.prov.resume(provs)
	return nil
}

// Submit validates a job spec, stores the job and starts its auction.
func (e *Engine) Submit(spec market.Spec) (*Job, error) { return e.req.Submit(spec) }

// Get returns a job this node requested.
func (e *Engine) Get(id string) (*Job, error) { return e.c.Get(id) }

// List returns the jobs this node requested.
func (e *Engine) List() ([]*Job, error) { return e.c.List() }

// Replicas returns the replicas of a replicated job, in order.
func (e *Engine) Replicas(j *Job) ([]*Job, error) { return e.c.Replicas(j) }

// Provided returns the jobs this node ran as a provider.
func (e *Engine) Provided() ([]*Job, error) { return e.c.Provided() }

// Cancel stops a job this node requested.
func (e *Engine) Cancel(id string) (*Job, error) { return e.req.Cancel(id) }

// HoldLog pins a finished job's log, so that it survives garbage collection.
func (e *Engine) HoldLog(ctx context.Context, j *Job) error { return e.req.HoldLog(ctx, j) }

// LogPath is where the requester keeps a job's streamed output.
func (e *Engine) LogPath(id string) string { return e.c.LogPath(id) }

// Dispute opens a dispute over a job's escrow with its arbiter.
func (e *Engine) Dispute(ctx context.Context, id, reason string) (*Job, error) {
	return e.pay.Dispute(ctx, id, reason)
}

// Disputes lists the disputes this node holds as an arbiter.
func (e *Engine) Disputes() ([]Dispute, error) { return e.pay.Disputes() }

// Resolve decides a dispute this node holds as an arbiter.
func (e *Engine) Resolve(ctx context.Context, escrowID, winner string) (Dispute, error) {
	return e.pay.Resolve(ctx, escrowID, winner)
}

// spawn runs f as a goroutine the engine owns; once the engine is
// closing it does nothing.
func (c *core) spawn(f func()) {
	if !c.enter() {
		return
	}
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// enter registers work with the engine's wait group unless it is closing.
// Stream handlers call it so that Close waits for them too.
func (c *core) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.wg.Add(1)
	return true
}

// isClosing reports whether Close has begun.
func (c *core) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// handler wraps a stream handler so that it is refused once the engine is
// closing and waited for by Close.
func (c *core) handler(h network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		if !c.enter() {
			s.Reset()
			return
		}
		defer c.wg.Done()
		h(s)
	}
}

func (c *core) notify(j *Job, detail string) {
	c.p.Notify(j.ID, Event{Time: time.Now().UTC(), State: j.State, Detail: detail})
}

// jobLock serializes updates of one requester job. Jobs share a fixed set
// of locks by hash, so that no peer can make the set grow.
func (c *core) jobLock(id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &c.locks[h.Sum32()%uint32(len(c.locks))]
}

// update loads a requester job, applies fn and stores it.
func (c *core) update(id string, fn func(*Job) error) (*Job, error) {
	return c.updateWith(id, nil, fn)
}

// updateWith is update that also stores the new requester jobs also, in
// the same transaction as the job.
func (c *core) updateWith(id string, also []*Job, fn func(*Job) error) (*Job, error) {
	l := c.jobLock(id)
	l.Lock()
	defer l.Unlock()
	j, err := c.store.get(RoleRequester, id, 0)
	if err != nil {
		return nil, err
	}
	from, escrows := j.State, escrowStates(j)
	if err := fn(j); err != nil {
		return j, err
	}
	if err := c.store.putAll(append(slices.Clone(also), j)); err != nil {
		return j, err
	}
	c.moved(j, from)
	c.escrowsMoved(j, escrows)
	if j.Parent != "" && j.State != from {
		if ch, ok := c.wakeups.Load(j.Parent); ok {
			select {
			case ch.(chan struct{}) <- struct{}{}:
			default: // a wakeup is pending already
			}
		}
	}
	if c.afterUpdate != nil {
		c.afterUpdate(j)
	}
	return j, nil
}

func (c *core) logDir() string { return filepath.Join(c.p.WorkDir, "logs") }

// LogPath is where the requester keeps a job's streamed output.
func (c *core) LogPath(id string) string { return filepath.Join(c.logDir(), id+".log") }

// newStream opens a stream with a deadline covering the whole exchange.
func (c *core) newStream(ctx context.Context, p peer.ID, proto protocol.ID, timeout time.Duration) (network.Stream, *bufio.Reader, *bufio.Writer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := c.p.Host.NewStream(network.WithAllowLimitedConn(ctx, "market"), p, proto)
	if err != nil {
		return nil, nil, nil, err
	}
	s.SetDeadline(time.Now().Add(timeout))
	return s, bufio.NewReader(s), bufio.NewWriter(s), nil
}

func ensureDir(dir string) error { return os.MkdirAll(dir, 0o700) }

var errNoProvider = errors.New("no provider took the job")

// maxAuctions bounds the auctions a requester runs at once.
const maxAuctions = 16

// Get returns a job this node requested.
func (c *core) Get(id string) (*Job, error) { return c.store.get(RoleRequester, id, 0) }

// List returns the jobs this node requested, newest first, less the
// replicas of replicated jobs (Replicas lists those).
func (c *core) List() ([]*Job, error) {
	all, err := c.store.list(RoleRequester)
	return slices.DeleteFunc(all, func(j *Job) bool { return j.Parent != "" }), err
}

// Provided returns the jobs this node ran or runs for others.
func (c *core) Provided() ([]*Job, error) { return c.store.list(RoleProvider) }
