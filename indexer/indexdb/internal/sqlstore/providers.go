package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

const providerSelect = `SELECT p.first_seen, p.last_seen, p.records,
	COALESCE(j.jobs, 0), COALESCE(j.succeeded, 0), COALESCE(j.failed, 0), COALESCE(j.mismatches, 0), ` + capacityCols + `
	FROM providers p
	JOIN capacity c ON c.peer = p.peer AND c.seq = p.latest_seq
	LEFT JOIN provider_jobs j ON j.peer = p.peer`

// Providers lists providers in the order of their peer IDs.
func (s *Store) Providers(ctx context.Context, q indexdb.ProviderQuery) (indexdb.Page[indexdb.ProviderSummary], error) {
	var page indexdb.Page[indexdb.ProviderSummary]
	limit, err := indexdb.Limit(q.Limit)
	if err != nil {
		return page, fmt.Errorf("providers: %w", err)
	}
	if err := checkFilters("gpu_model", q.GPUModel, "executor", q.Executor); err != nil {
		return page, fmt.Errorf("providers: %w", err)
	}
	cur, after, err := indexdb.DecodeCursor("providers", q.Cursor)
	if err != nil {
		return page, fmt.Errorf("providers: %w", err)
	}
	var where []string
	var args []any
	if after {
		where, args = append(where, "p.peer > ?"), append(args, cur.Key)
	}
	if q.GPUModel != "" {
		where = append(where, `p.gpu_models LIKE ? ESCAPE '\'`)
		args = append(args, "%"+likeEscape(strings.ToLower(q.GPUModel))+"%")
	}
	if q.Executor != "" {
		where = append(where, `p.executors LIKE ? ESCAPE '\'`)
		args = append(args, "%\n"+likeEscape(strings.ToLower(q.Executor))+"\n%")
	}
	if !q.SeenSince.IsZero() {
		where, args = append(where, "p.last_seen >= ?"), append(args, ts(q.SeenSince))
	}
	query := providerSelect
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY p.peer LIMIT ?"
	ctx, cancel := s.bound(ctx)
	defer cancel()
	items, err := s.summaries(ctx, query, append(args, limit+1)...)
	if err != nil {
		return page, fmt.Errorf("providers: %w", err)
	}
	if len(items) > limit {
		items = items[:limit]
		page.Next = indexdb.Cursor{Kind: "providers", Key: items[limit-1].Peer}.Encode()
	}
	page.Items = items
	return page, nil
}

func checkFilters(kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if err := indexdb.CheckFilter(kv[i], kv[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// summaries runs a providerSelect query and fills in each provider's
// uptime.
func (s *Store) summaries(ctx context.Context, query string, args ...any) ([]indexdb.ProviderSummary, error) {
	rows, err := s.c.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	items := []indexdb.ProviderSummary{}
	var first []int64
	for rows.Next() {
		var p indexdb.ProviderSummary
		var fs, ls int64
		dest, finish := capacityDest(&p.Latest)
		if err := rows.Scan(append([]any{&fs, &ls, &p.Records, &p.Jobs, &p.Succeeded, &p.FailedByProvider, &p.Mismatches}, dest...)...); err != nil {
			rows.Close()
			return nil, err
		}
		if err := finish(); err != nil {
			rows.Close()
			return nil, err
		}
		p.Peer, p.FirstSeen, p.LastSeen = p.Latest.Peer, fromTS(fs), fromTS(ls)
		p.SuccessRate = successRate(p.Succeeded, p.FailedByProvider, p.Mismatches)
		items, first = append(items, p), append(first, fs)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return items, nil
	}
	peers := make([]any, len(items))
	for i, p := range items {
		peers[i] = p.Peer
	}
	rows, err = s.c.Query(ctx, `SELECT peer, start_ns, end_ns FROM provider_cover WHERE peer IN (`+placeholders(len(peers))+`)`, peers...)
	if err != nil {
		return nil, fmt.Errorf("cover: %w", err)
	}
	defer rows.Close()
	cover := map[string][][2]int64{}
	for rows.Next() {
		var peer string
		var iv [2]int64
		if err := rows.Scan(&peer, &iv[0], &iv[1]); err != nil {
			return nil, fmt.Errorf("cover: %w", err)
		}
		cover[peer] = append(cover[peer], iv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cover: %w", err)
	}
	now := ts(s.opt.Now())
	for i := range items {
		items[i].Uptime = uptime(cover[items[i].Peer], first[i], now)
	}
	return items, nil
}

func successRate(ok, failed, mismatch int) float64 {
	if n := ok + failed + mismatch; n > 0 {
		return float64(ok) / float64(n)
	}
	return 0
}

// uptime is the share of [first, now] that the disjoint intervals cover.
func uptime(cover [][2]int64, first, now int64) float64 {
	if now <= first {
		return 0
	}
	var covered int64
	for _, iv := range cover {
		if s, e := max(iv[0], first), min(iv[1], now); e > s {
			covered += e - s
		}
	}
	return min(float64(covered)/float64(now-first), 1)
}

// Provider is one provider with its recent records and receipts.
func (s *Store) Provider(ctx context.Context, peer string) (indexdb.ProviderDetail, error) {
	var d indexdb.ProviderDetail
	if !indexdb.Storable(peer) {
		return d, fmt.Errorf("provider %q: %w", peer, indexdb.ErrNotFound)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	items, err := s.summaries(ctx, providerSelect+" WHERE p.peer = ?", peer)
	if err != nil {
		return d, fmt.Errorf("provider %s: %w", peer, err)
	}
	if len(items) == 1 {
		d.ProviderSummary = items[0]
	} else {
		err := s.c.QueryRow(ctx, `SELECT jobs, succeeded, failed, mismatches FROM provider_jobs WHERE peer = ?`, peer).
			Scan(&d.Jobs, &d.Succeeded, &d.FailedByProvider, &d.Mismatches)
		if err == ErrNoRows {
			return d, fmt.Errorf("provider %s: %w", peer, indexdb.ErrNotFound)
		}
		if err != nil {
			return d, fmt.Errorf("provider %s: %w", peer, err)
		}
		d.Peer, d.SuccessRate = peer, successRate(d.Succeeded, d.FailedByProvider, d.Mismatches)
	}
	d.History, err = collect(rowsOf(s.c.Query(ctx, `SELECT `+capacityCols+` FROM capacity c WHERE c.peer = ? ORDER BY c.seq DESC LIMIT ?`,
		peer, indexdb.DetailRows)), func(r Rows) (indexdb.Capacity, error) {
		var c indexdb.Capacity
		dest, finish := capacityDest(&c)
		if err := r.Scan(dest...); err != nil {
			return c, err
		}
		return c, finish()
	})
	if err != nil {
		return d, fmt.Errorf("provider %s: history: %w", peer, err)
	}
	d.Receipts, err = collect(rowsOf(s.c.Query(ctx, `SELECT `+receiptCols+` FROM receipts WHERE provider = ? ORDER BY issued_at DESC, id DESC LIMIT ?`,
		peer, indexdb.DetailRows)), scanReceipt)
	if err != nil {
		return d, fmt.Errorf("provider %s: receipts: %w", peer, err)
	}
	return d, nil
}
