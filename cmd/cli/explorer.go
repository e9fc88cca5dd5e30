package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envIndexer names the default explorer address of --indexer.
const envIndexer = "CYXWIZ_INDEXER"

// history is where the explorer commands read the swarm's history: an
// indexer's public explorer API, or the local daemon when it is an
// indexer itself.
type history interface {
	Providers(context.Context, indexdb.ProviderQuery) (indexdb.Page[indexdb.ProviderSummary], error)
	Jobs(context.Context, indexdb.JobQuery) (indexdb.Page[indexdb.JobSummary], error)
	Prices(context.Context, indexdb.SeriesQuery) ([]indexdb.PricePoint, error)
	Models(context.Context, indexdb.ModelQuery) (indexdb.Page[indexdb.Model], error)
	Model(context.Context, string) (indexdb.Model, error)
}

// daemonHistory reads the history through the local daemon's indexer.*
// methods.
type daemonHistory struct{ c *api.Client }

func (h daemonHistory) Providers(ctx context.Context, q indexdb.ProviderQuery) (indexdb.Page[indexdb.ProviderSummary], error) {
	return h.c.IndexerProviders(ctx, q)
}

func (h daemonHistory) Jobs(ctx context.Context, q indexdb.JobQuery) (indexdb.Page[indexdb.JobSummary], error) {
	return h.c.IndexerJobs(ctx, q)
}

func (h daemonHistory) Prices(ctx context.Context, q indexdb.SeriesQuery) ([]indexdb.PricePoint, error) {
	return h.c.IndexerPrices(ctx, api.SeriesParams{From: q.From, To: q.To, Bucket: q.Bucket.String(), Resource: q.Resource})
}

func (h daemonHistory) Models(ctx context.Context, q indexdb.ModelQuery) (indexdb.Page[indexdb.Model], error) {
	return h.c.IndexerModels(ctx, q)
}

func (h daemonHistory) Model(ctx context.Context, id string) (indexdb.Model, error) {
	return h.c.IndexerModel(ctx, id)
}

// indexerFlag registers --indexer.
func indexerFlag(fs *pflag.FlagSet, addr *string) {
	fs.StringVar(addr, "indexer", "",
		"an indexer's explorer address (host:port or URL; default $"+envIndexer+", else the local daemon, which must be an indexer)")
}

// withHistory runs fn on the history of addr (else $CYXWIZ_INDEXER), or
// of the local daemon when both are "".
func withHistory(e *env, addr string, fn func(context.Context, history) error) error {
	if addr == "" {
		addr = os.Getenv(envIndexer)
	}
	if addr == "" {
		return withClient(e, callTimeout, func(ctx context.Context, c *api.Client) error {
			return fn(ctx, daemonHistory{c})
		})
	}
	c, err := indexer.NewClient(addr)
	if err != nil {
		return usagef("--indexer: %v", err)
	}
	ctx, stop := signalContext(e)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return fn(ctx, c)
}

// showHistory makes one history query and prints it as JSON or text.
func showHistory[T any](e *env, addr string, req func(context.Context, history) (T, error), text func(T) error) error {
	return withHistory(e, addr, func(ctx context.Context, h history) error {
		v, err := req(ctx, h)
		if err != nil {
			return err
		}
		if e.json {
			return e.printJSON(v)
		}
		return text(v)
	})
}

func explorerCommand(e *env) *cobra.Command {
	return group("explorer", "the swarm's history, from an indexer",
		"  cyxwiz explorer providers --indexer 203.0.113.5:5252 --gpu A100\n  cyxwiz explorer prices --since 168h --bucket 24h",
		explorerProvidersCommand(e),
		explorerJobsCommand(e),
		explorerPricesCommand(e),
	)
}

func explorerProvidersCommand(e *env) *cobra.Command {
	var addr, gpu, cursor string
	var limit int
	c := &cobra.Command{
		Use:     "providers",
		Short:   "providers seen by an indexer: uptime, prices, GPUs and success rate from receipts",
		Example: "  cyxwiz explorer providers --indexer 203.0.113.5:5252 --gpu A100\n  cyxwiz explorer providers --limit 10 --json",
		Args:    noArgs,
		RunE: run(e, func([]string) error {
			return showHistory(e, addr, func(ctx context.Context, h history) (indexdb.Page[indexdb.ProviderSummary], error) {
				return h.Providers(ctx, indexdb.ProviderQuery{Limit: limit, Cursor: cursor, GPUModel: gpu})
			}, func(p indexdb.Page[indexdb.ProviderSummary]) error {
				tw := e.table("PROVIDER\tLAST SEEN\tUPTIME\tCPUS\tGPUS\tPRICE/CPU-S\tJOBS\tSUCCESS")
				for _, s := range p.Items {
					var gpus []string
					for _, g := range s.Latest.GPUs {
						gpus = append(gpus, g.Model)
					}
					fmt.Fprintf(tw, "%s\t%s\t%.0f%%\t%d\t%s\t%d\t%d\t%.0f%%\n", s.Peer, s.LastSeen.Local().Format(time.DateTime),
						100*s.Uptime, s.Latest.CPUCores, orDash(strings.Join(gpus, ",")), s.Latest.PricePerCPUSecond, s.Jobs, 100*s.SuccessRate)
				}
				return flushPage(e, tw.Flush(), p.Next)
			})
		}),
	}
	fs := c.Flags()
	indexerFlag(fs, &addr)
	fs.StringVar(&gpu, "gpu", "", "only providers with a GPU whose model contains this")
	fs.IntVar(&limit, "limit", 0, "providers per page (default 50, at most 500)")
	fs.StringVar(&cursor, "cursor", "", "the next page's cursor, as the last page printed it")
	return c
}

func explorerJobsCommand(e *env) *cobra.Command {
	var addr, provider, requester, outcome, cursor string
	var limit int
	c := &cobra.Command{
		Use:     "jobs",
		Short:   "jobs seen by an indexer, newest first, with their outcomes",
		Example: "  cyxwiz explorer jobs --indexer 203.0.113.5:5252 --provider 12D3KooW...\n  cyxwiz explorer jobs --outcome failed --limit 20",
		Args:    noArgs,
		RunE: run(e, func([]string) error {
			return showHistory(e, addr, func(ctx context.Context, h history) (indexdb.Page[indexdb.JobSummary], error) {
				return h.Jobs(ctx, indexdb.JobQuery{Limit: limit, Cursor: cursor, Provider: provider, Requester: requester, Outcome: outcome})
			}, func(p indexdb.Page[indexdb.JobSummary]) error {
				tw := e.table("JOB\tKIND\tSEEN\tATTEMPTS\tOUTCOME\tPROVIDER\tPRICE\tESCROW")
				for _, j := range p.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", j.JobID, j.Kind, j.FirstSeen.Local().Format(time.DateTime),
						j.Attempts, orDash(j.Outcome), orDash(j.Provider), j.Price, orDash(strings.TrimSpace(j.EscrowState+" "+j.EscrowCheck)))
				}
				return flushPage(e, tw.Flush(), p.Next)
			})
		}),
	}
	fs := c.Flags()
	indexerFlag(fs, &addr)
	fs.StringVar(&provider, "provider", "", "only jobs this provider ran")
	fs.StringVar(&requester, "requester", "", "only jobs of this requester")
	fs.StringVar(&outcome, "outcome", "", "only jobs that ended so (succeeded, failed, cancelled)")
	fs.IntVar(&limit, "limit", 0, "jobs per page (default 50, at most 500)")
	fs.StringVar(&cursor, "cursor", "", "the next page's cursor, as the last page printed it")
	return c
}

func explorerPricesCommand(e *env) *cobra.Command {
	var addr, resource string
	var since, bucket time.Duration
	c := &cobra.Command{
		Use:     "prices",
		Short:   "providers' prices over time: the lowest, median and highest in each bucket",
		Example: "  cyxwiz explorer prices --indexer 203.0.113.5:5252 --since 168h --bucket 24h\n  cyxwiz explorer prices --resource minimum --json",
		Args:    noArgs,
		RunE: run(e, func([]string) error {
			now := time.Now().UTC()
			return showHistory(e, addr, func(ctx context.Context, h history) ([]indexdb.PricePoint, error) {
				return h.Prices(ctx, indexdb.SeriesQuery{From: now.Add(-since), To: now, Bucket: bucket, Resource: resource})
			}, func(pts []indexdb.PricePoint) error {
				tw := e.table("TIME\tPROVIDERS\tMIN\tMEDIAN\tMAX")
				for _, p := range pts {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", p.Time.Local().Format(time.DateTime), p.Providers, p.Min, p.Median, p.Max)
				}
				return tw.Flush()
			})
		}),
	}
	fs := c.Flags()
	indexerFlag(fs, &addr)
	fs.DurationVar(&since, "since", 24*time.Hour, "how far back")
	fs.DurationVar(&bucket, "bucket", time.Hour, "the length of each point")
	fs.StringVar(&resource, "resource", indexdb.ResourceCPUSecond, "the price: per CPU-second ("+indexdb.ResourceCPUSecond+"), or the minimum per job ("+indexdb.ResourceMinimum+")")
	return c
}

// flushPage reports a table's error, or says how to get the next page.
func flushPage(e *env, err error, next string) error {
	if err == nil && next != "" {
		fmt.Fprintf(e.stderr, "more: --cursor %s\n", next)
	}
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
