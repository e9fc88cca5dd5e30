package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	bolt "go.etcd.io/bbolt"
)

// Config holds the timeouts and limits of the market.
type Config struct {
	// BidWindow is the longest an auction stays open.
	BidWindow time.Duration
	// BidGrace closes an auction this long after its first bid.
	BidGrace time.Duration
	// EnoughBids closes an auction at once when reached.
	EnoughBids int
	// AckTimeout bounds the wait for a provider's ack.
	AckTimeout time.Duration
	// InputTimeout bounds a provider's fetch of a job's inputs.
	InputTimeout time.Duration
	// ResultMargin is added to a job's wall limit for its result deadline.
	ResultMargin time.Duration
	// MaxFailures bounds the providers that may fail one job (no ack, no
	// result, a fault of their own) before the job fails.
	MaxFailures int
	// BidTimeout bounds how long a job may wait for a provider that takes
	// it; auctions without bids are repeated until then.
	BidTimeout time.Duration
	// ProviderLost is how long a running job's provider may stay
	// unreachable before the job goes to a new auction.
	ProviderLost time.Duration
	// MaxConcurrent bounds the jobs a provider runs at once, besides the
	// sum of their memory, which must fit its offer; it queues up to four
	// times as many more.
	MaxConcurrent int
	// Allow and Deny filter requesters by peer ID (provider side).
	Allow, Deny []string
	// MaxLogBytes bounds the output kept of one job, on each side.
	MaxLogBytes int64
}

// DefaultConfig returns the market's defaults.
func DefaultConfig() Config {
	return Config{
		BidWindow:     500 * time.Millisecond,
		BidGrace:      5 * time.Millisecond,
		EnoughBids:    3,
		AckTimeout:    5 * time.Second,
		InputTimeout:  60 * time.Second,
		ResultMargin:  30 * time.Second,
		MaxFailures:   5,
		BidTimeout:    10 * time.Minute,
		ProviderLost:  10 * time.Second,
		MaxConcurrent: 4,
		MaxLogBytes:   16 << 20,
	}
}

// Params are the inputs of New.
type Params struct {
	Host    *p2p.Host
	Key     crypto.PrivKey
	Content *content.Store
	DB      *bolt.DB
	// WorkDir holds the provider's job folders and the requester's logs.
	WorkDir string
	// Executors run jobs by kind; none makes the node a requester only.
	Executors map[string]compute.Executor
	// Capacity returns the provider's current offer.
	Capacity func() (market.Capacity, bool)
	Config   Config
	// Notify receives job events (Event and LogLine) for subscribers.
	Notify func(jobID string, ev any)
	// CheckInputs checks, once the requester holds a job's inputs, what
	// the job needs of them (a train job's memory with its dataset
	// measured); an error fails the job before any auction. nil: none.
	CheckInputs func(ctx context.Context, spec market.Spec) error
	// Settlement pays priced jobs through escrows on a ledger; nil: no
	// payments are settled.
	Settlement *Settlement
	Logger     *slog.Logger
}

// LogLine is a piece of a job's output, streamed as it is written.
type LogLine struct {
	JobID   string `json:"job_id"`
	Attempt int    `json:"attempt"`
	Stream  string `json:"stream"`
	Data    string `json:"data"`
}

// Engine runs both sides of the market for one node.
type Engine struct {
	p      Params
	cfg    Config
	log    *slog.Logger
	self   peer.ID
	store  *store
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu           sync.Mutex
	closing      bool                          // Close has begun: no new work
	auctions     map[string]chan candidate     // requester: jobID/attempt -> bids
	results      map[string]chan struct{}      // requester: jobID -> result arrived
	waiting      map[string]context.CancelFunc // requester: running job loops
	running      map[string]context.CancelFunc // provider: jobID/attempt -> stop
	seen         map[string]time.Time          // provider: announcements seen
	locks        [64]sync.Mutex                // requester jobs, by hash of the ID
	arbiterAddr  string                        // the arbiter's ledger account, once known
	settleKick   chan struct{}                 // wakes the settlement loop
	lockingJobs  map[string]int                // requester jobs with a lock in flight
	escrowJobs   map[string]bool               // requester jobs with an escrow to settle
	load         market.Load
	modules      moduleCache                // provider: bytes of recently run modules
	admit        *admission                 // provider: which queued jobs may run
	auctionSlots chan struct{}              // requester: auctions open at once
	tally        map[string]market.Outcomes // requester: outcomes by provider
	reqLogs      map[string]*requesterLog   // requester: the log of each job with a stream open
}

type candidate struct {
	bid    market.Bid
	signer peer.ID
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
	if p.Config.MaxLogBytes <= 0 {
		p.Config.MaxLogBytes = DefaultConfig().MaxLogBytes
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{p: p, cfg: p.Config, log: p.Logger, self: p.Host.ID(), store: st, ctx: ctx, cancel: cancel,
		auctions: map[string]chan candidate{}, results: map[string]chan struct{}{}, waiting: map[string]context.CancelFunc{},
		running: map[string]context.CancelFunc{}, seen: map[string]time.Time{},
		tally: map[string]market.Outcomes{}, reqLogs: map[string]*requesterLog{},
		auctionSlots: make(chan struct{}, maxAuctions), settleKick: make(chan struct{}, 1), lockingJobs: map[string]int{}, escrowJobs: map[string]bool{}}
	e.admit = newAdmission(p.Config.MaxConcurrent, e.offeredMemory)
	return e, nil
}

// offeredMemory is the memory in MiB the provider's capacity offers now.
func (e *Engine) offeredMemory() int64 {
	if e.p.Capacity == nil {
		return 0
	}
	c, _ := e.p.Capacity()
	return c.MemoryMiB
}

// Start joins the jobs topic, installs the stream handlers and resumes
// the jobs left unfinished by an earlier run.
func (e *Engine) Start() error {
	if err := e.p.Host.PubSub.RegisterTopicValidator(wire.JobsTopic, e.validateAnnouncement); err != nil {
		return fmt.Errorf("jobs topic validator: %w", err)
	}
	topic, err := e.p.Host.PubSub.Join(wire.JobsTopic)
	if err != nil {
		return fmt.Errorf("join jobs topic: %w", err)
	}
	e.topic = topic
	sub, err := topic.Subscribe(pubsub.WithBufferSize(1024))
	if err != nil {
		return fmt.Errorf("subscribe to jobs topic: %w", err)
	}
	e.sub = sub
	h := e.p.Host
	h.SetStreamHandler(wire.BidProtocol, e.handler(e.handleBid))
	h.SetStreamHandler(wire.ResultProtocol, e.handler(e.handleResult))
	h.SetStreamHandler(wire.LogProtocol, e.handler(e.handleLogs))
	if e.isProvider() {
		h.SetStreamHandler(wire.AwardProtocol, e.handler(e.handleAward))
		h.SetStreamHandler(wire.CancelProtocol, e.handler(e.handleCancel))
	}
	e.wg.Add(1)
	go e.readAnnouncements()
	e.wg.Add(1)
	go e.sweepSeen()
	if e.p.Settlement != nil {
		// Arbiters answer requests; every node takes dispute awards.
		h.SetStreamHandler(wire.ArbiterProtocol, e.handler(e.handleArbiter))
		e.spawn(e.settleLoop)
	}
	return e.resume()
}

// Close stops every loop and running job and waits for them.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	h := e.p.Host
	for _, p := range []protocol.ID{wire.BidProtocol, wire.ResultProtocol, wire.LogProtocol, wire.AwardProtocol, wire.CancelProtocol, wire.ArbiterProtocol} {
		h.RemoveStreamHandler(p)
	}
	e.cancel()
	if e.sub != nil {
		e.sub.Cancel()
	}
	e.wg.Wait()
	var err error
	if e.topic != nil {
		err = e.topic.Close()
	}
	e.p.Host.PubSub.UnregisterTopicValidator(wire.JobsTopic)
	return err
}

func (e *Engine) isProvider() bool { return len(e.p.Executors) > 0 && e.p.Capacity != nil }

// spawn runs f as a goroutine the engine owns; once the engine is
// closing it does nothing.
func (e *Engine) spawn(f func()) {
	if !e.enter() {
		return
	}
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// enter registers work with the engine's wait group unless it is closing.
// Stream handlers call it so that Close waits for them too.
func (e *Engine) enter() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	e.wg.Add(1)
	return true
}

// handler wraps a stream handler so that it is refused once the engine is
// closing and waited for by Close.
func (e *Engine) handler(h network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		if !e.enter() {
			s.Reset()
			return
		}
		defer e.wg.Done()
		h(s)
	}
}

func (e *Engine) notify(j *Job, detail string) {
	e.p.Notify(j.ID, Event{Time: time.Now().UTC(), State: j.State, Detail: detail})
}

// resume restarts the loops of unfinished jobs and clears the job folders
// a crash left behind.
func (e *Engine) resume() error {
	if err := os.RemoveAll(filepath.Join(e.p.WorkDir, "run")); err != nil {
		e.log.Warn("clear old job folders", "error", err)
	}
	reqs, err := e.store.list(RoleRequester)
	if err != nil {
		return err
	}
	e.mu.Lock()
	for _, j := range reqs {
		for _, p := range j.Excluded {
			o := e.tally[p]
			o.Failed++
			e.tally[p] = o
		}
		if j.State == market.StateSucceeded {
			o := e.tally[j.Provider]
			o.Succeeded++
			e.tally[j.Provider] = o
		}
	}
	e.mu.Unlock()
	for _, j := range reqs {
		if !j.State.Final() {
			e.log.Info("resuming job", "job", j.ID, "state", j.State)
			e.startRequester(j.ID)
		}
	}
	provs, err := e.store.list(RoleProvider)
	if err != nil {
		return err
	}
	for _, j := range provs {
		if j.State.Final() {
			continue
		}
		j := j
		e.spawn(func() { e.recoverProvided(j) })
	}
	return nil
}

// jobLock serializes updates of one requester job. Jobs share a fixed set
// of locks by hash, so that no peer can make the set grow.
func (e *Engine) jobLock(id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &e.locks[h.Sum32()%uint32(len(e.locks))]
}

// update loads a requester job, applies fn and stores it.
func (e *Engine) update(id string, fn func(*Job) error) (*Job, error) {
	l := e.jobLock(id)
	l.Lock()
	defer l.Unlock()
	j, err := e.store.get(RoleRequester, id, 0)
	if err != nil {
		return nil, err
	}
	if err := fn(j); err != nil {
		return j, err
	}
	return j, e.store.put(j)
}

func (e *Engine) logDir() string { return filepath.Join(e.p.WorkDir, "logs") }

// LogPath is where the requester keeps a job's streamed output.
func (e *Engine) LogPath(id string) string { return filepath.Join(e.logDir(), id+".log") }

// newStream opens a stream with a deadline covering the whole exchange.
func (e *Engine) newStream(ctx context.Context, p peer.ID, proto protocol.ID, timeout time.Duration) (network.Stream, *bufio.Reader, *bufio.Writer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := e.p.Host.NewStream(network.WithAllowLimitedConn(ctx, "market"), p, proto)
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
