package pgdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/indexdbtest"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/pgdb"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/pgdb/pgtest"
	"github.com/jackc/pgx/v5"
)

func open(t testing.TB, dsn string, opt pgdb.Options) *pgdb.DB {
	t.Helper()
	db, err := pgdb.OpenOptions(context.Background(), dsn, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	srv := pgtest.StartServer(t)
	dsns := map[indexdb.Store]string{}
	indexdbtest.Run(t, func(t *testing.T) indexdb.Store {
		dsn := srv.NewDatabase(t)
		db := open(t, dsn, pgdb.Options{})
		dsns[db] = dsn
		return db
	}, func(t *testing.T, s indexdb.Store) indexdb.Store {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		db := open(t, dsns[s], pgdb.Options{})
		dsns[db] = dsns[s]
		return db
	})
}

func TestSchemaTooNew(t *testing.T) {
	srv := pgtest.StartServer(t)
	dsn := srv.NewDatabase(t)
	db := open(t, dsn, pgdb.Options{})
	if _, err := db.Pool().Exec(context.Background(), `INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := pgdb.Open(context.Background(), dsn)
	if !errors.Is(err, indexdb.ErrSchemaTooNew) {
		t.Fatalf("open of a newer database: %v, want ErrSchemaTooNew", err)
	}
}

// TestServerDown stops the server under an open database: every call fails
// within its bound instead of hanging, and the database works again once
// the server is back.
func TestServerDown(t *testing.T) {
	srv := pgtest.StartServer(t)
	dsn := srv.NewDatabase(t)
	db := open(t, dsn, pgdb.Options{Timeout: 3 * time.Second, ConnectTimeout: time.Second})
	ctx := context.Background()
	now := time.Now().UTC()
	r := indexdbtest.Receipt("j", 1, "r", "p", "succeeded", "none", now)
	if err := db.AddReceipts(ctx, []indexdb.Receipt{r}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	calls := map[string]func() error{
		"Stats":       func() error { _, err := db.Stats(ctx); return err },
		"Jobs":        func() error { _, err := db.Jobs(ctx, indexdb.JobQuery{}); return err },
		"AddReceipts": func() error { return db.AddReceipts(ctx, []indexdb.Receipt{r}) },
		"Provider":    func() error { _, err := db.Provider(ctx, "p"); return err },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if err == nil {
			t.Errorf("%s with the server down succeeded", name)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s with the server down took %v, past its 3 s bound", name, d)
		}
	}
	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := db.Stats(ctx)
		if err == nil {
			if st.Receipts != 1 {
				t.Fatalf("stats after the server came back: %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the database does not recover once the server is back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSlowServer holds a lock that every call needs: the calls fail within
// their bounds (the statement and lock timeouts, the context deadline)
// instead of waiting for it.
func TestSlowServer(t *testing.T) {
	srv := pgtest.StartServer(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	for _, opt := range []pgdb.Options{
		{Timeout: time.Minute, StatementTimeout: time.Second}, // the server gives up
		{Timeout: time.Second, StatementTimeout: time.Minute}, // the context gives up
	} {
		db := open(t, dsn, opt)
		locker, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := locker.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE jobs, receipts IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		calls := map[string]func() error{
			"Jobs": func() error { _, err := db.Jobs(ctx, indexdb.JobQuery{}); return err },
			"Job":  func() error { _, err := db.Job(ctx, "j"); return err },
			"AddReceipts": func() error {
				return db.AddReceipts(ctx, []indexdb.Receipt{indexdbtest.Receipt("j", 1, "r", "p", "succeeded", "none", now)})
			},
		}
		for name, call := range calls {
			start := time.Now()
			if err := call(); err == nil {
				t.Errorf("%s under a held lock succeeded", name)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("%s under a held lock took %v, past its bound (%+v)", name, d, opt)
			}
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		locker.Close(ctx)
		if _, err := db.Jobs(ctx, indexdb.JobQuery{}); err != nil {
			t.Fatalf("Jobs once the lock is gone: %v", err)
		}
		db.Close()
	}
}
