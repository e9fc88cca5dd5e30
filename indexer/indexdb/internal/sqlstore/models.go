package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

// Models lists models, newest first, optionally searched by text.
func (s *Store) Models(ctx context.Context, q indexdb.ModelQuery) (indexdb.Page[indexdb.Model], error) {
	var page indexdb.Page[indexdb.Model]
	limit, err := indexdb.Limit(q.Limit)
	if err != nil {
		return page, fmt.Errorf("models: %w", err)
	}
	if err := checkFilters("text", q.Text, "publisher", q.Publisher); err != nil {
		return page, fmt.Errorf("models: %w", err)
	}
	cur, after, err := indexdb.DecodeCursor("models", q.Cursor)
	if err != nil {
		return page, fmt.Errorf("models: %w", err)
	}
	var where []string
	var args []any
	if q.Publisher != "" {
		where, args = append(where, "publisher = ?"), append(args, q.Publisher)
	}
	if q.Text != "" {
		where = append(where, `search LIKE ? ESCAPE '\'`)
		args = append(args, "%"+likeEscape(strings.ToLower(q.Text))+"%")
	}
	if after {
		where, args = append(where, keyset("published_at", "id")), append(args, cur.Time, cur.Time, cur.Key)
	}
	query := `SELECT ` + modelCols + ` FROM models`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY published_at DESC, id DESC LIMIT ?"
	ctx, cancel := s.bound(ctx)
	defer cancel()
	items, err := collect(rowsOf(s.c.Query(ctx, query, append(args, limit+1)...)), func(r Rows) (indexdb.Model, error) { return scanModel(r) })
	if err != nil {
		return page, fmt.Errorf("models: %w", err)
	}
	if len(items) > limit {
		items = items[:limit]
		last := items[limit-1]
		page.Next = indexdb.Cursor{Kind: "models", Time: ts(last.PublishedAt), Key: last.ID}.Encode()
	}
	page.Items = items
	return page, nil
}

// Model is one model by ID.
func (s *Store) Model(ctx context.Context, id string) (indexdb.Model, error) {
	if !indexdb.Storable(id) {
		return indexdb.Model{}, fmt.Errorf("model %q: %w", id, indexdb.ErrNotFound)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	m, err := scanModel(s.c.QueryRow(ctx, `SELECT `+modelCols+` FROM models WHERE id = ?`, id))
	if err == ErrNoRows {
		return m, fmt.Errorf("model %s: %w", id, indexdb.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("model %s: %w", id, err)
	}
	return m, nil
}

// Prices is a price series: per bucket, the min, median and max over the
// latest record of each provider with a record seen in it. The database
// picks each provider's latest record of a bucket; the statistics are
// computed here over its sorted prices, so the median is exact.
func (s *Store) Prices(ctx context.Context, q indexdb.SeriesQuery) ([]indexdb.PricePoint, error) {
	n, err := q.Buckets()
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	res, err := q.PriceResource()
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	col := "price_cpu_second"
	if res == indexdb.ResourceMinimum {
		col = "price_minimum"
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if hours, ok := byHours(q); ok {
		return s.pricesByHours(ctx, q, n, hours, res)
	}
	from, bucket := ts(q.From), int64(q.Bucket)
	rows, err := s.c.Query(ctx, `SELECT b, price FROM (
		SELECT b, price, ROW_NUMBER() OVER (PARTITION BY b, peer ORDER BY seq DESC) AS rn FROM (
			SELECT (seen_at - ?) / ? AS b, peer, seq, `+col+` AS price FROM capacity WHERE seen_at >= ? AND seen_at < ?
		) t
	) u WHERE rn = 1 ORDER BY b, price`, from, bucket, from, ts(q.To))
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	defer rows.Close()
	points := make([]indexdb.PricePoint, n)
	for i := range points {
		points[i].Time = q.From.Add(time.Duration(i) * q.Bucket).UTC()
	}
	var prices []uint64
	cur := int64(-1)
	flush := func() {
		if cur >= 0 && cur < int64(n) && len(prices) > 0 {
			p := &points[cur]
			p.Min, p.Max, p.Median, p.Providers = prices[0], prices[len(prices)-1], prices[(len(prices)-1)/2], len(prices)
		}
		prices = prices[:0]
	}
	for rows.Next() {
		var b, price int64
		if err := rows.Scan(&b, &price); err != nil {
			return nil, fmt.Errorf("prices: %w", err)
		}
		if b != cur {
			flush()
			cur = b
		}
		prices = append(prices, uint64(price))
	}
	flush()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	return points, nil
}

// byHours says whether a series can be read from the hourly roll-ups: its
// From and To on whole hours and its Bucket a whole number of them, which
// it returns.
func byHours(q indexdb.SeriesQuery) (int64, bool) {
	h := time.Hour
	if q.Bucket%h != 0 || q.From.Truncate(h) != q.From || q.To.Truncate(h) != q.To {
		return 0, false
	}
	return int64(q.Bucket / h), true
}

// pricesByHours reads a price series from price_hours: per bucket, the
// lowest minimum, the highest maximum, the most providers and the lower
// median of the medians of its hours; all exact for buckets of one hour.
func (s *Store) pricesByHours(ctx context.Context, q indexdb.SeriesQuery, n int, hours int64, res string) ([]indexdb.PricePoint, error) {
	first := hourOf(ts(q.From))
	rows, err := s.c.Query(ctx, `SELECT hour, providers, min_price, median_price, max_price FROM price_hours
		WHERE resource = ? AND hour >= ? AND hour < ? ORDER BY hour`, res, first, hourOf(ts(q.To)))
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	defer rows.Close()
	points := make([]indexdb.PricePoint, n)
	medians := make([][]uint64, n)
	for i := range points {
		points[i].Time = q.From.Add(time.Duration(i) * q.Bucket).UTC()
	}
	for rows.Next() {
		var h, providers, lo, med, hi int64
		if err := rows.Scan(&h, &providers, &lo, &med, &hi); err != nil {
			return nil, fmt.Errorf("prices: %w", err)
		}
		b := (h - first) / hours
		if b < 0 || b >= int64(n) {
			continue
		}
		p := &points[b]
		if p.Providers == 0 || uint64(lo) < p.Min {
			p.Min = uint64(lo)
		}
		p.Max = max(p.Max, uint64(hi))
		p.Providers = max(p.Providers, int(providers))
		medians[b] = append(medians[b], uint64(med))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	for i, m := range medians {
		if len(m) > 0 {
			slices.Sort(m)
			points[i].Median = m[(len(m)-1)/2]
		}
	}
	return points, nil
}

// SwarmSize is the swarm's size per bucket: providers with a record seen,
// announcements seen.
func (s *Store) SwarmSize(ctx context.Context, q indexdb.SeriesQuery) ([]indexdb.SizePoint, error) {
	n, err := q.Buckets()
	if err != nil {
		return nil, fmt.Errorf("swarm size: %w", err)
	}
	from, bucket, to := ts(q.From), int64(q.Bucket), ts(q.To)
	providers := `SELECT (seen_at - ?) / ? AS b, COUNT(DISTINCT peer) FROM capacity WHERE seen_at >= ? AND seen_at < ? GROUP BY 1`
	jobs := `SELECT (seen_at - ?) / ? AS b, COUNT(*) FROM announcements WHERE seen_at >= ? AND seen_at < ? GROUP BY 1`
	if hours, ok := byHours(q); ok {
		from, bucket, to = hourOf(from), hours, hourOf(to)
		providers = `SELECT (hour - ?) / ? AS b, COUNT(DISTINCT peer) FROM capacity_hours WHERE hour >= ? AND hour < ? GROUP BY 1`
		if hours == 1 { // an hour's count is kept with its prices
			providers = `SELECT (hour - ?) / ? AS b, providers FROM price_hours WHERE hour >= ? AND hour < ? AND resource = '` +
				indexdb.ResourceCPUSecond + `'`
		}
		jobs = `SELECT (hour - ?) / ? AS b, SUM(jobs) FROM announcement_hours WHERE hour >= ? AND hour < ? GROUP BY 1`
	}
	points := make([]indexdb.SizePoint, n)
	for i := range points {
		points[i].Time = q.From.Add(time.Duration(i) * q.Bucket).UTC()
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	for _, c := range []struct {
		query string
		set   func(p *indexdb.SizePoint, v int)
	}{
		{providers, func(p *indexdb.SizePoint, v int) { p.Providers = v }},
		{jobs, func(p *indexdb.SizePoint, v int) { p.Jobs = v }},
	} {
		rows, err := s.c.Query(ctx, c.query, from, bucket, from, to)
		if err != nil {
			return nil, fmt.Errorf("swarm size: %w", err)
		}
		for rows.Next() {
			var b int64
			var v int
			if err := rows.Scan(&b, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("swarm size: %w", err)
			}
			if b >= 0 && b < int64(n) {
				c.set(&points[b], v)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("swarm size: %w", err)
		}
	}
	return points, nil
}

// Stats counts the rows of each table.
func (s *Store) Stats(ctx context.Context) (indexdb.Stats, error) {
	var st indexdb.Stats
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.c.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM capacity), (SELECT COUNT(*) FROM announcements),
		(SELECT COUNT(*) FROM receipts), (SELECT COUNT(*) FROM models), (SELECT COUNT(*) FROM escrow_checks)`).
		Scan(&st.Capacity, &st.Announcements, &st.Receipts, &st.Models, &st.EscrowChecks)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}
