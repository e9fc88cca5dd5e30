package sqlstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
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
	recs = slices.Clone(recs)
	inserts := make([]Stmt, len(recs))
	for i := range recs {
		c := &recs[i]
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
		inserts[i] = Stmt{insertCapacity, []any{c.Peer, int64(c.Seq), ts(c.IssuedAt), ts(c.ExpiresAt), ts(c.SeenAt),
			c.CPUCores, c.MemoryMiB, c.DiskMiB, gpus, execs, int64(c.PricePerCPUSecond), int64(c.PriceMinimum),
			c.Mint, c.BenchScore, blob(c.Record)}}
	}
	return s.write(ctx, "add capacity", func(tx Tx) error {
		n, err := tx.Batch(ctx, inserts)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		var added []indexdb.Capacity
		var derived []Stmt
		hours := map[int64]bool{}
		for i, c := range recs {
			if n[i] == 0 {
				continue
			}
			added = append(added, c)
			h := hourOf(ts(c.SeenAt))
			hours[h] = true
			derived = append(derived,
				Stmt{upsertProvider, []any{c.Peer, ts(c.SeenAt), ts(c.SeenAt), int64(c.Seq), gpuModels(c.GPUs), executorList(c.Executors)}},
				Stmt{upsertCapacityHour, []any{h, c.Peer, int64(c.Seq), int64(c.PricePerCPUSecond), int64(c.PriceMinimum)}})
		}
		if len(added) == 0 {
			return nil
		}
		if _, err := tx.Batch(ctx, derived); err != nil {
			return fmt.Errorf("providers: %w", err)
		}
		cover, err := coverStmts(ctx, tx, added)
		if err != nil {
			return fmt.Errorf("cover: %w", err)
		}
		if _, err := tx.Batch(ctx, cover); err != nil {
			return fmt.Errorf("cover: %w", err)
		}
		for _, h := range slices.Sorted(maps.Keys(hours)) {
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

// coverStmts are the statements that merge the validity intervals of new
// records into the union of each provider's intervals, which
// provider_cover keeps as disjoint intervals: intervals that overlap or
// touch become one. Only stored intervals that end at or after the
// earliest new start can change, so only those are read.
func coverStmts(ctx context.Context, tx Tx, added []indexdb.Capacity) ([]Stmt, error) {
	fresh := map[string][][2]int64{}
	lo := int64(math.MaxInt64)
	for _, c := range added {
		s, e := ts(c.IssuedAt), ts(c.ExpiresAt)
		if e <= s {
			continue
		}
		fresh[c.Peer] = append(fresh[c.Peer], [2]int64{s, e})
		lo = min(lo, s)
	}
	peers := slices.Sorted(maps.Keys(fresh))
	stored := map[string][][2]int64{}
	for chunk := range slices.Chunk(peers, 500) {
		args := []any{lo}
		for _, p := range chunk {
			args = append(args, p)
		}
		rows, err := tx.Query(ctx, `SELECT peer, start_ns, end_ns FROM provider_cover WHERE end_ns >= ? AND peer IN (`+
			placeholders(len(chunk))+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var p string
			var iv [2]int64
			if err := rows.Scan(&p, &iv[0], &iv[1]); err != nil {
				rows.Close()
				return nil, err
			}
			stored[p] = append(stored[p], iv)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	var out []Stmt
	for _, p := range peers {
		merged := mergeIntervals(append(slices.Clone(stored[p]), fresh[p]...))
		for _, iv := range stored[p] {
			if !slices.Contains(merged, iv) {
				out = append(out, Stmt{`DELETE FROM provider_cover WHERE peer = ? AND start_ns = ?`, []any{p, iv[0]}})
			}
		}
		for _, iv := range merged {
			if !slices.Contains(stored[p], iv) {
				out = append(out, Stmt{`INSERT INTO provider_cover (peer, start_ns, end_ns) VALUES (?, ?, ?)`, []any{p, iv[0], iv[1]}})
			}
		}
	}
	return out, nil
}

// mergeIntervals is the union of intervals as disjoint intervals, in order.
func mergeIntervals(ivs [][2]int64) [][2]int64 {
	slices.SortFunc(ivs, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var out [][2]int64
	for _, iv := range ivs {
		if n := len(out); n > 0 && iv[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], iv[1])
			continue
		}
		out = append(out, iv)
	}
	return out
}
