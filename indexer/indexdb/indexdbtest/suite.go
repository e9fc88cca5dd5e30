// Package indexdbtest is the conformance suite of indexdb.Store: the
// SQLite and the PostgreSQL database both pass it. It checks what the
// explorer relies on (round trips, summaries, uptime and success rates,
// series) and attacks the bounds: re-ingest, forged cursors, limits, search
// text meant as SQL, pagination while rows arrive, restarts.
package indexdbtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

// Open returns a fresh, empty database for one test.
type Open func(t *testing.T) indexdb.Store

// Reopen closes s and opens the same database again.
type Reopen func(t *testing.T, s indexdb.Store) indexdb.Store

// Run runs the suite.
func Run(t *testing.T, open Open, reopen Reopen) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, open(t)) })
	t.Run("Idempotent", func(t *testing.T) { testIdempotent(t, open(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, open(t)) })
	t.Run("BadRecords", func(t *testing.T) { testBadRecords(t, open(t)) })
	t.Run("Limits", func(t *testing.T) { testLimits(t, open(t)) })
	t.Run("ForgedCursors", func(t *testing.T) { testForgedCursors(t, open(t)) })
	t.Run("PaginationWhileAdding", func(t *testing.T) { testPagination(t, open(t)) })
	t.Run("Search", func(t *testing.T) { testSearch(t, open(t)) })
	t.Run("Filters", func(t *testing.T) { testFilters(t, open(t)) })
	t.Run("OversizedBatch", func(t *testing.T) { testOversized(t, open(t)) })
	t.Run("Restart", func(t *testing.T) { testRestart(t, open(t), reopen) })
	t.Run("UptimeAndSuccessRate", func(t *testing.T) { testUptime(t, open(t)) })
	t.Run("LatestReceiptAndEscrow", func(t *testing.T) { testEscrow(t, open(t)) })
	t.Run("CountedOnce", func(t *testing.T) { testCountedOnce(t, open(t)) })
	t.Run("Series", func(t *testing.T) { testSeries(t, open(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrent(t, open(t)) })
}

var ctx = context.Background()

func testRoundTrip(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	c := Capacity("peerA", 1, now.Add(-time.Minute), now.Add(time.Hour), now, 7)
	a := Announcement("job1", 1, "reqA", now)
	r := Receipt("job1", 1, "reqA", "peerA", "succeeded", "none", now)
	r.EscrowTx = "tx1"
	m := Model("pubA", "mnist", "a perceptron", now)
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{c}))
	must(t, s.AddAnnouncements(ctx, []indexdb.Announcement{a}))
	must(t, s.AddReceipts(ctx, []indexdb.Receipt{r}))
	must(t, s.AddModels(ctx, []indexdb.Model{m}))

	p, err := s.Provider(ctx, "peerA")
	must(t, err)
	latest := c
	latest.Record = nil
	same(t, "latest record", p.Latest, latest)
	same(t, "history", p.History, []indexdb.Capacity{latest})
	same(t, "provider receipts", p.Receipts, []indexdb.Receipt{r})
	if !p.FirstSeen.Equal(now) || !p.LastSeen.Equal(now) || p.Records != 1 || p.Jobs != 1 || p.Succeeded != 1 {
		t.Fatalf("provider summary %+v", p.ProviderSummary)
	}
	j, err := s.Job(ctx, "job1")
	must(t, err)
	same(t, "announcements", j.Announcements, []indexdb.Announcement{a})
	same(t, "receipts", j.Receipts, []indexdb.Receipt{r})
	want := indexdb.JobSummary{JobID: "job1", Requester: "reqA", Kind: "wasm", Attempts: 1, FirstSeen: now,
		Outcome: "succeeded", Provider: "peerA", Price: 500, EscrowState: "released"}
	same(t, "job summary", j.JobSummary, want)
	got, err := s.Model(ctx, m.ID)
	must(t, err)
	same(t, "model", got, m)
	st, err := s.Stats(ctx)
	must(t, err)
	same(t, "stats", st, indexdb.Stats{Capacity: 1, Announcements: 1, Receipts: 1, Models: 1})
	// Big values and zero times survive.
	big := Capacity("peerB", math.MaxInt64, time.Time{}, time.Time{}, now, math.MaxInt64/10)
	big.GPUs, big.Executors, big.Record = nil, nil, nil
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{big}))
	p, err = s.Provider(ctx, "peerB")
	must(t, err)
	same(t, "big record", p.Latest, big)
}

func testIdempotent(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	caps := []indexdb.Capacity{Capacity("p1", 1, now, now.Add(time.Hour), now, 1), Capacity("p1", 2, now, now.Add(time.Hour), now, 2)}
	anns := []indexdb.Announcement{Announcement("j1", 1, "r", now), Announcement("j1", 2, "r", now)}
	rs := []indexdb.Receipt{Receipt("j1", 1, "r", "p1", "succeeded", "none", now)}
	ms := []indexdb.Model{Model("pub", "m", "d", now)}
	for range 3 {
		must(t, s.AddCapacity(ctx, append(caps, caps...)))
		must(t, s.AddAnnouncements(ctx, anns))
		must(t, s.AddReceipts(ctx, append(rs, rs...)))
		must(t, s.AddModels(ctx, ms))
	}
	st, err := s.Stats(ctx)
	must(t, err)
	same(t, "stats after re-ingest", st, indexdb.Stats{Capacity: 2, Announcements: 2, Receipts: 1, Models: 1})
	p, err := s.Provider(ctx, "p1")
	must(t, err)
	if p.Records != 2 || p.Jobs != 1 || p.Succeeded != 1 || p.Latest.Seq != 2 {
		t.Fatalf("provider after re-ingest %+v", p.ProviderSummary)
	}
	j, err := s.Job(ctx, "j1")
	must(t, err)
	if j.Attempts != 2 || len(j.Receipts) != 1 {
		t.Fatalf("job after re-ingest %+v", j)
	}
	// A batch of nothing is nothing.
	must(t, s.AddCapacity(ctx, nil))
	must(t, s.AddReceipts(ctx, []indexdb.Receipt{}))
}

func testNotFound(t *testing.T, s indexdb.Store) {
	if _, err := s.Provider(ctx, "nobody"); !errors.Is(err, indexdb.ErrNotFound) {
		t.Errorf("Provider(nobody) = %v, want ErrNotFound", err)
	}
	if _, err := s.Job(ctx, "nojob"); !errors.Is(err, indexdb.ErrNotFound) {
		t.Errorf("Job(nojob) = %v, want ErrNotFound", err)
	}
	if _, err := s.Model(ctx, "nomodel"); !errors.Is(err, indexdb.ErrNotFound) {
		t.Errorf("Model(nomodel) = %v, want ErrNotFound", err)
	}
	for _, key := range []string{"\x00", "\xff\xfe", "' OR 1=1 --"} {
		if _, err := s.Job(ctx, key); !errors.Is(err, indexdb.ErrNotFound) {
			t.Errorf("Job(%q) = %v, want ErrNotFound", key, err)
		}
		if _, err := s.Provider(ctx, key); !errors.Is(err, indexdb.ErrNotFound) {
			t.Errorf("Provider(%q) = %v, want ErrNotFound", key, err)
		}
		if _, err := s.Model(ctx, key); !errors.Is(err, indexdb.ErrNotFound) {
			t.Errorf("Model(%q) = %v, want ErrNotFound", key, err)
		}
	}
	err := s.SetEscrowCheck(ctx, indexdb.EscrowCheck{ReceiptID: indexdb.RecordID([]byte("x")), State: indexdb.CheckConfirmed})
	if !errors.Is(err, indexdb.ErrNotFound) {
		t.Errorf("SetEscrowCheck(unknown receipt) = %v, want ErrNotFound", err)
	}
	// A provider known only from receipts is found.
	now := time.Now().UTC()
	must(t, s.AddReceipts(ctx, []indexdb.Receipt{Receipt("j", 1, "r", "ghost", "failed", "provider", now)}))
	p, err := s.Provider(ctx, "ghost")
	must(t, err)
	if p.Records != 0 || p.Jobs != 1 || p.FailedByProvider != 1 || len(p.Receipts) != 1 {
		t.Fatalf("provider known from receipts: %+v", p)
	}
	page, err := s.Providers(ctx, indexdb.ProviderQuery{})
	must(t, err)
	if len(page.Items) != 0 {
		t.Fatalf("providers without capacity listed: %+v", page.Items)
	}
}

func testBadRecords(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	good := Receipt("j", 1, "r", "p", "succeeded", "none", now)
	forged := good
	forged.ID = indexdb.RecordID([]byte("something else"))
	huge := Receipt("j", 2, "r", "p", "succeeded", "none", now)
	huge.Price = math.MaxUint64
	short := good
	short.ID = "abc"
	nul := Receipt("j", 3, "r\x00", "p", "succeeded", "none", now)
	notUTF8 := Receipt("j", 4, "r", "p", "succeeded", "none", now)
	notUTF8.Outputs = []string{"\xff"}
	for name, r := range map[string]indexdb.Receipt{"forged id": forged, "price over 2^63": huge, "short id": short,
		"a NUL byte": nul, "invalid UTF-8": notUTF8} {
		if err := s.AddReceipts(ctx, []indexdb.Receipt{good, r}); !errors.Is(err, indexdb.ErrBadRecord) {
			t.Errorf("receipt with %s: %v, want ErrBadRecord", name, err)
		}
	}
	c := Capacity("", 1, now, now, now, 1)
	if err := s.AddCapacity(ctx, []indexdb.Capacity{c}); !errors.Is(err, indexdb.ErrBadRecord) {
		t.Errorf("capacity without peer: %v, want ErrBadRecord", err)
	}
	m := Model("p", "n", "d", now)
	m.Metrics = map[string]float64{"loss": math.NaN()}
	if err := s.AddModels(ctx, []indexdb.Model{m}); !errors.Is(err, indexdb.ErrBadRecord) {
		t.Errorf("model with NaN metric: %v, want ErrBadRecord", err)
	}
	st, err := s.Stats(ctx)
	must(t, err)
	same(t, "stats after refused batches", st, indexdb.Stats{})
}

func testLimits(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	var anns []indexdb.Announcement
	for i := range indexdb.DefaultPageSize + 10 {
		anns = append(anns, Announcement(fmt.Sprintf("job%03d", i), 1, "r", now.Add(time.Duration(i)*time.Second)))
	}
	must(t, s.AddAnnouncements(ctx, anns))
	page, err := s.Jobs(ctx, indexdb.JobQuery{})
	must(t, err)
	if len(page.Items) != indexdb.DefaultPageSize || page.Next == "" {
		t.Fatalf("Jobs(limit 0) gave %d items, next %q; want %d and a cursor", len(page.Items), page.Next, indexdb.DefaultPageSize)
	}
	if page.Items[0].JobID != fmt.Sprintf("job%03d", indexdb.DefaultPageSize+9) {
		t.Fatalf("newest job first: got %s", page.Items[0].JobID)
	}
	page, err = s.Jobs(ctx, indexdb.JobQuery{Limit: indexdb.MaxPageSize})
	must(t, err)
	if len(page.Items) != indexdb.DefaultPageSize+10 || page.Next != "" {
		t.Fatalf("Jobs(limit max) gave %d items, next %q", len(page.Items), page.Next)
	}
	for _, n := range []int{-1, indexdb.MaxPageSize + 1, math.MaxInt} {
		bad := []error{}
		_, err := s.Jobs(ctx, indexdb.JobQuery{Limit: n})
		bad = append(bad, err)
		_, err = s.Providers(ctx, indexdb.ProviderQuery{Limit: n})
		bad = append(bad, err)
		_, err = s.Models(ctx, indexdb.ModelQuery{Limit: n})
		bad = append(bad, err)
		_, err = s.UncheckedEscrows(ctx, n)
		bad = append(bad, err)
		for i, err := range bad {
			if !errors.Is(err, indexdb.ErrBadQuery) {
				t.Errorf("listing %d with limit %d: %v, want ErrBadQuery", i, n, err)
			}
		}
	}
	long := string(make([]byte, indexdb.MaxFilterLen+1))
	if _, err := s.Models(ctx, indexdb.ModelQuery{Text: "a\x00b"}); !errors.Is(err, indexdb.ErrBadQuery) {
		t.Errorf("search text with a NUL byte: %v, want ErrBadQuery", err)
	}
	if _, err := s.Jobs(ctx, indexdb.JobQuery{Requester: "\xff"}); !errors.Is(err, indexdb.ErrBadQuery) {
		t.Errorf("requester filter of invalid UTF-8: %v, want ErrBadQuery", err)
	}
	if _, err := s.Models(ctx, indexdb.ModelQuery{Text: long}); !errors.Is(err, indexdb.ErrBadQuery) {
		t.Errorf("search text of %d bytes: %v, want ErrBadQuery", len(long), err)
	}
}
