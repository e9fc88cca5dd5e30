// Package pgdb is the indexer's database in PostgreSQL, through pgx's
// connection pool. Every call is bounded twice: by a deadline on its
// context (Options.Timeout) and by the server's statement_timeout, so a
// slow or unreachable server gives an error, never a stall. Writes are
// serialized by a transaction-scoped advisory lock, each batch in one
// transaction. The schema is migrated on Open from the numbered files of
// migrations/, under the same lock, so that two indexers opening one
// database at once migrate it once.
package pgdb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// writeLock is the advisory lock key of the indexer's writers.
const writeLock = 0x637978_696e6478 // "cyx" "indx"

// Options tune a database; the zero value is the defaults.
type Options struct {
	// Timeout bounds every call whose context has no earlier deadline.
	// Default 30 seconds.
	Timeout time.Duration
	// StatementTimeout is the server's statement_timeout for the pool's
	// sessions. Default 30 seconds.
	StatementTimeout time.Duration
	// ConnectTimeout bounds each connection attempt. Default 5 seconds.
	ConnectTimeout time.Duration
	// MaxConns is the size of the pool; 0 means pgxpool's default.
	MaxConns int32
	// Now is the clock of uptimes and of times left zero. Default time.Now.
	Now func() time.Time
}

// DB is an indexdb.Store in PostgreSQL.
type DB struct {
	*sqlstore.Store
	pool *pgxpool.Pool
}

var _ indexdb.Store = (*DB)(nil)

// Open connects to the database of dsn (a postgres:// URL or key=value
// string) with the default options, and migrates its schema.
func Open(ctx context.Context, dsn string) (*DB, error) {
	return OpenOptions(ctx, dsn, Options{})
}

// OpenOptions connects to the database of dsn and migrates its schema.
func OpenOptions(ctx context.Context, dsn string, opt Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open index database: %w", err)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	if opt.StatementTimeout <= 0 {
		opt.StatementTimeout = 30 * time.Second
	}
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = 5 * time.Second
	}
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	cfg.ConnConfig.ConnectTimeout = opt.ConnectTimeout
	ms := strconv.FormatInt(opt.StatementTimeout.Milliseconds(), 10)
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = ms
	cfg.ConnConfig.RuntimeParams["lock_timeout"] = ms
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = ms
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open index database: %w", err)
	}
	c := &conn{pool: pool, statementTimeout: opt.StatementTimeout}
	migs, err := sqlstore.LoadMigrations(migrations, "migrations")
	if err == nil {
		err = sqlstore.Migrate(ctx, c, migs)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open index database: %w", err)
	}
	return &DB{Store: sqlstore.New(c, sqlstore.Options{Timeout: opt.Timeout, Now: opt.Now}), pool: pool}, nil
}

// Pool is the database's connection pool, for tools (bulk loads, checks)
// that need more than the Store.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// conn adapts a pgx pool to sqlstore.Conn.
type conn struct {
	pool             *pgxpool.Pool
	statementTimeout time.Duration
}

// rebound caches the $n forms of the ? queries.
var rebound sync.Map

// rebind turns the ? placeholders of a query into $1, $2, ...; the queries
// of sqlstore hold no ? in literals.
func rebind(q string) string {
	if v, ok := rebound.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	rebound.Store(q, b.String())
	return b.String()
}

func (c *conn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := c.pool.Exec(ctx, rebind(query), args...)
	return tag.RowsAffected(), err
}

func (c *conn) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return c.pool.Query(ctx, rebind(query), args...)
}

func (c *conn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return row{c.pool.QueryRow(ctx, rebind(query), args...)}
}

func (c *conn) Begin(ctx context.Context) (sqlstore.Tx, error) {
	t, err := c.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	// The server itself gives up on the transaction's statements, and on
	// its waits for locks, when the caller's deadline passes: pgx does not
	// interrupt every step of a batch when the context ends.
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < c.statementTimeout {
		ms := strconv.FormatInt(max(time.Until(dl).Milliseconds(), 1), 10)
		if _, err := t.Exec(ctx, "SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $1, true)", ms); err != nil {
			_ = t.Rollback(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("transaction timeout: %w", err)
		}
	}
	if _, err := t.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(writeLock)); err != nil {
		_ = t.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("write lock: %w", err)
	}
	return tx{t}, nil
}

func (c *conn) Close() error {
	c.pool.Close()
	return nil
}

type tx struct{ t pgx.Tx }

func (t tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := t.t.Exec(ctx, rebind(query), args...)
	return tag.RowsAffected(), err
}

// Batch sends the statements in one round trip (pgx's pipeline), run in
// order within the transaction.
func (t tx) Batch(ctx context.Context, stmts []sqlstore.Stmt) ([]int64, error) {
	if len(stmts) == 0 {
		return nil, nil
	}
	var b pgx.Batch
	for _, st := range stmts {
		b.Queue(rebind(st.Query), st.Args...)
	}
	br := t.t.SendBatch(ctx, &b)
	n := make([]int64, len(stmts))
	for i := range stmts {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return nil, fmt.Errorf("statement %d of %d: %w", i+1, len(stmts), err)
		}
		n[i] = tag.RowsAffected()
	}
	if err := br.Close(); err != nil {
		return nil, err
	}
	return n, nil
}

func (t tx) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return t.t.Query(ctx, rebind(query), args...)
}

func (t tx) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return row{t.t.QueryRow(ctx, rebind(query), args...)}
}

func (t tx) Commit(ctx context.Context) error   { return t.t.Commit(ctx) }
func (t tx) Rollback(ctx context.Context) error { return t.t.Rollback(ctx) }

type row struct{ r pgx.Row }

func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return sqlstore.ErrNoRows
	}
	return err
}
