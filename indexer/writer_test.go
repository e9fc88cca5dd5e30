package indexer

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// hookStore is a real store whose writes can be made to fail, per kind,
// or to block until released (or until their context ends).
type hookStore struct {
	indexdb.Store

	mu      sync.Mutex
	fail    map[string]bool
	block   chan struct{} // non-nil: writes wait for it to close
	entered chan struct{} // a write started waiting
}

func newHookStore(t *testing.T) *hookStore {
	return &hookStore{Store: openStore(t), fail: map[string]bool{}, entered: make(chan struct{}, 1)}
}

var errDiskOnFire = errors.New("disk on fire")

func (h *hookStore) setFail(kind string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail[kind] = on
}

// blockWrites makes writes wait; the function returned releases them.
func (h *hookStore) blockWrites() (release func()) {
	ch := make(chan struct{})
	h.mu.Lock()
	h.block = ch
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		h.block = nil
		h.mu.Unlock()
		close(ch)
	}
}

func (h *hookStore) hook(ctx context.Context, kind string) error {
	h.mu.Lock()
	block, fail := h.block, h.fail[kind]
	h.mu.Unlock()
	if block != nil {
		select {
		case h.entered <- struct{}{}:
		default:
		}
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		return errDiskOnFire
	}
	return nil
}

func (h *hookStore) AddCapacity(ctx context.Context, recs []indexdb.Capacity) error {
	if err := h.hook(ctx, "capacity"); err != nil {
		return err
	}
	return h.Store.AddCapacity(ctx, recs)
}

func (h *hookStore) AddAnnouncements(ctx context.Context, anns []indexdb.Announcement) error {
	if err := h.hook(ctx, "announcements"); err != nil {
		return err
	}
	return h.Store.AddAnnouncements(ctx, anns)
}

func (h *hookStore) AddReceipts(ctx context.Context, rs []indexdb.Receipt) error {
	if err := h.hook(ctx, "receipts"); err != nil {
		return err
	}
	return h.Store.AddReceipts(ctx, rs)
}

func (h *hookStore) AddModels(ctx context.Context, ms []indexdb.Model) error {
	if err := h.hook(ctx, "models"); err != nil {
		return err
	}
	return h.Store.AddModels(ctx, ms)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startWriter starts only the service's writer, without a host.
func startWriter(t *testing.T, p Params) *Service {
	t.Helper()
	p.Logger = quiet()
	s := New(p)
	s.spawn(s.write)
	t.Cleanup(func() { s.Close() })
	return s
}

func stats(t *testing.T, st indexdb.Store) indexdb.Stats {
	t.Helper()
	n, err := st.Stats(bg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// announcementEvent is the queued row of a signed announcement of job.
func announcementEvent(t *testing.T, key crypto.PrivKey, id peer.ID, job string) event {
	t.Helper()
	now := time.Now()
	a, err := AnnouncementRow(seal(t, key, market.TypeAnnouncement, goodAnnouncement(t, id, job, now)), now)
	if err != nil {
		t.Fatal(err)
	}
	return event{announcement: &a}
}

// receiptEvent is the queued row of a countersigned receipt r.
func receiptEvent(t *testing.T, reqKey, provKey crypto.PrivKey, r market.Receipt) event {
	t.Helper()
	row, err := ReceiptRow(marshalReceipt(t, signReceipt(t, reqKey, provKey, r)), time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	return event{receipt: &row}
}

// TestEnqueueNeverBlocks attacks the queue's bound: with no writer
// draining it, a flood of events must return at once and count what the
// queue could not take as dropped.
func TestEnqueueNeverBlocks(t *testing.T) {
	s := New(Params{Store: openStore(t), QueueSize: 4, Logger: quiet()})
	defer s.Close()
	key, id := newKey(t)
	ev := announcementEvent(t, key, id, testJob)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			s.enqueue(ev)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("enqueue blocked on a full queue")
	}
	if got := s.Stats().Dropped.Load(); got != 996 {
		t.Errorf("Dropped = %d, want 996 (1000 events, a queue of 4)", got)
	}
}

// TestWriterNeverBlocksTopicReaders attacks the gossip path end to end: a
// running indexer (Start, on an in-memory network) whose store blocks
// must keep reading its topics, checking each message and dropping, and
// counting, what its full queue cannot take; once the store recovers,
// Close writes what was queued, each row once.
func TestWriterNeverBlocksTopicReaders(t *testing.T) {
	hosts := p2ptest.MockNet(t, 2, 0)
	st := newHookStore(t)
	release := st.blockWrites()
	defer func() {
		if release != nil {
			release()
		}
	}()
	const queue = 8
	s := New(Params{Host: hosts[0], Store: st, QueueSize: queue, BatchSize: 1, FlushEvery: 10 * time.Millisecond, Logger: quiet()})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	topic, err := hosts[1].Topic(wire.JobsTopic)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the publisher never saw the indexer on the jobs topic", func() bool {
		for _, p := range topic.ListPeers() {
			if p == hosts[0].ID() {
				return true
			}
		}
		return false
	})
	key, id := newKey(t)
	const n = 60
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := topic.Publish(ctx, []byte("not an announcement")); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		now := time.Now()
		if err := topic.Publish(ctx, seal(t, key, market.TypeAnnouncement, goodAnnouncement(t, id, jobID(i), now))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-st.entered:
	case <-ctx.Done():
		t.Fatal("the writer never tried to write")
	}
	// One row is in the blocked write, queue rows wait, the rest are
	// dropped: all n were read although nothing could be written.
	c := s.Stats()
	eventually(t, 10*time.Second, "the topic reader stopped reading while the store blocked", func() bool {
		return c.Dropped.Load() == n-queue-1 && c.Refused.Load() == 1
	})
	if got := c.Ingested.Load(); got != 0 {
		t.Fatalf("Ingested = %d while the store blocked", got)
	}

	release()
	release = nil
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := stats(t, st).Announcements; got != queue+1 {
		t.Errorf("store holds %d announcements, want %d (the write in flight and the queue)", got, queue+1)
	}
	if got := c.Ingested.Load(); got != queue+1 {
		t.Errorf("Ingested = %d, want %d", got, queue+1)
	}
}

// TestWriterKeepsRowsAcrossFailedWrites attacks the retry: a store that
// fails one kind of write while the others succeed loses nothing; once it
// recovers, the rows kept are written, and nothing is stored twice (the
// rows that had gone through are sent again, and skipped) nor counted
// twice.
func TestWriterKeepsRowsAcrossFailedWrites(t *testing.T) {
	st := newHookStore(t)
	st.setFail("receipts", true)
	s := startWriter(t, Params{Store: st, FlushEvery: 10 * time.Millisecond, BatchSize: 100})
	reqKey, req := newKey(t)
	provKey, prov := newKey(t)
	for i := range 3 {
		s.enqueue(announcementEvent(t, reqKey, req, jobID(i)))
	}
	for i := range 2 {
		s.enqueue(receiptEvent(t, reqKey, provKey, goodReceipt(req, prov, jobID(i), time.Now())))
	}
	c := s.Stats()
	eventually(t, 5*time.Second, "no write failed", func() bool { return c.Failures.Load() >= 1 })
	st.setFail("receipts", false)
	if n := stats(t, st); n.Announcements != 3 || n.Receipts != 0 {
		t.Fatalf("after the failed write: %+v, want 3 announcements and no receipt", n)
	}
	eventually(t, 10*time.Second, "the kept receipts were never written", func() bool { return stats(t, st).Receipts == 2 })
	if n := stats(t, st); n.Announcements != 3 {
		t.Errorf("store holds %d announcements, want 3", n.Announcements)
	}
	// The store holds the rows a moment before the writer counts them.
	eventually(t, 5*time.Second, "the written rows were not counted", func() bool { return c.Ingested.Load() >= 5 })
	if got := c.Ingested.Load(); got != 5 {
		t.Errorf("Ingested = %d, want 5", got)
	}
	if got := c.Dropped.Load(); got != 0 {
		t.Errorf("Dropped = %d, want 0", got)
	}
	for i := range 2 {
		j, err := st.Job(bg, jobID(i))
		if err != nil {
			t.Fatal(err)
		}
		if len(j.Announcements) != 1 || len(j.Receipts) != 1 || j.Outcome != market.OutcomeSucceeded {
			t.Errorf("job %d: %d announcements, %d receipts, outcome %q; want 1, 1, succeeded", i, len(j.Announcements), len(j.Receipts), j.Outcome)
		}
	}
	p, err := st.Provider(bg, prov.String())
	if err != nil {
		t.Fatal(err)
	}
	if p.Jobs != 2 || p.Succeeded != 2 {
		t.Errorf("provider counts %d jobs, %d succeeded; want 2 and 2", p.Jobs, p.Succeeded)
	}
}

// TestCloseWritesWhatIsQueued attacks shutdown: rows still queued (the
// next flush an hour away) must be written by Close.
func TestCloseWritesWhatIsQueued(t *testing.T) {
	st := openStore(t)
	s := startWriter(t, Params{Store: st, FlushEvery: time.Hour, BatchSize: 1000})
	key, id := newKey(t)
	for i := range 10 {
		s.enqueue(announcementEvent(t, key, id, jobID(i)))
	}
	if got := stats(t, st).Announcements; got != 0 {
		t.Fatalf("%d announcements written before the flush was due", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := stats(t, st).Announcements; got != 10 {
		t.Errorf("Close wrote %d of the 10 queued announcements", got)
	}
	if got := s.Stats().Ingested.Load(); got != 10 {
		t.Errorf("Ingested = %d, want 10", got)
	}
}

// TestWriterPoisonRow attacks the batch: one row that the store refuses
// (ErrBadRecord) as part of a batch must not hold back the good rows
// queued with it, or after it.
func TestWriterPoisonRow(t *testing.T) {
	st := newHookStore(t)
	s := startWriter(t, Params{Store: st, FlushEvery: 10 * time.Millisecond, BatchSize: 100})
	reqKey, req := newKey(t)
	provKey, prov := newKey(t)
	// The row functions refuse such a row now; one that got through
	// anyway (a store with stricter bounds) is dropped at the write.
	poison := receiptEvent(t, reqKey, provKey, goodReceipt(req, prov, jobID(1), time.Now()))
	poison.receipt.Price = math.MaxInt64 + 1
	s.enqueue(poison)
	s.enqueue(receiptEvent(t, reqKey, provKey, goodReceipt(req, prov, jobID(2), time.Now())))
	c := s.Stats()
	eventually(t, 5*time.Second, "no write was tried", func() bool { return c.Failures.Load() >= 1 || c.Ingested.Load() > 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := stats(t, st).Receipts; got != 1 {
		t.Errorf("store holds %d receipts; want the good one", got)
	}
}
