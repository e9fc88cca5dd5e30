package sqlitedb_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
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
// history (50,000 receipts, or $CYXWIZ_INDEX_BENCH_ROWS), its jobs loaded
// in bulk through a second connection to the file.
func BenchmarkQueries(b *testing.B) {
	n := indexdbtest.BenchRows(b)
	path := filepath.Join(b.TempDir(), "index.db")
	db := open(b, path)
	t0 := time.Now()
	bulkLoad(b, path, n)
	b.Logf("loaded %d jobs in %v", n, time.Since(t0))
	t0 = time.Now()
	indexdbtest.BenchLoadCapacity(b, db)
	b.Logf("loaded the capacity records in %v", time.Since(t0))
	analyze(b, path)
	indexdbtest.BenchQueries(b, db, n)
}

// analyze refreshes the planner's statistics, as after a while of use.
func analyze(b *testing.B, path string) {
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec("ANALYZE"); err != nil {
		b.Fatal(err)
	}
}

func bulkLoad(b *testing.B, path string, n int) {
	ctx := context.Background()
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	tx, err := raw.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	insert := func(table string, cols []string) *sql.Stmt {
		st, err := tx.PrepareContext(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", table, strings.Join(cols, ", "),
			strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")))
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	ann, rec := insert("announcements", indexdbtest.BenchAnnouncementCols), insert("receipts", indexdbtest.BenchReceiptCols)
	for i := range n {
		a, r := indexdbtest.BenchRow(i, n)
		if _, err := ann.ExecContext(ctx, a...); err != nil {
			b.Fatal(err)
		}
		if _, err := rec.ExecContext(ctx, r...); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range indexdbtest.BenchDerive {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
