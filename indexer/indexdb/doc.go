// Package indexdb is the indexer's database: the swarm's history as an
// indexer sees it (capacity records over time, job announcements, signed job
// receipts, the ledger's word on their escrows, and the model registry),
// behind one Store interface with an embedded SQLite implementation
// (indexdb/sqlitedb) and a PostgreSQL one (indexdb/pgdb) that pass one
// conformance suite (indexdb/indexdbtest).
//
// The package holds the types, the interface, its errors, and the checks of
// query bounds and records that every implementation applies, so that a
// query's cost stays bounded whatever its caller asks: pages hold at most
// MaxPageSize items, series at most MaxSeriesPoints buckets, and cursors are
// opaque tokens that a forged one can only turn into ErrBadQuery. The schema
// is described in docs/indexer.md.
package indexdb
