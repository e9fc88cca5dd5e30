package sqlitedb_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/indexdbtest"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/sqlitedb"
)

func open(t testing.TB, path string) *sqlitedb.DB {
	t.Helper()
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	paths := map[indexdb.Store]string{}
	indexdbtest.Run(t, func(t *testing.T) indexdb.Store {
		path := filepath.Join(t.TempDir(), "index.db")
		db := open(t, path)
		paths[db] = path
		return db
	}, func(t *testing.T, s indexdb.Store) indexdb.Store {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		db := open(t, paths[s])
		paths[db] = paths[s]
		return db
	})
}

func TestSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db := open(t, path)
	db.Close()
	// A later program migrated this database further.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(context.Background(), `INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, err = sqlitedb.Open(path)
	if !errors.Is(err, indexdb.ErrSchemaTooNew) {
		t.Fatalf("open of a newer database: %v, want ErrSchemaTooNew", err)
	}
}

func TestBadPath(t *testing.T) {
	for _, p := range []string{"", "a?b", "file:x.db"} {
		if _, err := sqlitedb.Open(p); err == nil {
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}
