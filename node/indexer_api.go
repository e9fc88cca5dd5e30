package node

import (
	"context"
	"errors"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
)

// indexerAPI serves the indexer.* methods from the node's index; a node
// of another role answers each with an error that says so.
type indexerAPI struct {
	svc *indexerService // nil on a node that keeps no index
}

func (a indexerAPI) register(srv *rpc.Server) {
	indexerMethod(a, srv, api.MethodIndexerProviders, indexdb.Store.Providers)
	indexerMethod(a, srv, api.MethodIndexerProvider, func(st indexdb.Store, ctx context.Context, p api.PeerParams) (indexdb.ProviderDetail, error) {
		return st.Provider(ctx, p.Peer)
	})
	indexerMethod(a, srv, api.MethodIndexerJobs, indexdb.Store.Jobs)
	indexerMethod(a, srv, api.MethodIndexerJob, func(st indexdb.Store, ctx context.Context, p api.JobIDParams) (indexdb.JobDetail, error) {
		return st.Job(ctx, p.ID)
	})
	indexerMethod(a, srv, api.MethodIndexerPrices, func(st indexdb.Store, ctx context.Context, p api.SeriesParams) ([]indexdb.PricePoint, error) {
		q, err := seriesQuery(p)
		if err != nil {
			return nil, err
		}
		return st.Prices(ctx, q)
	})
	indexerMethod(a, srv, api.MethodIndexerSwarm, func(st indexdb.Store, ctx context.Context, p api.SeriesParams) ([]indexdb.SizePoint, error) {
		q, err := seriesQuery(p)
		if err != nil {
			return nil, err
		}
		return st.SwarmSize(ctx, q)
	})
	indexerMethod(a, srv, api.MethodIndexerModels, indexdb.Store.Models)
	indexerMethod(a, srv, api.MethodIndexerModel, func(st indexdb.Store, ctx context.Context, p api.JobIDParams) (indexdb.Model, error) {
		return st.Model(ctx, p.ID)
	})
	srv.Register(api.MethodIndexerStats, rpc.NoParams(func(ctx context.Context) (api.IndexerStats, error) {
		return query(a, ctx, func(ctx context.Context, st indexdb.Store) (api.IndexerStats, error) {
			rows, err := st.Stats(ctx)
			out := api.IndexerStats{Stats: rows, Explorer: a.svc.explorerAddr()}
			if c := a.svc.counters(); c != nil {
				out.Ingested, out.Refused, out.Dropped = c.Ingested.Load(), c.Refused.Load(), c.Dropped.Load()
			}
			return out, err
		})
	}))
}

// indexerMethod registers name as the store query f of its params.
func indexerMethod[P, R any](a indexerAPI, srv *rpc.Server, name string, f func(indexdb.Store, context.Context, P) (R, error)) {
	srv.Register(name, rpc.Method(func(ctx context.Context, p P) (R, error) {
		return query(a, ctx, func(ctx context.Context, st indexdb.Store) (R, error) { return f(st, ctx, p) })
	}))
}

// query runs one query on the index under a deadline, mapping its
// errors to the API's codes.
func query[T any](a indexerAPI, ctx context.Context, f func(context.Context, indexdb.Store) (T, error)) (T, error) {
	var zero T
	if a.svc == nil || a.svc.store == nil {
		return zero, api.Errorf(api.CodeFailed, "this node keeps no index: only the indexer and arbiter roles do (pass --indexer to ask one)")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := f(ctx, a.svc.store)
	var ae *api.Error
	switch {
	case err == nil:
		return v, nil
	case errors.As(err, &ae):
		return zero, err
	case errors.Is(err, indexdb.ErrBadQuery):
		return zero, api.Errorf(api.CodeInvalidParams, "invalid params: %v", err)
	case errors.Is(err, indexdb.ErrNotFound):
		return zero, api.Errorf(api.CodeNotFound, "%v", err)
	default:
		return zero, api.Errorf(api.CodeFailed, "the index is unavailable: %v", err)
	}
}

// seriesQuery fills a series' defaults: the last day, by the hour.
func seriesQuery(p api.SeriesParams) (indexdb.SeriesQuery, error) {
	q := indexdb.SeriesQuery{From: p.From, To: p.To, Bucket: time.Hour, Resource: p.Resource}
	if q.To.IsZero() {
		q.To = time.Now().UTC()
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-24 * time.Hour)
	}
	if p.Bucket != "" {
		d, err := time.ParseDuration(p.Bucket)
		if err != nil {
			return q, api.Errorf(api.CodeInvalidParams, "invalid params: bucket: %q is not a duration such as 1h or 15m", p.Bucket)
		}
		q.Bucket = d
	}
	return q, nil
}
