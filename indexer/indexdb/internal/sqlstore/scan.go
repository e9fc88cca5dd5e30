package sqlstore

import (
	"encoding/json"
	"fmt"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

// capacityCols are the columns scanCapacity reads, after any others.
const capacityCols = `c.peer, c.seq, c.issued_at, c.expires_at, c.seen_at, c.cpu_cores, c.memory_mib, c.disk_mib,
	c.gpus, c.executors, c.price_cpu_second, c.price_minimum, c.mint, c.bench_score`

// capacityDest gives the scan destinations of capacityCols into c, and a
// func that finishes c after the scan.
func capacityDest(c *indexdb.Capacity) ([]any, func() error) {
	var seq, issued, expires, seen, price, minimum int64
	var gpus, execs string
	dest := []any{&c.Peer, &seq, &issued, &expires, &seen, &c.CPUCores, &c.MemoryMiB, &c.DiskMiB,
		&gpus, &execs, &price, &minimum, &c.Mint, &c.BenchScore}
	return dest, func() error {
		c.Seq, c.PricePerCPUSecond, c.PriceMinimum = uint64(seq), uint64(price), uint64(minimum)
		c.IssuedAt, c.ExpiresAt, c.SeenAt = fromTS(issued), fromTS(expires), fromTS(seen)
		if gpus != "" {
			if err := json.Unmarshal([]byte(gpus), &c.GPUs); err != nil {
				return fmt.Errorf("gpus of %s/%d: %w", c.Peer, c.Seq, err)
			}
		}
		if execs != "" {
			if err := json.Unmarshal([]byte(execs), &c.Executors); err != nil {
				return fmt.Errorf("executors of %s/%d: %w", c.Peer, c.Seq, err)
			}
		}
		return nil
	}
}

const announcementCols = `job_id, attempt, requester, kind, cpu, memory_mib, gpus, wall_seconds, max_price, mint,
	issued_at, seen_at, record`

func scanAnnouncement(r Rows) (indexdb.Announcement, error) {
	var a indexdb.Announcement
	var price, issued, seen int64
	err := r.Scan(&a.JobID, &a.Attempt, &a.Requester, &a.Kind, &a.CPU, &a.MemoryMiB, &a.GPUs, &a.WallSeconds,
		&price, &a.Mint, &issued, &seen, &a.Record)
	a.MaxPrice, a.IssuedAt, a.SeenAt, a.Record = uint64(price), fromTS(issued), fromTS(seen), unblob(a.Record)
	return a, err
}

const receiptCols = `id, job_id, attempt, requester, provider, kind, outcome, fault, reason, price, mint,
	escrow_state, escrow_tx, outputs, started_at, ended_at, issued_at, seen_at, countersigned, record`

func scanReceipt(r Rows) (indexdb.Receipt, error) {
	var x indexdb.Receipt
	var price, started, ended, issued, seen int64
	var outputs string
	if err := r.Scan(&x.ID, &x.JobID, &x.Attempt, &x.Requester, &x.Provider, &x.Kind, &x.Outcome, &x.Fault, &x.Reason,
		&price, &x.Mint, &x.EscrowState, &x.EscrowTx, &outputs, &started, &ended, &issued, &seen,
		&x.Countersigned, &x.Record); err != nil {
		return x, err
	}
	x.Price, x.Record = uint64(price), unblob(x.Record)
	x.StartedAt, x.EndedAt, x.IssuedAt, x.SeenAt = fromTS(started), fromTS(ended), fromTS(issued), fromTS(seen)
	if outputs != "" {
		if err := json.Unmarshal([]byte(outputs), &x.Outputs); err != nil {
			return x, fmt.Errorf("outputs of %s: %w", x.ID, err)
		}
	}
	return x, nil
}

const modelCols = `id, publisher, name, description, license, weights_cid, spec, metrics, job_id, receipt_id,
	published_at, seen_at, record`

func scanModel(r Row) (indexdb.Model, error) {
	var m indexdb.Model
	var spec []byte
	var metrics string
	var published, seen int64
	if err := r.Scan(&m.ID, &m.Publisher, &m.Name, &m.Description, &m.License, &m.WeightsCID, &spec, &metrics,
		&m.JobID, &m.ReceiptID, &published, &seen, &m.Record); err != nil {
		return m, err
	}
	m.PublishedAt, m.SeenAt, m.Record = fromTS(published), fromTS(seen), unblob(m.Record)
	if len(spec) > 0 {
		m.Spec = spec
	}
	if metrics != "" {
		if err := json.Unmarshal([]byte(metrics), &m.Metrics); err != nil {
			return m, fmt.Errorf("metrics of %s: %w", m.ID, err)
		}
	}
	return m, nil
}

// result is what a query gave: its rows or its error.
type result struct {
	rows Rows
	err  error
}

// rowsOf packs the two results of Query, for collect.
func rowsOf(rows Rows, err error) result { return result{rows, err} }

// collect reads every row of a query with scan.
func collect[T any](q result, scan func(Rows) (T, error)) ([]T, error) {
	if q.err != nil {
		return nil, q.err
	}
	rows := q.rows
	defer rows.Close()
	out := []T{} // an empty list, not null, in JSON
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
