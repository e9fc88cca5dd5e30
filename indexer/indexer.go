// Package indexer is the indexer role: it keeps the swarm's history in an
// indexdb.Store and serves it. It ingests what the swarm says in public
// (providers' capacity records from the DHT, job announcements, signed
// receipts and model records from gossipsub), checks each message in
// full before it keeps it, writes in batches off the gossip path (a slow
// database drops events, counted, and never holds up the swarm), checks
// paid receipts' escrows on the ledger, and answers the explorer's
// queries over a public, read-only HTTP JSON API.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/settlement"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// Params are the inputs of New.
type Params struct {
	Host  *p2p.Host
	Store indexdb.Store
	// Capacity lists the capacity records (signed DHT values) of the
	// providers the DHT knows; nil records none.
	Capacity func(ctx context.Context) ([][]byte, error)
	// CapacityEvery is how often Capacity is called (default 1 min).
	CapacityEvery time.Duration
	// Escrow, when set, reads the ledger: the escrows that paid receipts
	// name are checked there.
	Escrow settlement.Escrow
	// FlushEvery and BatchSize pace the writes (defaults 200 ms and 256).
	FlushEvery time.Duration
	BatchSize  int
	// QueueSize bounds the events waiting to be written (default 8192);
	// past it new events are dropped and counted.
	QueueSize int
	Logger    *slog.Logger
}

// Service is a running indexer. Close stops it; the store is the
// caller's to close.
type Service struct {
	p      Params
	log    *slog.Logger
	queue  chan event
	subs   []*pubsub.Subscription
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stats Counters
	// publishers bounds the new model records one publisher may add;
	// seenModels (read by the models topic's reader only) are the records
	// taken already, which republication sends again.
	publishers *rateLimiter
	seenModels map[string]bool

	closeOnce sync.Once
}

// Counters count what the indexer took, refused and dropped.
type Counters struct {
	Ingested atomic.Int64 // rows written
	Refused  atomic.Int64 // messages that failed their checks
	Dropped  atomic.Int64 // events dropped on a full queue or a failing store
	Failures atomic.Int64 // failed store writes
}

// event is one row waiting to be written; exactly one field is set.
type event struct {
	capacity     *indexdb.Capacity
	announcement *indexdb.Announcement
	receipt      *indexdb.Receipt
	model        *indexdb.Model
}

// New builds the service; Start begins its work.
func New(p Params) *Service {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.CapacityEvery <= 0 {
		p.CapacityEvery = time.Minute
	}
	if p.FlushEvery <= 0 {
		p.FlushEvery = 200 * time.Millisecond
	}
	if p.BatchSize <= 0 {
		p.BatchSize = 256
	}
	if p.QueueSize <= 0 {
		p.QueueSize = 8192
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{p: p, log: p.Logger, queue: make(chan event, p.QueueSize), ctx: ctx, cancel: cancel,
		publishers: newRateLimiter(modelsPerSecond, modelBurst), seenModels: map[string]bool{}}
}

// Stats returns the service's counters.
func (s *Service) Stats() *Counters { return &s.stats }

// Store is the service's database.
func (s *Service) Store() indexdb.Store { return s.p.Store }

// Start subscribes to the jobs, receipts and models topics and starts the
// writer, the capacity poller and the escrow checker.
func (s *Service) Start() error {
	topics := []struct {
		name string
		row  func([]byte, time.Time) (event, error)
	}{
		{wire.JobsTopic, func(d []byte, now time.Time) (event, error) {
			a, err := AnnouncementRow(d, now)
			return event{announcement: &a}, err
		}},
		{wire.ReceiptsTopic, func(d []byte, now time.Time) (event, error) {
			r, err := ReceiptRow(d, now, true)
			return event{receipt: &r}, err
		}},
		{wire.ModelsTopic, func(d []byte, now time.Time) (event, error) {
			m, err := ModelRow(d, now)
			return event{model: &m}, err
		}},
	}
	for _, t := range topics {
		topic, err := s.p.Host.Topic(t.name)
		if err != nil {
			s.Close()
			return err
		}
		sub, err := topic.Subscribe(pubsub.WithBufferSize(1024))
		if err != nil {
			s.Close()
			return fmt.Errorf("subscribe to %s: %w", t.name, err)
		}
		s.subs = append(s.subs, sub)
		s.spawn(func() { s.read(sub, t.row) })
	}
	s.spawn(s.write)
	if s.p.Capacity != nil {
		s.spawn(s.pollCapacity)
	}
	if s.p.Escrow != nil {
		s.spawn(s.checkEscrows)
	}
	return nil
}

// Close stops the subscriptions and loops and writes what is queued.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		for _, sub := range s.subs {
			sub.Cancel()
		}
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

func (s *Service) spawn(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// read takes one topic's messages, checks each and queues its row.
func (s *Service) read(sub *pubsub.Subscription, row func([]byte, time.Time) (event, error)) {
	for {
		m, err := sub.Next(s.ctx)
		if err != nil {
			return
		}
		now := time.Now()
		ev, err := row(m.Data, now)
		if err != nil {
			s.stats.Refused.Add(1)
			s.log.Debug("message refused", "topic", sub.Topic(), "from", m.ReceivedFrom, "error", err)
			continue
		}
		if ev.model != nil && !s.newModel(*ev.model, now) {
			continue
		}
		s.enqueue(ev)
	}
}

// enqueue queues an event without ever blocking the caller.
func (s *Service) enqueue(ev event) {
	select {
	case s.queue <- ev:
	default:
		s.stats.Dropped.Add(1)
	}
}

// write takes queued events and writes them in batches, one transaction
// a kind, every FlushEvery or once BatchSize are waiting. A failed write
// is retried with backoff while new events wait (and past the queue's
// bound are dropped); at Close, what is queued is written once more.
func (s *Service) write() {
	tick := time.NewTicker(s.p.FlushEvery)
	defer tick.Stop()
	var b batch
	backoff := time.Duration(0)
	for {
		// While a failed write waits to be retried, the batch takes no
		// more than a queue's worth: past it the queue fills, and new
		// events are dropped and counted.
		in := s.queue
		if backoff > 0 && b.len() >= s.p.QueueSize {
			in = nil
		}
		select {
		case ev := <-in:
			b.add(ev)
			if b.len() < s.p.BatchSize {
				continue
			}
		case <-tick.C:
		case <-s.ctx.Done():
			for drained := false; !drained; {
				select {
				case ev := <-s.queue:
					b.add(ev)
				default:
					drained = true
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s.flush(ctx, &b)
			cancel()
			return
		}
		if b.len() == 0 || backoff > 0 && time.Since(b.failedAt) < backoff {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		ok := s.flush(ctx, &b)
		cancel()
		switch {
		case ok:
			backoff = 0
		case backoff == 0:
			backoff = time.Second
		default:
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

// A publisher's model records: a burst of modelBurst, then one a minute.
// An honest node republishes the same records every 10 minutes, which
// the store keeps once.
const (
	modelsPerSecond = 1.0 / 60
	modelBurst      = 100
)

// maxSeenModels bounds seenModels; past it the set starts again (the
// store skips what it holds already).
const maxSeenModels = 1 << 16

// newModel reports whether a model record is to be written: one not taken
// already, within its publisher's share. Any key can sign valid records,
// so that a publisher flooding the topic fills no more than its share.
func (s *Service) newModel(m indexdb.Model, now time.Time) bool {
	if s.seenModels[m.ID] {
		return false
	}
	if _, ok := s.publishers.allow(m.Publisher, now); !ok {
		s.stats.Dropped.Add(1)
		return false
	}
	if len(s.seenModels) >= maxSeenModels {
		clear(s.seenModels)
	}
	s.seenModels[m.ID] = true
	return true
}

// maxPending bounds the rows a failing store may hold in memory.
const maxPending = 1 << 16

// flush writes the batch; it returns false, keeping the rows, when the
// store failed.
func (s *Service) flush(ctx context.Context, b *batch) bool {
	n := b.len()
	if n == 0 {
		return true
	}
	st := s.p.Store
	err := errors.Join(
		nonEmpty(len(b.capacity), func() error { return st.AddCapacity(ctx, b.capacity) }),
		nonEmpty(len(b.announcements), func() error { return st.AddAnnouncements(ctx, b.announcements) }),
		nonEmpty(len(b.receipts), func() error { return st.AddReceipts(ctx, b.receipts) }),
		nonEmpty(len(b.models), func() error { return st.AddModels(ctx, b.models) }),
	)
	if errors.Is(err, indexdb.ErrBadRecord) {
		// A row the store cannot hold must not hold up the others: drop
		// the bad rows (every row was checked when it came, so this is a
		// defence only) and write the rest now.
		if dropped := b.dropBad(); dropped > 0 {
			s.stats.Dropped.Add(int64(dropped))
			return s.flush(ctx, b)
		}
	}
	if err != nil {
		s.stats.Failures.Add(1)
		b.failedAt = time.Now()
		s.log.Warn("index write failed", "rows", n, "error", err)
		if n > maxPending {
			s.stats.Dropped.Add(int64(n))
			*b = batch{}
		}
		return false
	}
	s.stats.Ingested.Add(int64(n))
	*b = batch{}
	return true
}

func nonEmpty(n int, f func() error) error {
	if n == 0 {
		return nil
	}
	return f()
}

// batch gathers rows by kind. Writes are idempotent, so a batch retried
// after a partial failure writes nothing twice.
type batch struct {
	capacity      []indexdb.Capacity
	announcements []indexdb.Announcement
	receipts      []indexdb.Receipt
	models        []indexdb.Model
	failedAt      time.Time
}

func (b *batch) add(ev event) {
	switch {
	case ev.capacity != nil:
		b.capacity = append(b.capacity, *ev.capacity)
	case ev.announcement != nil:
		b.announcements = append(b.announcements, *ev.announcement)
	case ev.receipt != nil:
		b.receipts = append(b.receipts, *ev.receipt)
	case ev.model != nil:
		b.models = append(b.models, *ev.model)
	}
}

// dropBad removes the rows that fail their store check and returns how
// many.
func (b *batch) dropBad() int {
	n := b.len()
	b.capacity = keepGood(b.capacity, indexdb.Capacity.Check)
	b.announcements = keepGood(b.announcements, indexdb.Announcement.Check)
	b.receipts = keepGood(b.receipts, indexdb.Receipt.Check)
	b.models = keepGood(b.models, indexdb.Model.Check)
	return n - b.len()
}

func keepGood[T any](rows []T, check func(T) error) []T {
	return slices.DeleteFunc(rows, func(r T) bool { return check(r) != nil })
}

func (b *batch) len() int {
	return len(b.capacity) + len(b.announcements) + len(b.receipts) + len(b.models)
}

// pollCapacity lists the providers' capacity records every
// CapacityEvery and queues those not seen yet.
func (s *Service) pollCapacity() {
	seen := map[string]uint64{} // peer → highest seq queued
	tick := time.NewTicker(s.p.CapacityEvery)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(s.ctx, s.p.CapacityEvery)
		values, err := s.p.Capacity(ctx)
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.log.Debug("list capacity records", "error", err)
		}
		now := time.Now()
		for _, v := range values {
			c, err := CapacityRow(v, now)
			if err != nil {
				s.stats.Refused.Add(1)
				continue
			}
			if seq, ok := seen[c.Peer]; ok && seq >= c.Seq {
				continue
			}
			seen[c.Peer] = c.Seq
			s.enqueue(event{capacity: &c})
		}
		if len(seen) > 1<<20 {
			clear(seen) // re-queued rows are skipped by the store
		}
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
	}
}
