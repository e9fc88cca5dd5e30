package indexdb

import (
	"context"
	"errors"
)

// Store is the indexer's database. Every implementation passes the
// conformance suite of indexdb/indexdbtest.
type Store interface {
	// AddCapacity, AddAnnouncements, AddReceipts and AddModels ingest a
	// batch, in one transaction. They are idempotent: a row already present
	// (Capacity by (Peer, Seq); Announcement by (JobID, Attempt); Receipt
	// and Model by ID) is skipped, not an error. A record that fails its
	// Check fails the whole batch with ErrBadRecord.
	AddCapacity(ctx context.Context, recs []Capacity) error
	AddAnnouncements(ctx context.Context, anns []Announcement) error
	AddReceipts(ctx context.Context, rs []Receipt) error
	AddModels(ctx context.Context, ms []Model) error
	// SetEscrowCheck records the ledger's word on a receipt's escrow
	// transaction; checks accumulate. ErrNotFound if the receipt is not
	// stored.
	SetEscrowCheck(ctx context.Context, c EscrowCheck) error
	// UncheckedEscrows lists receipts that name an escrow (EscrowState
	// set, with or without an EscrowTx) and have no check yet,
	// oldest (by SeenAt) first, at most limit (0 means DefaultPageSize).
	UncheckedEscrows(ctx context.Context, limit int) ([]Receipt, error)

	// Providers lists the providers with at least one capacity record.
	Providers(ctx context.Context, q ProviderQuery) (Page[ProviderSummary], error)
	// Provider is one provider, by peer ID: one with a capacity record or
	// a receipt that names it; ErrNotFound otherwise.
	Provider(ctx context.Context, peer string) (ProviderDetail, error)
	// Jobs lists jobs, newest first.
	Jobs(ctx context.Context, q JobQuery) (Page[JobSummary], error)
	// Job is one job, by ID; ErrNotFound if no announcement or receipt
	// names it.
	Job(ctx context.Context, id string) (JobDetail, error)
	// Prices is a price series, one point per bucket, empty buckets
	// included (with Providers 0).
	Prices(ctx context.Context, q SeriesQuery) ([]PricePoint, error)
	// SwarmSize is the swarm's size, one point per bucket, empty buckets
	// included.
	SwarmSize(ctx context.Context, q SeriesQuery) ([]SizePoint, error)
	// Models lists models, newest first, searched by text over name and
	// description (a case-insensitive substring).
	Models(ctx context.Context, q ModelQuery) (Page[Model], error)
	// Model is one model, by ID; ErrNotFound if not stored.
	Model(ctx context.Context, id string) (Model, error)
	// Stats counts the rows of each table.
	Stats(ctx context.Context) (Stats, error)
	// Close closes the database; it is idempotent.
	Close() error
}

// Errors of a Store. Each is wrapped with what it is about.
var (
	// ErrNotFound is returned for a row that is not stored.
	ErrNotFound = errors.New("not found")
	// ErrBadQuery is returned for a query out of bounds: a limit out of
	// range, a bad cursor, a series too long, an unknown resource.
	ErrBadQuery = errors.New("bad query")
	// ErrBadRecord is returned for a record that cannot be stored as it is:
	// an empty key, a value out of the database's range, an ID that is not
	// the SHA-256 of the record.
	ErrBadRecord = errors.New("bad record")
	// ErrSchemaTooNew is returned by Open for a database whose schema is of
	// a newer version than the code knows.
	ErrSchemaTooNew = errors.New("database schema is newer than this program")
)

// Bounds of a query.
const (
	// MaxPageSize is the largest Limit of a listing.
	MaxPageSize = 500
	// DefaultPageSize is the page size of a Limit of 0.
	DefaultPageSize = 50
	// MaxSeriesPoints is the most buckets a series may have.
	MaxSeriesPoints = 2000
	// MaxCursorLen bounds the length of a cursor.
	MaxCursorLen = 512
	// MaxFilterLen bounds the length of a text filter.
	MaxFilterLen = 256
	// DetailRows is the most rows of each list of a ProviderDetail.
	DetailRows = 100
)
