// Package sqlitedb is the indexer's database in an embedded SQLite file,
// through the pure-Go modernc.org/sqlite driver (no cgo). The database runs
// in WAL mode with a busy timeout and foreign keys on; writes go through a
// single connection, each batch in one transaction, while reads share a
// small pool of read-only connections. The schema is migrated on Open from
// the numbered files of migrations/.
package sqlitedb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/internal/sqlstore"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune a database; the zero value is the defaults.
type Options struct {
	// Timeout bounds every call whose context has no earlier deadline.
	// Default 30 seconds.
	Timeout time.Duration
	// BusyTimeout is how long a statement waits for a lock that another
	// process holds. Default 10 seconds.
	BusyTimeout time.Duration
	// Readers is the most read connections. Default 4.
	Readers int
	// Now is the clock of uptimes and of times left zero. Default time.Now.
	Now func() time.Time
}

// DB is an indexdb.Store in a SQLite file.
type DB struct {
	*sqlstore.Store
}

var _ indexdb.Store = (*DB)(nil)

// Open opens (creating it if need be) the database at path with the
// default options, and migrates its schema.
func Open(path string) (*DB, error) {
	return OpenOptions(path, Options{})
}

// OpenOptions opens the database at path and migrates its schema.
func OpenOptions(path string, opt Options) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open index database: path %q must be a plain file name", path)
	}
	if opt.BusyTimeout <= 0 {
		opt.BusyTimeout = 10 * time.Second
	}
	if opt.Readers <= 0 {
		opt.Readers = 4
	}
	base := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)", path, opt.BusyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", base+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open index database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	c := &conn{w: w}
	ctx, cancel := context.WithTimeout(context.Background(), opt.BusyTimeout+30*time.Second)
	defer cancel()
	ms, err := sqlstore.LoadMigrations(migrations, "migrations")
	if err == nil {
		err = sqlstore.Migrate(ctx, c, ms)
	}
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open index database %s: %w", path, err)
	}
	// Readers open after the writer has set WAL mode and the schema.
	r, err := sql.Open("sqlite", base+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open index database: %w", err)
	}
	r.SetMaxOpenConns(opt.Readers)
	r.SetMaxIdleConns(opt.Readers)
	c.r = r
	return &DB{sqlstore.New(c, sqlstore.Options{Timeout: opt.Timeout, Now: opt.Now})}, nil
}

// conn adapts database/sql to sqlstore.Conn: reads on the reader pool,
// writes on the single writer connection.
type conn struct {
	w, r *sql.DB
}

func (c *conn) reader() *sql.DB {
	if c.r != nil {
		return c.r
	}
	return c.w
}

func (c *conn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := c.w.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (c *conn) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := c.reader().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (c *conn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return sqlRow{c.reader().QueryRowContext(ctx, query, args...)}
}

func (c *conn) Begin(ctx context.Context) (sqlstore.Tx, error) {
	tx, err := c.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &sqlTx{tx: tx, stmts: map[string]*sql.Stmt{}}, nil
}

func (c *conn) Close() error {
	var err error
	if c.r != nil {
		err = c.r.Close()
	}
	return errors.Join(err, c.w.Close())
}

// sqlTx is a write transaction. It prepares each statement once, the
// first time it runs, for the rest of the batch.
type sqlTx struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func (t *sqlTx) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	st, err := t.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	t.stmts[query] = st
	return st, nil
}

func (t *sqlTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if len(args) == 0 {
		res, err = t.tx.ExecContext(ctx, query)
	} else {
		var st *sql.Stmt
		if st, err = t.prepared(ctx, query); err == nil {
			res, err = st.ExecContext(ctx, args...)
		}
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Batch runs the statements one by one: they cost no round trips here.
func (t *sqlTx) Batch(ctx context.Context, stmts []sqlstore.Stmt) ([]int64, error) {
	n := make([]int64, len(stmts))
	for i, st := range stmts {
		var err error
		if n[i], err = t.Exec(ctx, st.Query, st.Args...); err != nil {
			return nil, fmt.Errorf("statement %d of %d: %w", i+1, len(stmts), err)
		}
	}
	return n, nil
}

func (t *sqlTx) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	st, err := t.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (t *sqlTx) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return sqlRow{t.tx.QueryRowContext(ctx, query, args...)}
}

func (t *sqlTx) Commit(context.Context) error   { return t.tx.Commit() }
func (t *sqlTx) Rollback(context.Context) error { return t.tx.Rollback() }

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

type sqlRow struct{ *sql.Row }

func (r sqlRow) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return sqlstore.ErrNoRows
	}
	return err
}
