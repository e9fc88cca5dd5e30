package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

const insertCapacity = `INSERT INTO capacity (peer, seq, issued_at, expires_at, seen_at, cpu_cores, memory_mib,
	disk_mib, gpus, executors, price_cpu_second, price_minimum, mint, bench_score, record)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// upsertProvider counts a new record of a provider; the latest record's
// filter columns follow the highest seq.
const upsertProvider = `INSERT INTO providers (peer, first_seen, last_seen, records, latest_seq, gpu_models, executors)
	VALUES (?, ?, ?, 1, ?, ?, ?)
	ON CONFLICT (peer) DO UPDATE SET
	first_seen = CASE WHEN excluded.first_seen < providers.first_seen THEN excluded.first_seen ELSE providers.first_seen END,
	last_seen = CASE WHEN excluded.last_seen > providers.last_seen THEN excluded.last_seen ELSE providers.last_seen END,
	records = providers.records + 1,
	gpu_models = CASE WHEN excluded.latest_seq > providers.latest_seq THEN excluded.gpu_models ELSE providers.gpu_models END,
	executors = CASE WHEN excluded.latest_seq > providers.latest_seq THEN excluded.executors ELSE providers.executors END,
	latest_seq = CASE WHEN excluded.latest_seq > providers.latest_seq THEN excluded.latest_seq ELSE providers.latest_seq END`

// AddCapacity stores capacity records, skipping those already stored.
func (s *Store) AddCapacity(ctx context.Context, recs []indexdb.Capacity) error {
	for i, c := range recs {
		if err := c.Check(); err != nil {
			return fmt.Errorf("add capacity: record %d: %w", i, err)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	now := s.opt.Now()
	return s.write(ctx, "add capacity", func(tx Tx) error {
		hours := map[int64]bool{}
		for _, c := range recs {
			if c.SeenAt.IsZero() {
				c.SeenAt = now
			}
			gpus, execs := "", ""
			if len(c.GPUs) > 0 {
				b, _ := json.Marshal(c.GPUs) // strings and ints cannot fail
				gpus = string(b)
			}
			if len(c.Executors) > 0 {
				b, _ := json.Marshal(c.Executors)
				execs = string(b)
			}
			n, err := tx.Exec(ctx, insertCapacity, c.Peer, int64(c.Seq), ts(c.IssuedAt), ts(c.ExpiresAt), ts(c.SeenAt),
				c.CPUCores, c.MemoryMiB, c.DiskMiB, gpus, execs, int64(c.PricePerCPUSecond), int64(c.PriceMinimum),
				c.Mint, c.BenchScore, blob(c.Record))
			if err != nil {
				return fmt.Errorf("insert %s/%d: %w", c.Peer, c.Seq, err)
			}
			if n == 0 {
				continue
			}
			if _, err := tx.Exec(ctx, upsertProvider, c.Peer, ts(c.SeenAt), ts(c.SeenAt), int64(c.Seq),
				gpuModels(c.GPUs), executorList(c.Executors)); err != nil {
				return fmt.Errorf("provider %s: %w", c.Peer, err)
			}
			if err := addCover(ctx, tx, c.Peer, ts(c.IssuedAt), ts(c.ExpiresAt)); err != nil {
				return fmt.Errorf("cover of %s: %w", c.Peer, err)
			}
			h := hourOf(ts(c.SeenAt))
			if _, err := tx.Exec(ctx, upsertCapacityHour, h, c.Peer, int64(c.Seq), int64(c.PricePerCPUSecond), int64(c.PriceMinimum)); err != nil {
				return fmt.Errorf("hour of %s/%d: %w", c.Peer, c.Seq, err)
			}
			hours[h] = true
		}
		for h := range hours {
			if err := refreshPriceHour(ctx, tx, h); err != nil {
				return fmt.Errorf("prices of hour %d: %w", h, err)
			}
		}
		return nil
	})
}

// hourOf is the roll-ups' hour of a stored time: floor(ns / 1 h).
func hourOf(ns int64) int64 {
	h := ns / int64(time.Hour)
	if ns%int64(time.Hour) < 0 {
		h--
	}
	return h
}

// upsertCapacityHour keeps the latest record of each provider in each hour.
const upsertCapacityHour = `INSERT INTO capacity_hours (hour, peer, seq, price_cpu_second, price_minimum) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (hour, peer) DO UPDATE SET seq = excluded.seq, price_cpu_second = excluded.price_cpu_second,
	price_minimum = excluded.price_minimum WHERE excluded.seq > capacity_hours.seq`

const upsertPriceHour = `INSERT INTO price_hours (hour, resource, providers, min_price, median_price, max_price)
	VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hour, resource) DO UPDATE SET providers = excluded.providers,
	min_price = excluded.min_price, median_price = excluded.median_price, max_price = excluded.max_price`

// refreshPriceHour recomputes the price statistics of an hour from the
// latest record of each provider in it.
func refreshPriceHour(ctx context.Context, tx Tx, hour int64) error {
	for _, r := range []struct{ name, col string }{{indexdb.ResourceCPUSecond, "price_cpu_second"}, {indexdb.ResourceMinimum, "price_minimum"}} {
		rows, err := tx.Query(ctx, `SELECT `+r.col+` FROM capacity_hours WHERE hour = ? ORDER BY `+r.col, hour)
		if err != nil {
			return err
		}
		var prices []int64
		for rows.Next() {
			var p int64
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return err
			}
			prices = append(prices, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(prices) == 0 {
			continue
		}
		if _, err := tx.Exec(ctx, upsertPriceHour, hour, r.name, len(prices), prices[0], prices[(len(prices)-1)/2], prices[len(prices)-1]); err != nil {
			return err
		}
	}
	return nil
}

// gpuModels is the filter column of GPU models: each lower-cased, on a line.
func gpuModels(gs []indexdb.GPU) string {
	var b strings.Builder
	b.WriteString("\n")
	for _, g := range gs {
		b.WriteString(strings.ToLower(strings.ReplaceAll(g.Model, "\n", " ")) + "\n")
	}
	return b.String()
}

// executorList is the filter column of executors: each lower-cased, on a
// line.
func executorList(es []string) string {
	var b strings.Builder
	b.WriteString("\n")
	for _, e := range es {
		b.WriteString(strings.ToLower(strings.ReplaceAll(e, "\n", " ")) + "\n")
	}
	return b.String()
}

// addCover merges [start, end] into the union of a provider's record
// intervals, kept as disjoint intervals in provider_cover.
func addCover(ctx context.Context, tx Tx, peer string, start, end int64) error {
	if end <= start {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT start_ns, end_ns FROM provider_cover WHERE peer = ? AND start_ns <= ? AND end_ns >= ?`, peer, end, start)
	if err != nil {
		return err
	}
	var n int
	var oldStart, oldEnd int64
	ns, ne := start, end
	for rows.Next() {
		if err := rows.Scan(&oldStart, &oldEnd); err != nil {
			rows.Close()
			return err
		}
		n++
		ns, ne = min(ns, oldStart), max(ne, oldEnd)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	switch {
	case n == 1 && ns == oldStart && ne == oldEnd:
		return nil
	case n == 1:
		_, err = tx.Exec(ctx, `UPDATE provider_cover SET start_ns = ?, end_ns = ? WHERE peer = ? AND start_ns = ?`, ns, ne, peer, oldStart)
		return err
	case n > 1:
		if _, err := tx.Exec(ctx, `DELETE FROM provider_cover WHERE peer = ? AND start_ns <= ? AND end_ns >= ?`, peer, end, start); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO provider_cover (peer, start_ns, end_ns) VALUES (?, ?, ?)`, peer, ns, ne)
	return err
}

const insertAnnouncement = `INSERT INTO announcements (job_id, attempt, requester, kind, cpu, memory_mib, gpus,
	wall_seconds, max_price, mint, issued_at, seen_at, record)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// upsertJob folds an announcement or a receipt into the job's summary row:
// the first requester and kind stay, attempts is the highest, and the
// latest receipt (by attempt, issued_at, id) names the outcome. An
// announcement passes r_attempt -1, which no receipt loses to.
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
	r_attempt = CASE WHEN excluded.r_attempt > jobs.r_attempt THEN excluded.r_attempt ELSE jobs.r_attempt END`

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
	return s.write(ctx, "add announcements", func(tx Tx) error {
		for _, a := range anns {
			if a.SeenAt.IsZero() {
				a.SeenAt = now
			}
			n, err := tx.Exec(ctx, insertAnnouncement, a.JobID, a.Attempt, a.Requester, a.Kind, a.CPU, a.MemoryMiB, a.GPUs,
				a.WallSeconds, int64(a.MaxPrice), a.Mint, ts(a.IssuedAt), ts(a.SeenAt), blob(a.Record))
			if err != nil {
				return fmt.Errorf("insert %s/%d: %w", a.JobID, a.Attempt, err)
			}
			if n == 0 {
				continue
			}
			if _, err := tx.Exec(ctx, upsertJob, a.JobID, a.Requester, a.Kind, a.Attempt, ts(a.SeenAt),
				-1, 0, "", "", "", 0, ""); err != nil {
				return fmt.Errorf("job %s: %w", a.JobID, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO announcement_hours (hour, jobs) VALUES (?, 1)
				ON CONFLICT (hour) DO UPDATE SET jobs = announcement_hours.jobs + 1`, hourOf(ts(a.SeenAt))); err != nil {
				return fmt.Errorf("hour of %s: %w", a.JobID, err)
			}
		}
		return nil
	})
}

const insertReceipt = `INSERT INTO receipts (id, job_id, attempt, requester, provider, kind, outcome, fault, reason,
	price, mint, escrow_state, escrow_tx, outputs, started_at, ended_at, issued_at, seen_at, countersigned,
	escrow_pending, record)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

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
	return s.write(ctx, "add receipts", func(tx Tx) error {
		for _, r := range rs {
			if r.SeenAt.IsZero() {
				r.SeenAt = now
			}
			outputs := ""
			if len(r.Outputs) > 0 {
				b, _ := json.Marshal(r.Outputs)
				outputs = string(b)
			}
			n, err := tx.Exec(ctx, insertReceipt, r.ID, r.JobID, r.Attempt, r.Requester, r.Provider, r.Kind, r.Outcome,
				r.Fault, r.Reason, int64(r.Price), r.Mint, r.EscrowState, r.EscrowTx, outputs, ts(r.StartedAt),
				ts(r.EndedAt), ts(r.IssuedAt), ts(r.SeenAt), r.Countersigned, r.EscrowTx != "", blob(r.Record))
			if err != nil {
				return fmt.Errorf("insert %s: %w", r.ID, err)
			}
			if n == 0 {
				continue
			}
			if _, err := tx.Exec(ctx, upsertJob, r.JobID, r.Requester, r.Kind, r.Attempt, ts(r.SeenAt),
				r.Attempt, ts(r.IssuedAt), r.ID, r.Outcome, r.Provider, int64(r.Price), r.EscrowState); err != nil {
				return fmt.Errorf("job %s: %w", r.JobID, err)
			}
			if r.Provider == "" {
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
			if _, err := tx.Exec(ctx, upsertProviderJobs, r.Provider, ok, failed, mismatch); err != nil {
				return fmt.Errorf("provider %s: %w", r.Provider, err)
			}
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
	return s.write(ctx, "add models", func(tx Tx) error {
		for i, m := range ms {
			if m.SeenAt.IsZero() {
				m.SeenAt = now
			}
			search := strings.ToLower(m.Name + "\n" + m.Description)
			if _, err := tx.Exec(ctx, insertModel, m.ID, m.Publisher, m.Name, m.Description, m.License, m.WeightsCID,
				blob(m.Spec), metrics[i], m.JobID, m.ReceiptID, ts(m.PublishedAt), ts(m.SeenAt), search,
				blob(m.Record)); err != nil {
				return fmt.Errorf("insert %s: %w", m.ID, err)
			}
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
