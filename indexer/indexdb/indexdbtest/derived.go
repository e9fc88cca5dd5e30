package indexdbtest

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

func testUptime(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	h := func(n float64) time.Time { return now.Add(time.Duration(n * float64(time.Hour))) }
	rec := func(seq uint64, from, to, seen float64) indexdb.Capacity {
		return Capacity("P", seq, h(from), h(to), h(seen), 1)
	}
	// Out of order, in separate batches: [-10,-8] and [-9,-6] overlap (4 h),
	// [-4,-3] (1 h), [-20,-19] lies before the first sighting, [-1,+1]
	// counts up to now (1 h): 6 h of the 10 since first seen.
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{rec(3, -4, -3, -4)}))
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{rec(1, -10, -8, -10), rec(4, -20, -19, -2)}))
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{rec(2, -9, -6, -9)}))
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{rec(5, -1, 1, -1)}))
	// Q is always covered.
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{Capacity("Q", 1, h(-30), h(30), h(-2), 1)}))
	var rs []indexdb.Receipt
	for i, o := range [][2]string{{"succeeded", "none"}, {"succeeded", "none"}, {"succeeded", "none"},
		{"failed", "provider"}, {"failed", "requester"}, {"mismatch", "provider"}, {"cancelled", "none"}} {
		rs = append(rs, Receipt(fmt.Sprintf("job%d", i), 1, "r", "P", o[0], o[1], h(-1)))
	}
	must(t, s.AddReceipts(ctx, rs))
	p, err := s.Provider(ctx, "P")
	must(t, err)
	check := func(p indexdb.ProviderSummary) {
		t.Helper()
		if math.Abs(p.Uptime-0.6) > 1e-3 {
			t.Errorf("uptime of P = %v, want 0.6", p.Uptime)
		}
		if p.Jobs != 7 || p.Succeeded != 3 || p.FailedByProvider != 1 || p.Mismatches != 1 || math.Abs(p.SuccessRate-0.6) > 1e-9 {
			t.Errorf("P: jobs %d succeeded %d failed %d mismatches %d rate %v; want 7 3 1 1 0.6",
				p.Jobs, p.Succeeded, p.FailedByProvider, p.Mismatches, p.SuccessRate)
		}
		if !p.FirstSeen.Equal(h(-10)) || !p.LastSeen.Equal(h(-1)) || p.Records != 5 || p.Latest.Seq != 5 {
			t.Errorf("P: first %v last %v records %d latest %d", p.FirstSeen, p.LastSeen, p.Records, p.Latest.Seq)
		}
	}
	check(p.ProviderSummary)
	page, err := s.Providers(ctx, indexdb.ProviderQuery{})
	must(t, err)
	if len(page.Items) != 2 || page.Items[0].Peer != "P" || page.Items[1].Peer != "Q" {
		t.Fatalf("providers %+v", page.Items)
	}
	check(page.Items[0])
	if q := page.Items[1]; q.Uptime != 1 || q.SuccessRate != 0 || q.Jobs != 0 {
		t.Errorf("Q: uptime %v rate %v jobs %d; want 1 0 0", q.Uptime, q.SuccessRate, q.Jobs)
	}
	// One batch bridges [-10,-6] and [-4,-3] and, with two records that
	// touch, [-3,-1.5]: 9.5 h of 10.
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{rec(6, -6.5, -3.5, -0.5), rec(7, -3, -2, -0.4), rec(8, -2, -1.5, -0.3)}))
	p, err = s.Provider(ctx, "P")
	must(t, err)
	if math.Abs(p.Uptime-0.95) > 1e-3 {
		t.Errorf("uptime of P after bridging records = %v, want 0.95", p.Uptime)
	}
}

func testEscrow(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	r1 := Receipt("jx", 1, "req", "p1", "failed", "provider", now.Add(-time.Minute))
	r1.EscrowState = "" // no escrow: nothing to check
	r2 := Receipt("jx", 2, "req", "p2", "succeeded", "none", now)
	r2.EscrowTx, r2.Price = "tx2", 777
	r3 := Receipt("jy", 1, "req", "p1", "succeeded", "none", now.Add(-time.Hour))
	r3.EscrowTx = "tx3"
	must(t, s.AddReceipts(ctx, []indexdb.Receipt{r2}))
	must(t, s.AddReceipts(ctx, []indexdb.Receipt{r1, r3}))
	j, err := s.Job(ctx, "jx")
	must(t, err)
	if j.Outcome != "succeeded" || j.Provider != "p2" || j.Attempts != 2 || j.Price != 777 || j.EscrowCheck != "" {
		t.Fatalf("job jx summary %+v: want the latest attempt's receipt", j.JobSummary)
	}
	if len(j.Receipts) != 2 || j.Receipts[0].Attempt != 1 {
		t.Fatalf("job jx receipts %+v", j.Receipts)
	}
	unchecked := func(want ...string) {
		t.Helper()
		rs, err := s.UncheckedEscrows(ctx, 0)
		must(t, err)
		var got []string
		for _, r := range rs {
			got = append(got, r.ID)
		}
		same(t, "unchecked escrows", got, want)
	}
	unchecked(r3.ID, r2.ID)
	must(t, s.SetEscrowCheck(ctx, indexdb.EscrowCheck{ReceiptID: r2.ID, State: indexdb.CheckConfirmed, CheckedAt: now}))
	unchecked(r3.ID)
	must(t, s.SetEscrowCheck(ctx, indexdb.EscrowCheck{ReceiptID: r2.ID, State: indexdb.CheckMismatch, Detail: "amount", CheckedAt: now.Add(time.Second)}))
	// A check of an older receipt does not change the job's summary.
	must(t, s.SetEscrowCheck(ctx, indexdb.EscrowCheck{ReceiptID: r1.ID, State: indexdb.CheckMissing, CheckedAt: now.Add(2 * time.Second)}))
	j, err = s.Job(ctx, "jx")
	must(t, err)
	if j.EscrowCheck != indexdb.CheckMismatch || len(j.Checks) != 3 || j.Checks[0].State != indexdb.CheckConfirmed || j.Checks[1].Detail != "amount" {
		t.Fatalf("job jx after checks: %+v, checks %+v", j.JobSummary, j.Checks)
	}
	page, err := s.Jobs(ctx, indexdb.JobQuery{})
	must(t, err)
	if len(page.Items) != 2 || page.Items[0].JobID != "jx" || page.Items[0].EscrowCheck != indexdb.CheckMismatch {
		t.Fatalf("jobs %+v", page.Items)
	}
	st, err := s.Stats(ctx)
	must(t, err)
	if st.EscrowChecks != 3 {
		t.Fatalf("stats %+v: want 3 checks", st)
	}
	if err := s.SetEscrowCheck(ctx, indexdb.EscrowCheck{ReceiptID: r3.ID}); !errors.Is(err, indexdb.ErrBadRecord) {
		t.Fatalf("check without state: %v, want ErrBadRecord", err)
	}
}

func testSeries(t *testing.T, s indexdb.Store) {
	from := time.Now().UTC().Truncate(time.Hour).Add(-5 * time.Hour)
	at := func(d time.Duration) time.Time { return from.Add(d) }
	c := func(peer string, seq uint64, seen time.Duration, price uint64) indexdb.Capacity {
		return Capacity(peer, seq, at(seen), at(seen+time.Hour), at(seen), price)
	}
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{
		c("A", 1, time.Minute, 10), c("A", 2, 2*time.Minute, 30), c("B", 1, 3*time.Minute, 20), c("C", 1, 59*time.Minute, 5),
		c("A", 3, 2*time.Hour+time.Minute, 40), c("B", 2, 2*time.Hour+2*time.Minute, 50),
		c("D", 1, -time.Minute, 1), c("D", 2, 3*time.Hour, 1), // outside the series
	}))
	must(t, s.AddAnnouncements(ctx, []indexdb.Announcement{Announcement("j1", 1, "r", at(time.Hour)),
		Announcement("j2", 1, "r", at(time.Hour+59*time.Minute)), Announcement("j3", 1, "r", at(3*time.Hour))}))
	q := indexdb.SeriesQuery{From: from, To: at(3 * time.Hour), Bucket: time.Hour}
	prices, err := s.Prices(ctx, q)
	must(t, err)
	same(t, "cpu-second prices", prices, []indexdb.PricePoint{
		{Time: from, Min: 5, Median: 20, Max: 30, Providers: 3},
		{Time: at(time.Hour)},
		{Time: at(2 * time.Hour), Min: 40, Median: 40, Max: 50, Providers: 2},
	})
	// Buckets that are not whole hours read the records themselves.
	half := q
	half.Bucket = 30 * time.Minute
	prices, err = s.Prices(ctx, half)
	must(t, err)
	same(t, "half-hour prices", prices, []indexdb.PricePoint{
		{Time: from, Min: 20, Median: 20, Max: 30, Providers: 2},
		{Time: at(30 * time.Minute), Min: 5, Median: 5, Max: 5, Providers: 1},
		{Time: at(time.Hour)}, {Time: at(90 * time.Minute)},
		{Time: at(2 * time.Hour), Min: 40, Median: 40, Max: 50, Providers: 2},
		{Time: at(150 * time.Minute)},
	})
	size, err := s.SwarmSize(ctx, half)
	must(t, err)
	same(t, "half-hour swarm size", size, []indexdb.SizePoint{{Time: from, Providers: 2}, {Time: at(30 * time.Minute), Providers: 1},
		{Time: at(time.Hour), Jobs: 1}, {Time: at(90 * time.Minute), Jobs: 1}, {Time: at(2 * time.Hour), Providers: 2}, {Time: at(150 * time.Minute)}})
	// Buckets of several hours combine the hours: the median is that of
	// the hours' medians.
	three := q
	three.Bucket = 3 * time.Hour
	prices, err = s.Prices(ctx, three)
	must(t, err)
	same(t, "three-hour prices", prices, []indexdb.PricePoint{{Time: from, Min: 5, Median: 20, Max: 50, Providers: 3}})
	size, err = s.SwarmSize(ctx, three)
	must(t, err)
	same(t, "three-hour swarm size", size, []indexdb.SizePoint{{Time: from, Providers: 3, Jobs: 2}})
	q.Resource = indexdb.ResourceMinimum
	prices, err = s.Prices(ctx, q)
	must(t, err)
	if prices[0].Min != 50 || prices[0].Median != 200 || prices[0].Max != 300 {
		t.Fatalf("minimum prices %+v", prices[0])
	}
	size, err = s.SwarmSize(ctx, q)
	must(t, err)
	same(t, "swarm size", size, []indexdb.SizePoint{{Time: from, Providers: 3}, {Time: at(time.Hour), Jobs: 2}, {Time: at(2 * time.Hour), Providers: 2}})
	// A partial last bucket counts.
	q.To = at(2*time.Hour + 30*time.Minute)
	size, err = s.SwarmSize(ctx, q)
	must(t, err)
	if len(size) != 3 || size[2].Providers != 2 {
		t.Fatalf("series to a partial bucket: %+v", size)
	}
	longest := indexdb.SeriesQuery{From: from, To: from.Add(indexdb.MaxSeriesPoints * time.Minute), Bucket: time.Minute}
	if _, err := s.SwarmSize(ctx, longest); err != nil {
		t.Fatalf("series of %d points: %v", indexdb.MaxSeriesPoints, err)
	}
	bad := []indexdb.SeriesQuery{
		{From: from, To: at(time.Hour), Bucket: 59 * time.Second},
		{From: from, To: from, Bucket: time.Hour},
		{From: at(time.Hour), To: from, Bucket: time.Minute},
		{To: from, Bucket: time.Minute},
		{From: from, To: from.Add((indexdb.MaxSeriesPoints + 1) * time.Minute), Bucket: time.Minute},
		{From: from, To: at(time.Hour), Bucket: time.Minute, Resource: "memory"},
		{From: time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), To: from, Bucket: 1 << 62},
	}
	for _, q := range bad {
		_, err := s.Prices(ctx, q)
		if !errors.Is(err, indexdb.ErrBadQuery) {
			t.Errorf("Prices(%+v) = %v, want ErrBadQuery", q, err)
		}
		if q.Resource != "" {
			continue
		}
		if _, err := s.SwarmSize(ctx, q); !errors.Is(err, indexdb.ErrBadQuery) {
			t.Errorf("SwarmSize(%+v) = %v, want ErrBadQuery", q, err)
		}
	}
}

func testConcurrent(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for b := range 10 {
				var rs []indexdb.Receipt
				var cs []indexdb.Capacity
				for i := range 20 {
					rs = append(rs, Receipt(fmt.Sprintf("w%d-%d-%d", w, b, i), 1, "r", fmt.Sprintf("p%d", i%3), "succeeded", "none", now))
					cs = append(cs, Capacity(fmt.Sprintf("p%d", i%3), uint64(w*1000+b*20+i), now, now.Add(time.Minute), now, 1))
				}
				if err := s.AddReceipts(ctx, rs); err != nil {
					errs <- err
				}
				if err := s.AddCapacity(ctx, cs); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := s.Jobs(ctx, indexdb.JobQuery{Limit: 10}); err != nil {
					errs <- err
				}
				if _, err := s.Providers(ctx, indexdb.ProviderQuery{}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st, err := s.Stats(ctx)
	must(t, err)
	if st.Receipts != 800 || st.Capacity != 800 {
		t.Fatalf("stats after concurrent writers: %+v", st)
	}
	var jobs int
	for _, p := range []string{"p0", "p1", "p2"} {
		d, err := s.Provider(ctx, p)
		must(t, err)
		jobs += d.Jobs
	}
	if jobs != 800 {
		t.Fatalf("provider job counts sum to %d, want 800", jobs)
	}
}

// testCountedOnce attacks the provider's figures: an attempt counts once,
// however many receipts of it come (signed again, or copied without the
// countersignature); a receipt its provider did not countersign does not
// count; and a stranger's receipt does not take over another requester's
// job.
func testCountedOnce(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	first := Receipt("jc", 1, "req", "p1", "failed", "provider", now.Add(-time.Minute))
	again := Receipt("jc", 1, "req", "p1", "failed", "provider", now) // signed anew: another ID
	stripped := Receipt("jc", 1, "req", "p1", "failed", "provider", now.Add(time.Millisecond))
	stripped.Countersigned = false
	ok := Receipt("jd", 1, "req", "p1", "succeeded", "none", now)
	var blame []indexdb.Receipt
	for i := range 5 { // strangers blaming p1 without its word
		r := Receipt(fmt.Sprintf("js%d", i), 1, fmt.Sprintf("sybil%d", i), "p1", "failed", "provider", now)
		r.Countersigned = false
		blame = append(blame, r)
	}
	must(t, s.AddReceipts(ctx, []indexdb.Receipt{first, again}))
	must(t, s.AddReceipts(ctx, append([]indexdb.Receipt{stripped, ok}, blame...)))
	p, err := s.Provider(ctx, "p1")
	must(t, err)
	if p.Jobs != 2 || p.FailedByProvider != 1 || p.Succeeded != 1 || math.Abs(p.SuccessRate-0.5) > 1e-9 {
		t.Errorf("provider p1 = %+v, want 2 attempts counted: one success, one failure", p.ProviderSummary)
	}

	// A stranger's receipt of a later attempt leaves the job as its
	// requester's receipts say.
	hijack := Receipt("jd", 99, "stranger", "p9", "failed", "provider", now.Add(time.Second))
	must(t, s.AddReceipts(ctx, []indexdb.Receipt{hijack}))
	j, err := s.Job(ctx, "jd")
	must(t, err)
	if j.Requester != "req" || j.Outcome != "succeeded" || j.Provider != "p1" || j.Attempts != 1 {
		t.Errorf("job jd after a stranger's receipt: %+v, want it as its requester left it", j.JobSummary)
	}
}
