// Package sqlstore is the indexdb.Store both SQL drivers share: the queries,
// written once with ? placeholders in the SQL that SQLite and PostgreSQL
// both speak, over a small connection interface that each driver adapts
// (sqlitedb to database/sql, pgdb to pgx), and the migration runner.
package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

// ErrNoRows is what a Row's Scan returns when the query found no row.
var ErrNoRows = errors.New("no rows")

// Rows is the result of a query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is the result of a query of one row; its Scan returns ErrNoRows when
// there is none.
type Row interface {
	Scan(dest ...any) error
}

// Querier runs statements, with ? placeholders.
type Querier interface {
	// Exec runs a statement and says how many rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Stmt is one statement of a Batch, with ? placeholders.
type Stmt struct {
	Query string
	Args  []any
}

// Tx is a write transaction.
type Tx interface {
	Querier
	// Batch runs statements in order and says how many rows each changed;
	// a driver may send them to the server together.
	Batch(ctx context.Context, stmts []Stmt) ([]int64, error)
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Conn is a database: reads go to Querier, writes to the transactions of
// Begin, which the driver serializes (one writer at a time).
type Conn interface {
	Querier
	Begin(ctx context.Context) (Tx, error)
	Close() error
}

// Options tune a Store.
type Options struct {
	// Timeout bounds every call whose context has no earlier deadline.
	// Default 30 seconds.
	Timeout time.Duration
	// Now is the clock of Uptime and of a SeenAt left zero. Default
	// time.Now.
	Now func() time.Time
}

// Store is the indexdb.Store over a Conn.
type Store struct {
	c    Conn
	opt  Options
	once sync.Once
	cerr error
}

var _ indexdb.Store = (*Store)(nil)

// New makes the Store of a migrated Conn; Close closes the Conn.
func New(c Conn, opt Options) *Store {
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Store{c: c, opt: opt}
}

// Close closes the connection; it is idempotent.
func (s *Store) Close() error {
	s.once.Do(func() { s.cerr = s.c.Close() })
	return s.cerr
}

func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opt.Timeout)
}

// write runs f in one write transaction, committed if f succeeds.
func (s *Store) write(ctx context.Context, what string, f func(tx Tx) error) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tx, err := s.c.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(ctx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

// ts is a time as stored: unix nanoseconds, 0 for the zero time.
func ts(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromTS is a stored time read back, in UTC.
func fromTS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// blob is a byte slice as stored: never nil, so that NOT NULL holds.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// unblob is a stored byte slice read back: nil when empty.
func unblob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// likeEscape escapes the LIKE wildcards of user text, for ESCAPE '\'.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// placeholders is "?, ?, ..." of n.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
