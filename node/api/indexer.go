package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

// Methods of an indexer's history (served by nodes of the indexer and
// arbiter roles; others answer CodeFailed) and of the model registry.
const (
	MethodIndexerProviders = "indexer.providers"
	MethodIndexerProvider  = "indexer.provider"
	MethodIndexerJobs      = "indexer.jobs"
	MethodIndexerJob       = "indexer.job"
	MethodIndexerPrices    = "indexer.prices"
	MethodIndexerSwarm     = "indexer.swarm"
	MethodIndexerModels    = "indexer.models"
	MethodIndexerModel     = "indexer.model"
	MethodIndexerStats     = "indexer.stats"

	MethodModelPublish = "model.publish"
	MethodModelList    = "model.list"
)

// PeerParams name one peer.
type PeerParams struct {
	Peer string `json:"peer"`
}

// SeriesParams select a time series: from (default: a day before to) to
// (default: now), in buckets (a duration such as "1h", default "1h").
type SeriesParams struct {
	From     time.Time `json:"from,omitzero"`
	To       time.Time `json:"to,omitzero"`
	Bucket   string    `json:"bucket,omitempty"`
	Resource string    `json:"resource,omitempty"`
}

// IndexerStats is the result of indexer.stats: the rows the index holds,
// and what the running indexer took, refused and dropped since it
// started.
type IndexerStats struct {
	indexdb.Stats
	Ingested int64 `json:"ingested"`
	Refused  int64 `json:"refused"`
	Dropped  int64 `json:"dropped"`
	// Explorer is the address of the public explorer API, "" if none.
	Explorer string `json:"explorer,omitempty"`
}

// ModelPublishParams are the parameters of model.publish. With Job, the
// weights, spec, metrics and receipt come from that train job of this
// node (CID, if given, must match its weights); without it, CID and Spec
// are required.
type ModelPublishParams struct {
	CID         string             `json:"cid,omitempty"`
	Job         string             `json:"job,omitempty"`
	Name        string             `json:"name"`
	Description string             `json:"description,omitempty"`
	License     string             `json:"license,omitempty"`
	Spec        json.RawMessage    `json:"spec,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
}

// ModelInfo is a model record this node published.
type ModelInfo struct {
	ID          string             `json:"id"`
	Name        string             `json:"name"`
	WeightsCID  string             `json:"weights_cid"`
	Job         string             `json:"job,omitempty"`
	Receipt     string             `json:"receipt,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	PublishedAt time.Time          `json:"published_at"`
	// Record is the signed record, as the models topic carries it.
	Record json.RawMessage `json:"record"`
}

// IndexerProviders calls indexer.providers.
func (c *Client) IndexerProviders(ctx context.Context, q indexdb.ProviderQuery) (indexdb.Page[indexdb.ProviderSummary], error) {
	var out indexdb.Page[indexdb.ProviderSummary]
	err := c.Call(ctx, MethodIndexerProviders, q, &out)
	return out, err
}

// IndexerProvider calls indexer.provider.
func (c *Client) IndexerProvider(ctx context.Context, peer string) (indexdb.ProviderDetail, error) {
	var out indexdb.ProviderDetail
	err := c.Call(ctx, MethodIndexerProvider, PeerParams{Peer: peer}, &out)
	return out, err
}

// IndexerJobs calls indexer.jobs.
func (c *Client) IndexerJobs(ctx context.Context, q indexdb.JobQuery) (indexdb.Page[indexdb.JobSummary], error) {
	var out indexdb.Page[indexdb.JobSummary]
	err := c.Call(ctx, MethodIndexerJobs, q, &out)
	return out, err
}

// IndexerJob calls indexer.job.
func (c *Client) IndexerJob(ctx context.Context, id string) (indexdb.JobDetail, error) {
	var out indexdb.JobDetail
	err := c.Call(ctx, MethodIndexerJob, JobIDParams{ID: id}, &out)
	return out, err
}

// IndexerPrices calls indexer.prices.
func (c *Client) IndexerPrices(ctx context.Context, p SeriesParams) ([]indexdb.PricePoint, error) {
	var out []indexdb.PricePoint
	err := c.Call(ctx, MethodIndexerPrices, p, &out)
	return out, err
}

// IndexerSwarm calls indexer.swarm.
func (c *Client) IndexerSwarm(ctx context.Context, p SeriesParams) ([]indexdb.SizePoint, error) {
	var out []indexdb.SizePoint
	err := c.Call(ctx, MethodIndexerSwarm, p, &out)
	return out, err
}

// IndexerModels calls indexer.models.
func (c *Client) IndexerModels(ctx context.Context, q indexdb.ModelQuery) (indexdb.Page[indexdb.Model], error) {
	var out indexdb.Page[indexdb.Model]
	err := c.Call(ctx, MethodIndexerModels, q, &out)
	return out, err
}

// IndexerModel calls indexer.model.
func (c *Client) IndexerModel(ctx context.Context, id string) (indexdb.Model, error) {
	var out indexdb.Model
	err := c.Call(ctx, MethodIndexerModel, JobIDParams{ID: id}, &out)
	return out, err
}

// IndexerStats calls indexer.stats.
func (c *Client) IndexerStats(ctx context.Context) (IndexerStats, error) {
	var out IndexerStats
	err := c.Call(ctx, MethodIndexerStats, nil, &out)
	return out, err
}

// ModelPublish calls model.publish.
func (c *Client) ModelPublish(ctx context.Context, p ModelPublishParams) (ModelInfo, error) {
	var out ModelInfo
	err := c.Call(ctx, MethodModelPublish, p, &out)
	return out, err
}

// ModelList calls model.list.
func (c *Client) ModelList(ctx context.Context) ([]ModelInfo, error) {
	var out []ModelInfo
	err := c.Call(ctx, MethodModelList, nil, &out)
	return out, err
}
