package indexdbtest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

// The shape of the benchmarks' swarm.
const (
	benchProviders  = 1000
	benchRequesters = 5000
	benchRecords    = 100 // capacity records per provider
	benchSpan       = 30 * 24 * time.Hour
)

// benchStart is when the benchmarks' history begins: benchSpan ago.
var benchStart = time.Now().UTC().Add(-benchSpan).Truncate(time.Hour)

// BenchPeer is the peer ID of the benchmarks' provider i.
func BenchPeer(i int) string { return fmt.Sprintf("12D3KooWbenchpeer%05d", i%benchProviders) }

// BenchJob is job i of a benchmark history of n jobs: its announcement and
// its one receipt, spread evenly over the last 30 days. Nine jobs in ten
// succeed, and those name an escrow transaction.
func BenchJob(i, n int) (indexdb.Announcement, indexdb.Receipt) {
	seen := benchStart.Add(time.Duration(int64(benchSpan) / int64(n) * int64(i)))
	job := fmt.Sprintf("job-%08d", i)
	req := fmt.Sprintf("12D3KooWbenchreq%05d", (i*7919)%benchRequesters)
	kind := "wasm"
	if i%5 == 0 {
		kind = "train"
	}
	a := indexdb.Announcement{JobID: job, Attempt: 1, Requester: req, Kind: kind, CPU: 1 + i%8, MemoryMiB: 512,
		WallSeconds: 600, MaxPrice: 5000, Mint: "benchmint", IssuedAt: seen.Add(-time.Second), SeenAt: seen,
		Record: []byte("announcement " + job)}
	outcome, fault, tx := "succeeded", "none", "tx-"+job
	switch i % 100 {
	case 1, 2, 3, 4, 5:
		outcome, fault, tx = "failed", "provider", ""
	case 6, 7, 8:
		outcome, fault, tx = "failed", "requester", ""
	case 9, 10:
		outcome, fault, tx = "mismatch", "provider", ""
	}
	rec := []byte(fmt.Sprintf("receipt %s %d", job, i))
	r := indexdb.Receipt{ID: indexdb.RecordID(rec), JobID: job, Attempt: 1, Requester: req, Provider: BenchPeer(i * 31),
		Kind: kind, Outcome: outcome, Fault: fault, Price: uint64(100 + i%900), Mint: "benchmint", EscrowState: "released",
		EscrowTx: tx, Outputs: []string{"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"},
		StartedAt: seen.Add(time.Second), EndedAt: seen.Add(time.Minute), IssuedAt: seen.Add(time.Minute + time.Second),
		SeenAt: seen.Add(2 * time.Minute), Countersigned: true, Record: rec}
	return a, r
}

// BenchCapacity is record k of the benchmarks' provider p: each provider
// re-advertises evenly over the 30 days, with overlapping validity; one in
// ten misses every fifth record, which leaves gaps in its uptime.
func BenchCapacity(p, k int) (indexdb.Capacity, bool) {
	if p%10 == 0 && k%5 == 4 {
		return indexdb.Capacity{}, false
	}
	step := benchSpan / benchRecords
	seen := benchStart.Add(time.Duration(k)*step + time.Duration(p)*time.Second)
	c := Capacity(BenchPeer(p), uint64(k+1), seen, seen.Add(step+time.Minute), seen, uint64(100+(p*31+k*17)%900))
	return c, true
}

// BenchRows is the size of the query benchmarks' history: 50,000 receipts,
// or $CYXWIZ_INDEX_BENCH_ROWS (1000000 for the figures of docs/indexer.md).
func BenchRows(b *testing.B) int {
	if v := os.Getenv("CYXWIZ_INDEX_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("CYXWIZ_INDEX_BENCH_ROWS=%q: want a number of at least 1000", v)
		}
		return n
	}
	return 50000
}

// BenchIngest measures ingest: each iteration stores a batch of 128
// receipts and a batch of 128 capacity records, and the figure is events
// (rows offered) per second.
func BenchIngest(b *testing.B, s indexdb.Store) {
	ctx := context.Background()
	const half = 128
	rs := make([]indexdb.Receipt, half)
	cs := make([]indexdb.Capacity, half)
	start := time.Now()
	i := 0
	for b.Loop() {
		for j := range half {
			g := i*half + j
			_, rs[j] = BenchJob(g, 1<<30)
			p, k := g%benchProviders, g/benchProviders
			seen := benchStart.Add(time.Duration(k) * time.Minute)
			cs[j] = Capacity(BenchPeer(p), uint64(k+1), seen, seen.Add(90*time.Second), seen, uint64(100+g%900))
		}
		if err := s.AddReceipts(ctx, rs); err != nil {
			b.Fatal(err)
		}
		if err := s.AddCapacity(ctx, cs); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(2*half*i)/time.Since(start).Seconds(), "events/s")
}

// BenchLoad fills a Store with the benchmark history of n jobs through its
// own ingest, in batches of 5000: the loader of a driver without a bulk
// path.
func BenchLoad(b *testing.B, s indexdb.Store, n int) {
	ctx := context.Background()
	const batch = 5000
	anns := make([]indexdb.Announcement, 0, batch)
	rs := make([]indexdb.Receipt, 0, batch)
	for i := 0; i < n; i++ {
		a, r := BenchJob(i, n)
		anns, rs = append(anns, a), append(rs, r)
		if len(rs) == batch || i == n-1 {
			if err := s.AddAnnouncements(ctx, anns); err != nil {
				b.Fatal(err)
			}
			if err := s.AddReceipts(ctx, rs); err != nil {
				b.Fatal(err)
			}
			anns, rs = anns[:0], rs[:0]
		}
	}
}

// BenchDerive are the statements that fill the summary tables from the
// announcements and receipts of a benchmark history loaded in bulk (one
// announcement and one receipt per job), in the SQL both databases speak:
// what ingest would have written row by row.
var BenchDerive = []string{
	`INSERT INTO jobs (job_id, requester, kind, attempts, first_seen, r_attempt, r_issued, r_id, outcome, provider,
		price, escrow_state, escrow_check)
	SELECT a.job_id, a.requester, a.kind, a.attempt, a.seen_at, r.attempt, r.issued_at, r.id, r.outcome, r.provider,
		r.price, r.escrow_state, '' FROM announcements a JOIN receipts r ON r.job_id = a.job_id`,
	`INSERT INTO provider_jobs (peer, jobs, succeeded, failed, mismatches)
	SELECT provider, COUNT(*), SUM(CASE WHEN outcome = 'succeeded' THEN 1 ELSE 0 END),
		SUM(CASE WHEN outcome NOT IN ('succeeded', 'mismatch') AND fault = 'provider' THEN 1 ELSE 0 END),
		SUM(CASE WHEN outcome = 'mismatch' THEN 1 ELSE 0 END) FROM receipts GROUP BY provider`,
	`INSERT INTO announcement_hours (hour, jobs) SELECT seen_at / 3600000000000, COUNT(*) FROM announcements GROUP BY 1`,
}

// BenchRow is the values of job i's announcement and receipt as their
// tables' columns hold them, in the order of their CREATE TABLE, for bulk
// loaders.
func BenchRow(i, n int) (ann, rec []any) {
	a, r := BenchJob(i, n)
	ann = []any{a.JobID, int64(a.Attempt), a.Requester, a.Kind, int64(a.CPU), a.MemoryMiB, int64(a.GPUs), int64(a.WallSeconds),
		int64(a.MaxPrice), a.Mint, a.IssuedAt.UnixNano(), a.SeenAt.UnixNano(), a.Record}
	rec = []any{r.ID, r.JobID, int64(r.Attempt), r.Requester, r.Provider, r.Kind, r.Outcome, r.Fault, r.Reason, int64(r.Price),
		r.Mint, r.EscrowState, r.EscrowTx, `["` + r.Outputs[0] + `"]`, r.StartedAt.UnixNano(), r.EndedAt.UnixNano(),
		r.IssuedAt.UnixNano(), r.SeenAt.UnixNano(), r.Countersigned, r.EscrowTx != "", r.Record}
	return ann, rec
}

// BenchAnnouncementCols and BenchReceiptCols name the columns of BenchRow.
var (
	BenchAnnouncementCols = []string{"job_id", "attempt", "requester", "kind", "cpu", "memory_mib", "gpus", "wall_seconds",
		"max_price", "mint", "issued_at", "seen_at", "record"}
	BenchReceiptCols = []string{"id", "job_id", "attempt", "requester", "provider", "kind", "outcome", "fault", "reason", "price",
		"mint", "escrow_state", "escrow_tx", "outputs", "started_at", "ended_at", "issued_at", "seen_at", "countersigned",
		"escrow_pending", "record"}
)

// BenchLoadCapacity stores the capacity records of the benchmark history.
func BenchLoadCapacity(b *testing.B, s indexdb.Store) {
	ctx := context.Background()
	for k := range benchRecords {
		var cs []indexdb.Capacity
		for p := range benchProviders {
			if c, ok := BenchCapacity(p, k); ok {
				cs = append(cs, c)
			}
		}
		if err := s.AddCapacity(ctx, cs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchQueries measures the explorer's queries on a Store that holds the
// benchmark history of n jobs: each sub-benchmark reports its p50 and p99
// latency in milliseconds.
func BenchQueries(b *testing.B, s indexdb.Store, n int) {
	ctx := context.Background()
	st, err := s.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if st.Receipts < int64(n) {
		b.Fatalf("the store holds %d receipts, not the %d of the benchmark", st.Receipts, n)
	}
	end := benchStart.Add(benchSpan)
	week := indexdb.SeriesQuery{From: end.Add(-7 * 24 * time.Hour), To: end, Bucket: time.Hour}
	month := indexdb.SeriesQuery{From: benchStart, To: end, Bucket: 6 * time.Hour}
	var deep string
	cases := []struct {
		name string
		run  func(i int) error
	}{
		{"JobsPage", func(int) error { _, err := s.Jobs(ctx, indexdb.JobQuery{}); return err }},
		{"JobsByProvider", func(i int) error {
			_, err := s.Jobs(ctx, indexdb.JobQuery{Provider: BenchPeer(i)})
			return err
		}},
		{"JobsByRequesterSince", func(i int) error {
			_, err := s.Jobs(ctx, indexdb.JobQuery{Requester: fmt.Sprintf("12D3KooWbenchreq%05d", (i*7919)%benchRequesters), Since: benchStart.Add(benchSpan / 2)})
			return err
		}},
		{"JobsNextPages", func(int) error {
			p, err := s.Jobs(ctx, indexdb.JobQuery{Cursor: deep, Limit: 100})
			deep = p.Next
			return err
		}},
		{"Job", func(i int) error { _, err := s.Job(ctx, fmt.Sprintf("job-%08d", (i*7919)%n)); return err }},
		{"ProviderDetail", func(i int) error { _, err := s.Provider(ctx, BenchPeer(i*13)); return err }},
		{"ProvidersPage", func(int) error { _, err := s.Providers(ctx, indexdb.ProviderQuery{Limit: 100}); return err }},
		{"ProvidersByGPU", func(int) error {
			_, err := s.Providers(ctx, indexdb.ProviderQuery{GPUModel: "a100", Executor: "train"})
			return err
		}},
		{"PricesWeekHourly", func(int) error { _, err := s.Prices(ctx, week); return err }},
		{"PricesMonth6h", func(int) error { _, err := s.Prices(ctx, month); return err }},
		{"SwarmSizeWeekHourly", func(int) error { _, err := s.SwarmSize(ctx, week); return err }},
		{"UncheckedEscrows", func(int) error { _, err := s.UncheckedEscrows(ctx, 100); return err }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var lat []time.Duration
			i := 0
			for b.Loop() {
				t0 := time.Now()
				if err := c.run(i); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				i++
			}
			slices.Sort(lat)
			ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
			b.ReportMetric(ms(0.5), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
		})
	}
}
