package indexer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

// maxResponseBytes bounds one explorer response a Client reads.
const maxResponseBytes = 32 << 20

// Client queries an indexer's explorer API.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client for the explorer at addr: a URL, or a
// host:port taken as http://host:port.
func NewClient(addr string) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("explorer address %q: want host:port or an http(s) URL", addr)
	}
	return &Client{base: strings.TrimSuffix(u.String(), "/"), http: &http.Client{Timeout: time.Minute}}, nil
}

// get fetches path with the query and decodes the JSON answer into v.
func (c *Client) get(ctx context.Context, path string, q url.Values, v any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("explorer: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("explorer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("explorer: %s (%d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("explorer: %s", resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("explorer: decode %s: %w", path, err)
	}
	return nil
}

// query builds query parameters, leaving out empty values.
type query url.Values

func (q query) set(k, v string) {
	if v != "" {
		url.Values(q).Set(k, v)
	}
}

func (q query) setInt(k string, n int) {
	if n != 0 {
		q.set(k, strconv.Itoa(n))
	}
}

func (q query) setTime(k string, t time.Time) {
	if !t.IsZero() {
		q.set(k, t.UTC().Format(time.RFC3339))
	}
}

// Providers lists providers.
func (c *Client) Providers(ctx context.Context, pq indexdb.ProviderQuery) (indexdb.Page[indexdb.ProviderSummary], error) {
	q := query{}
	q.setInt("limit", pq.Limit)
	q.set("cursor", pq.Cursor)
	q.set("gpu", pq.GPUModel)
	q.set("executor", pq.Executor)
	q.setTime("seen_since", pq.SeenSince)
	var out indexdb.Page[indexdb.ProviderSummary]
	return out, c.get(ctx, PathProviders, url.Values(q), &out)
}

// Provider returns one provider with its history.
func (c *Client) Provider(ctx context.Context, peer string) (indexdb.ProviderDetail, error) {
	var out indexdb.ProviderDetail
	return out, c.get(ctx, PathProviders+"/"+url.PathEscape(peer), nil, &out)
}

// Jobs lists jobs.
func (c *Client) Jobs(ctx context.Context, jq indexdb.JobQuery) (indexdb.Page[indexdb.JobSummary], error) {
	q := query{}
	q.setInt("limit", jq.Limit)
	q.set("cursor", jq.Cursor)
	q.set("requester", jq.Requester)
	q.set("provider", jq.Provider)
	q.set("outcome", jq.Outcome)
	q.set("kind", jq.Kind)
	q.setTime("since", jq.Since)
	var out indexdb.Page[indexdb.JobSummary]
	return out, c.get(ctx, PathJobs, url.Values(q), &out)
}

// Job returns one job with its announcements, receipts and checks.
func (c *Client) Job(ctx context.Context, id string) (indexdb.JobDetail, error) {
	var out indexdb.JobDetail
	return out, c.get(ctx, PathJobs+"/"+url.PathEscape(id), nil, &out)
}

func seriesValues(from, to time.Time, bucket time.Duration, resource string) url.Values {
	q := query{}
	q.setTime("from", from)
	q.setTime("to", to)
	if bucket > 0 {
		q.set("bucket", bucket.String())
	}
	q.set("resource", resource)
	return url.Values(q)
}

// Prices returns a price series.
func (c *Client) Prices(ctx context.Context, sq indexdb.SeriesQuery) ([]indexdb.PricePoint, error) {
	var out []indexdb.PricePoint
	return out, c.get(ctx, PathPrices, seriesValues(sq.From, sq.To, sq.Bucket, sq.Resource), &out)
}

// SwarmSize returns the swarm's size over time.
func (c *Client) SwarmSize(ctx context.Context, sq indexdb.SeriesQuery) ([]indexdb.SizePoint, error) {
	var out []indexdb.SizePoint
	return out, c.get(ctx, PathSwarm, seriesValues(sq.From, sq.To, sq.Bucket, ""), &out)
}

// Models searches the model registry.
func (c *Client) Models(ctx context.Context, mq indexdb.ModelQuery) (indexdb.Page[indexdb.Model], error) {
	q := query{}
	q.setInt("limit", mq.Limit)
	q.set("cursor", mq.Cursor)
	q.set("q", mq.Text)
	q.set("publisher", mq.Publisher)
	var out indexdb.Page[indexdb.Model]
	return out, c.get(ctx, PathModels, url.Values(q), &out)
}

// Model returns one model record.
func (c *Client) Model(ctx context.Context, id string) (indexdb.Model, error) {
	var out indexdb.Model
	return out, c.get(ctx, PathModels+"/"+url.PathEscape(id), nil, &out)
}

// Stats returns the index's row counts.
func (c *Client) Stats(ctx context.Context) (indexdb.Stats, error) {
	var out indexdb.Stats
	return out, c.get(ctx, PathStats, nil, &out)
}
