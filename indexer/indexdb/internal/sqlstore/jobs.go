package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

const jobCols = `job_id, requester, kind, attempts, first_seen, outcome, provider, price, escrow_state, escrow_check`

func scanJob(r Row) (indexdb.JobSummary, error) {
	var j indexdb.JobSummary
	var first, price int64
	err := r.Scan(&j.JobID, &j.Requester, &j.Kind, &j.Attempts, &first, &j.Outcome, &j.Provider, &price,
		&j.EscrowState, &j.EscrowCheck)
	j.FirstSeen, j.Price = fromTS(first), uint64(price)
	return j, err
}

// keyset is the WHERE term of a page after a cursor in (time DESC, key
// DESC) order. Its first conjunct lets an index seek to the cursor.
func keyset(timeCol, keyCol string) string {
	return fmt.Sprintf("%s <= ? AND (%s < ? OR %s < ?)", timeCol, timeCol, keyCol)
}

// Jobs lists jobs, newest first.
func (s *Store) Jobs(ctx context.Context, q indexdb.JobQuery) (indexdb.Page[indexdb.JobSummary], error) {
	var page indexdb.Page[indexdb.JobSummary]
	limit, err := indexdb.Limit(q.Limit)
	if err != nil {
		return page, fmt.Errorf("jobs: %w", err)
	}
	if err := checkFilters("requester", q.Requester, "provider", q.Provider, "outcome", q.Outcome, "kind", q.Kind); err != nil {
		return page, fmt.Errorf("jobs: %w", err)
	}
	cur, after, err := indexdb.DecodeCursor("jobs", q.Cursor)
	if err != nil {
		return page, fmt.Errorf("jobs: %w", err)
	}
	var where []string
	var args []any
	for _, f := range []struct{ col, v string }{{"requester", q.Requester}, {"provider", q.Provider},
		{"outcome", q.Outcome}, {"kind", q.Kind}} {
		if f.v != "" {
			where, args = append(where, f.col+" = ?"), append(args, f.v)
		}
	}
	if !q.Since.IsZero() {
		where, args = append(where, "first_seen >= ?"), append(args, ts(q.Since))
	}
	if after {
		where, args = append(where, keyset("first_seen", "job_id")), append(args, cur.Time, cur.Time, cur.Key)
	}
	query := `SELECT ` + jobCols + ` FROM jobs`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY first_seen DESC, job_id DESC LIMIT ?"
	ctx, cancel := s.bound(ctx)
	defer cancel()
	items, err := collect(rowsOf(s.c.Query(ctx, query, append(args, limit+1)...)), func(r Rows) (indexdb.JobSummary, error) { return scanJob(r) })
	if err != nil {
		return page, fmt.Errorf("jobs: %w", err)
	}
	if len(items) > limit {
		items = items[:limit]
		last := items[limit-1]
		page.Next = indexdb.Cursor{Kind: "jobs", Time: ts(last.FirstSeen), Key: last.JobID}.Encode()
	}
	page.Items = items
	return page, nil
}

// Job is one job with its announcements, receipts and checks.
func (s *Store) Job(ctx context.Context, id string) (indexdb.JobDetail, error) {
	var d indexdb.JobDetail
	if !indexdb.Storable(id) {
		return d, fmt.Errorf("job %q: %w", id, indexdb.ErrNotFound)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var err error
	d.Announcements, err = collect(rowsOf(s.c.Query(ctx, `SELECT `+announcementCols+` FROM announcements WHERE job_id = ? ORDER BY attempt`, id)), scanAnnouncement)
	if err != nil {
		return d, fmt.Errorf("job %s: announcements: %w", id, err)
	}
	d.Receipts, err = collect(rowsOf(s.c.Query(ctx, `SELECT `+receiptCols+` FROM receipts WHERE job_id = ? ORDER BY attempt, issued_at, id`, id)), scanReceipt)
	if err != nil {
		return d, fmt.Errorf("job %s: receipts: %w", id, err)
	}
	d.Checks, err = collect(rowsOf(s.c.Query(ctx, `SELECT receipt_id, state, detail, checked_at FROM escrow_checks WHERE job_id = ? ORDER BY checked_at, id`, id)),
		func(r Rows) (indexdb.EscrowCheck, error) {
			var c indexdb.EscrowCheck
			var at int64
			err := r.Scan(&c.ReceiptID, &c.State, &c.Detail, &at)
			c.CheckedAt = fromTS(at)
			return c, err
		})
	if err != nil {
		return d, fmt.Errorf("job %s: checks: %w", id, err)
	}
	// The summary is read last: a commit seen by the reads above is seen by
	// this one too, so the summary reflects every receipt listed.
	d.JobSummary, err = scanJob(s.c.QueryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE job_id = ?`, id))
	if err == ErrNoRows {
		return d, fmt.Errorf("job %s: %w", id, indexdb.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("job %s: %w", id, err)
	}
	return d, nil
}

// UncheckedEscrows lists receipts whose escrow no check has looked at yet.
func (s *Store) UncheckedEscrows(ctx context.Context, limit int) ([]indexdb.Receipt, error) {
	limit, err := indexdb.Limit(limit)
	if err != nil {
		return nil, fmt.Errorf("unchecked escrows: %w", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rs, err := collect(rowsOf(s.c.Query(ctx, `SELECT `+receiptCols+` FROM receipts WHERE escrow_pending ORDER BY seen_at, id LIMIT ?`, limit)), scanReceipt)
	if err != nil {
		return nil, fmt.Errorf("unchecked escrows: %w", err)
	}
	return rs, nil
}
