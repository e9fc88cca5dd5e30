package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

const insertAnnouncement = `INSERT INTO announcements (job_id, attempt, requester, kind, cpu, memory_mib, gpus,
	wall_seconds, max_price, mint, issued_at, seen_at, record)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// upsertJob folds an announcement or a receipt into the job's summary row:
// the first requester and kind stay, attempts is the highest, and the
// latest receipt (by attempt, issued_at, id) names the outcome. An
// announcement passes r_attempt -1, which no receipt loses to. A row of
// another requester than the job's changes nothing: a stranger's receipt
// does not take over a job.
const upsertJob = `INSERT INTO jobs (job_id, requester, kind, attempts, first_seen, r_attempt, r_issued, r_id,
	outcome, provider, price, escrow_state, escrow_check)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')
	ON CONFLICT (job_id) DO UPDATE SET
	requester = CASE WHEN jobs.requester = '' THEN excluded.requester ELSE jobs.requester END,
	kind = CASE WHEN jobs.kind = '' THEN excluded.kind ELSE jobs.kind END,
	attempts = CASE WHEN excluded.attempts > jobs.attempts THEN excluded.attempts ELSE jobs.attempts END,
	outcome = CASE WHEN (excluded.r_attempt, excluded.r_issued, excluded.r_id) > (jobs.r_attempt, jobs.r_issued, jobs.r_id) THEN excluded.outcome ELSE jobs.outcome END,
	provider = CASE WHEN (excluded.r_attempt, excluded.r_issued, excluded.r_id) > (jobs.r_attempt, jobs.r_issued, jobs.r_id) THEN excluded.provider ELSE jobs.provider END,
	price = CASE WHEN (excluded.r_attempt, excluded.r_issued, excluded.r_id) > (jobs.r_attempt, jobs.r_issued, jobs.r_id) THEN excluded.price ELSE jobs.price END,
	escrow_state = CASE WHEN (excluded.r_attempt, excluded.r_issued, excluded.r_id) > (jobs.r_attempt, jobs.r_issued, jobs.r_id) THEN excluded.escrow_state ELSE jobs.escrow_state END,
	escrow_check = CASE WHEN (excluded.r_attempt, excluded.r_issued, excluded.r_id) > (jobs.r_attempt, jobs.r_issued, jobs.r_id) THEN '' ELSE jobs.escrow_check END,
	r_id = CASE WHEN (excluded.r_attempt, excluded.r_issued, excluded.r_id) > (jobs.r_attempt, jobs.r_issued, jobs.r_id) THEN excluded.r_id ELSE jobs.r_id END,
	r_issued = CASE WHEN (excluded.r_attempt, excluded.r_issued, excluded.r_id) > (jobs.r_attempt, jobs.r_issued, jobs.r_id) THEN excluded.r_issued ELSE jobs.r_issued END,
	r_attempt = CASE WHEN excluded.r_attempt > jobs.r_attempt THEN excluded.r_attempt ELSE jobs.r_attempt END
	WHERE jobs.requester = '' OR jobs.requester = excluded.requester`

// AddAnnouncements stores job announcements, skipping those already
// stored.
func (s *Store) AddAnnouncements(ctx context.Context, anns []indexdb.Announcement) error {
	for i, a := range anns {
		if err := a.Check(); err != nil {
			return fmt.Errorf("add announcements: announcement %d: %w", i, err)
		}
	}
	if len(anns) == 0 {
		return nil
	}
	now := s.opt.Now()
	anns = slices.Clone(anns)
	inserts := make([]Stmt, len(anns))
	for i := range anns {
		if anns[i].SeenAt.IsZero() {
			anns[i].SeenAt = now
		}
		a := anns[i]
		inserts[i] = Stmt{insertAnnouncement, []any{a.JobID, a.Attempt, a.Requester, a.Kind, a.CPU, a.MemoryMiB, a.GPUs,
			a.WallSeconds, int64(a.MaxPrice), a.Mint, ts(a.IssuedAt), ts(a.SeenAt), blob(a.Record)}}
	}
	return s.write(ctx, "add announcements", func(tx Tx) error {
		n, err := tx.Batch(ctx, inserts)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		var derived []Stmt
		for i, a := range anns {
			if n[i] == 0 {
				continue
			}
			derived = append(derived,
				Stmt{upsertJob, []any{a.JobID, a.Requester, a.Kind, a.Attempt, ts(a.SeenAt), -1, 0, "", "", "", 0, ""}},
				Stmt{upsertAnnouncementHour, []any{hourOf(ts(a.SeenAt))}})
		}
		if _, err := tx.Batch(ctx, derived); err != nil {
			return fmt.Errorf("jobs: %w", err)
		}
		return nil
	})
}

const upsertAnnouncementHour = `INSERT INTO announcement_hours (hour, jobs) VALUES (?, 1)
	ON CONFLICT (hour) DO UPDATE SET jobs = announcement_hours.jobs + 1`

const insertReceipt = `INSERT INTO receipts (id, job_id, attempt, requester, provider, kind, outcome, fault, reason,
	price, mint, escrow_state, escrow_tx, outputs, started_at, ended_at, issued_at, seen_at, countersigned,
	escrow_pending, record)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// insertProviderAttempt claims an attempt for the provider's figures: the
// first countersigned receipt of (job, attempt, requester) counts.
const insertProviderAttempt = `INSERT INTO provider_attempts (job_id, attempt, requester, provider, receipt_id)
	VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

const upsertProviderJobs = `INSERT INTO provider_jobs (peer, jobs, succeeded, failed, mismatches) VALUES (?, 1, ?, ?, ?)
	ON CONFLICT (peer) DO UPDATE SET jobs = provider_jobs.jobs + 1,
	succeeded = provider_jobs.succeeded + excluded.succeeded, failed = provider_jobs.failed + excluded.failed,
	mismatches = provider_jobs.mismatches + excluded.mismatches`

// Outcomes and faults that the provider statistics count.
const (
	outcomeSucceeded = "succeeded"
	outcomeMismatch  = "mismatch"
	faultProvider    = "provider"
)

// AddReceipts stores receipts, skipping those already stored.
func (s *Store) AddReceipts(ctx context.Context, rs []indexdb.Receipt) error {
	for i, r := range rs {
		if err := r.Check(); err != nil {
			return fmt.Errorf("add receipts: receipt %d: %w", i, err)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	now := s.opt.Now()
	rs = slices.Clone(rs)
	inserts := make([]Stmt, len(rs))
	for i := range rs {
		if rs[i].SeenAt.IsZero() {
			rs[i].SeenAt = now
		}
		r := rs[i]
		outputs := ""
		if len(r.Outputs) > 0 {
			b, _ := json.Marshal(r.Outputs) // strings cannot fail
			outputs = string(b)
		}
		inserts[i] = Stmt{insertReceipt, []any{r.ID, r.JobID, r.Attempt, r.Requester, r.Provider, r.Kind, r.Outcome,
			r.Fault, r.Reason, int64(r.Price), r.Mint, r.EscrowState, r.EscrowTx, outputs, ts(r.StartedAt),
			ts(r.EndedAt), ts(r.IssuedAt), ts(r.SeenAt), r.Countersigned, r.EscrowState != "", blob(r.Record)}}
	}
	return s.write(ctx, "add receipts", func(tx Tx) error {
		n, err := tx.Batch(ctx, inserts)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		var derived, claims []Stmt
		var claimed []indexdb.Receipt
		for i, r := range rs {
			if n[i] == 0 {
				continue
			}
			derived = append(derived, Stmt{upsertJob, []any{r.JobID, r.Requester, r.Kind, r.Attempt, ts(r.SeenAt),
				r.Attempt, ts(r.IssuedAt), r.ID, r.Outcome, r.Provider, int64(r.Price), r.EscrowState}})
			// Only what the provider countersigned counts for it, once
			// an attempt.
			if r.Provider != "" && r.Countersigned {
				claims = append(claims, Stmt{insertProviderAttempt, []any{r.JobID, r.Attempt, r.Requester, r.Provider, r.ID}})
				claimed = append(claimed, r)
			}
		}
		if _, err := tx.Batch(ctx, derived); err != nil {
			return fmt.Errorf("jobs: %w", err)
		}
		won, err := tx.Batch(ctx, claims)
		if err != nil {
			return fmt.Errorf("provider attempts: %w", err)
		}
		derived = derived[:0]
		for i, r := range claimed {
			if won[i] == 0 {
				continue
			}
			var ok, failed, mismatch int
			switch {
			case r.Outcome == outcomeSucceeded:
				ok = 1
			case r.Outcome == outcomeMismatch:
				mismatch = 1
			case r.Fault == faultProvider:
				failed = 1
			}
			derived = append(derived, Stmt{upsertProviderJobs, []any{r.Provider, ok, failed, mismatch}})
		}
		if _, err := tx.Batch(ctx, derived); err != nil {
			return fmt.Errorf("jobs: %w", err)
		}
		return nil
	})
}

const insertModel = `INSERT INTO models (id, publisher, name, description, license, weights_cid, spec, metrics,
	job_id, receipt_id, published_at, seen_at, search, record)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// AddModels stores model records, skipping those already stored.
func (s *Store) AddModels(ctx context.Context, ms []indexdb.Model) error {
	metrics := make([]string, len(ms))
	for i, m := range ms {
		if err := m.Check(); err != nil {
			return fmt.Errorf("add models: model %d: %w", i, err)
		}
		if len(m.Metrics) > 0 {
			b, err := json.Marshal(m.Metrics)
			if err != nil {
				return fmt.Errorf("add models: model %d: %w: metrics: %w", i, indexdb.ErrBadRecord, err)
			}
			metrics[i] = string(b)
		}
	}
	if len(ms) == 0 {
		return nil
	}
	now := s.opt.Now()
	inserts := make([]Stmt, len(ms))
	for i, m := range ms {
		if m.SeenAt.IsZero() {
			m.SeenAt = now
		}
		search := strings.ToLower(m.Name + "\n" + m.Description)
		inserts[i] = Stmt{insertModel, []any{m.ID, m.Publisher, m.Name, m.Description, m.License, m.WeightsCID,
			blob(m.Spec), metrics[i], m.JobID, m.ReceiptID, ts(m.PublishedAt), ts(m.SeenAt), search, blob(m.Record)}}
	}
	return s.write(ctx, "add models", func(tx Tx) error {
		if _, err := tx.Batch(ctx, inserts); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		return nil
	})
}

// SetEscrowCheck records a check of a receipt's escrow.
func (s *Store) SetEscrowCheck(ctx context.Context, c indexdb.EscrowCheck) error {
	if err := c.Check(); err != nil {
		return fmt.Errorf("set escrow check: %w", err)
	}
	if c.CheckedAt.IsZero() {
		c.CheckedAt = s.opt.Now()
	}
	return s.write(ctx, "set escrow check", func(tx Tx) error {
		var job string
		err := tx.QueryRow(ctx, `UPDATE receipts SET escrow_pending = FALSE WHERE id = ? RETURNING job_id`, c.ReceiptID).Scan(&job)
		if err == ErrNoRows {
			return fmt.Errorf("receipt %s: %w", c.ReceiptID, indexdb.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO escrow_checks (receipt_id, job_id, state, detail, checked_at) VALUES (?, ?, ?, ?, ?)`,
			c.ReceiptID, job, c.State, c.Detail, ts(c.CheckedAt)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE jobs SET escrow_check = ? WHERE job_id = ? AND r_id = ?`, c.State, job, c.ReceiptID)
		return err
	})
}
