package sqlitedb_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb/indexdbtest"
)

// BenchmarkIngest measures events stored per second, in batches of 128
// receipts and 128 capacity records.
func BenchmarkIngest(b *testing.B) {
	indexdbtest.BenchIngest(b, open(b, filepath.Join(b.TempDir(), "index.db")))
}

// BenchmarkQueries measures the explorer's queries over the benchmark
// history: 50,000 receipts, or $CYXWIZ_INDEX_BENCH_ROWS.
func BenchmarkQueries(b *testing.B) {
	n := indexdbtest.BenchRows(b)
	db := open(b, filepath.Join(b.TempDir(), "index.db"))
	t0 := time.Now()
	indexdbtest.BenchLoad(b, db, n)
	b.Logf("loaded %d jobs in %v", n, time.Since(t0))
	t0 = time.Now()
	indexdbtest.BenchLoadCapacity(b, db)
	b.Logf("loaded the capacity records in %v", time.Since(t0))
	indexdbtest.BenchQueries(b, db, n)
}
