package pgdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb/indexdbtest"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/pgdb"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/pgdb/pgtest"
	"github.com/jackc/pgx/v5"
)

// BenchmarkIngest measures events stored per second, in batches of 128
// receipts and 128 capacity records.
func BenchmarkIngest(b *testing.B) {
	srv := pgtest.StartServer(b)
	indexdbtest.BenchIngest(b, open(b, srv.NewDatabase(b), pgdb.Options{}))
}

// BenchmarkQueries measures the explorer's queries over the benchmark
// history (50,000 receipts, or $CYXWIZ_INDEX_BENCH_ROWS), loaded with COPY.
func BenchmarkQueries(b *testing.B) {
	n := indexdbtest.BenchRows(b)
	srv := pgtest.StartServer(b)
	db := open(b, srv.NewDatabase(b), pgdb.Options{})
	ctx := context.Background()
	t0 := time.Now()
	for _, t := range []struct {
		table string
		cols  []string
		pick  func(ann, rec []any) []any
	}{
		{"announcements", indexdbtest.BenchAnnouncementCols, func(a, _ []any) []any { return a }},
		{"receipts", indexdbtest.BenchReceiptCols, func(_, r []any) []any { return r }},
	} {
		i := 0
		_, err := db.Pool().CopyFrom(ctx, pgx.Identifier{t.table}, t.cols, pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			a, r := indexdbtest.BenchRow(i, n)
			i++
			return t.pick(a, r), nil
		}))
		if err != nil {
			b.Fatalf("copy %s: %v", t.table, err)
		}
	}
	for _, q := range indexdbtest.BenchDerive {
		if _, err := db.Pool().Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d jobs in %v", n, time.Since(t0))
	t0 = time.Now()
	indexdbtest.BenchLoadCapacity(b, db)
	b.Logf("loaded the capacity records in %v", time.Since(t0))
	// What autovacuum does in time on a running indexer, at once: the
	// figures are those of a database in its steady state.
	if _, err := db.Pool().Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	indexdbtest.BenchQueries(b, db, n)
}
