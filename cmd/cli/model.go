package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/spf13/cobra"
)

func modelCommand(e *env) *cobra.Command {
	return group("model", "the model registry: publish trained weights, find them, deploy them as a service",
		"  cyxwiz model publish --job ID --name mnist-mlp --license MIT\n  cyxwiz model search digits\n  cyxwiz model show ID",
		modelPublishCommand(e),
		modelListCommand(e),
		modelSearchCommand(e),
		modelShowCommand(e),
		modelDeployCommand(e),
		modelDeploymentsCommand(e),
		modelUndeployCommand(e),
	)
}

func modelPublishCommand(e *env) *cobra.Command {
	var p api.ModelPublishParams
	var specFile string
	c := &cobra.Command{
		Use:   "publish [CID] --name NAME",
		Short: "sign a model record and publish it to the swarm's indexers (--job ID publishes a train job's result)",
		Example: `  cyxwiz model publish --job 06H3SKZWJQW86Y1987YSNJDR9W --name mnist-mlp --license MIT
  cyxwiz model publish bafkrei... --spec examples/mnist/spec.json --name mnist-mlp`,
		Args:              optionalArg("the weights' CID"),
		ValidArgsFunction: completePins(e),
		RunE: run(e, func(args []string) error {
			if len(args) == 1 {
				p.CID = args[0]
			}
			if p.Name == "" {
				return usagef("--name is required")
			}
			if p.Job == "" && (p.CID == "" || specFile == "") {
				return usagef("give --job ID, or a CID and --spec FILE")
			}
			if specFile != "" {
				data, err := os.ReadFile(specFile)
				if err != nil {
					return err
				}
				if !json.Valid(data) {
					return fmt.Errorf("%s is not JSON", specFile)
				}
				p.Spec = data
			}
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) (api.ModelInfo, error) {
				return c.ModelPublish(ctx, p)
			}, func(m api.ModelInfo) error {
				fmt.Fprintf(e.stdout, "published %s\nid:      %s\nweights: %s\n", m.Name, m.ID, m.WeightsCID)
				if m.Receipt != "" {
					fmt.Fprintf(e.stdout, "receipt: %s\n", m.Receipt)
				}
				return nil
			})
		}),
	}
	fs := c.Flags()
	fs.StringVar(&p.Name, "name", "", "the model's name (required)")
	fs.StringVar(&p.Job, "job", "", "a train job of this node: its weights, spec, metrics and receipt")
	fs.StringVar(&specFile, "spec", "", "the train spec the weights came from (a job spec or its train section), without --job")
	fs.StringVar(&p.Description, "description", "", "what the model does")
	fs.StringVar(&p.License, "license", "", "the weights' license (an SPDX identifier, such as MIT)")
	_ = c.RegisterFlagCompletionFunc("job", completeJobs(e))
	return c
}

func modelListCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "the model records this node publishes",
		Example: "  cyxwiz model list\n  cyxwiz model list --json",
		Args:    noArgs,
		RunE: run(e, func([]string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) ([]api.ModelInfo, error) {
				return c.ModelList(ctx)
			}, func(ms []api.ModelInfo) error {
				tw := e.table("ID\tNAME\tWEIGHTS\tJOB\tPUBLISHED")
				for _, m := range ms {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", shortID(m.ID), m.Name, m.WeightsCID, orDash(m.Job), m.PublishedAt.Local().Format(time.DateTime))
				}
				return tw.Flush()
			})
		}),
	}
}

func modelSearchCommand(e *env) *cobra.Command {
	var addr, publisher, cursor string
	var limit int
	c := &cobra.Command{
		Use:               "search TEXT",
		Short:             "find model records by name or description, newest first",
		Example:           "  cyxwiz model search digits --indexer 203.0.113.5:5252\n  cyxwiz model search mnist --limit 10 --json",
		Args:              exactArgs(1, "the text to look for"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: run(e, func(args []string) error {
			return showHistory(e, addr, func(ctx context.Context, h history) (indexdb.Page[indexdb.Model], error) {
				return h.Models(ctx, indexdb.ModelQuery{Text: args[0], Publisher: publisher, Limit: limit, Cursor: cursor})
			}, func(p indexdb.Page[indexdb.Model]) error {
				tw := e.table("ID\tNAME\tLICENSE\tMETRICS\tPUBLISHED\tDESCRIPTION")
				for _, m := range p.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Name, orDash(m.License), orDash(metricsLine(m.Metrics)),
						m.PublishedAt.Local().Format(time.DateOnly), firstLine(m.Description, 48))
				}
				return flushPage(e, tw.Flush(), p.Next)
			})
		}),
	}
	fs := c.Flags()
	indexerFlag(fs, &addr)
	fs.StringVar(&publisher, "publisher", "", "only models this peer published")
	fs.IntVar(&limit, "limit", 0, "models per page (default 50, at most 500)")
	fs.StringVar(&cursor, "cursor", "", "the next page's cursor, as the last page printed it")
	return c
}

func modelShowCommand(e *env) *cobra.Command {
	var addr string
	c := &cobra.Command{
		Use:               "show ID",
		Short:             "a model record: weights, train spec, metrics, the job and receipt behind it",
		Example:           "  cyxwiz model show 5f3c... --indexer 203.0.113.5:5252\n  cyxwiz model show 5f3c... --json",
		Args:              exactArgs(1, "a model ID"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: run(e, func(args []string) error {
			return showHistory(e, addr, func(ctx context.Context, h history) (indexdb.Model, error) {
				return h.Model(ctx, args[0])
			}, func(m indexdb.Model) error {
				fmt.Fprintf(e.stdout, "name:        %s\nid:          %s\npublisher:   %s\nweights:     %s\nlicense:     %s\npublished:   %s\n",
					m.Name, m.ID, m.Publisher, m.WeightsCID, orDash(m.License), m.PublishedAt.Local().Format(time.DateTime))
				fmt.Fprintf(e.stdout, "job:         %s\nreceipt:     %s\nmetrics:     %s\n", orDash(m.JobID), orDash(m.ReceiptID), orDash(metricsLine(m.Metrics)))
				if m.Description != "" {
					fmt.Fprintf(e.stdout, "\n%s\n", m.Description)
				}
				if len(m.Spec) > 0 {
					fmt.Fprintf(e.stdout, "\ntrain spec:\n%s\n", m.Spec)
				}
				return nil
			})
		}),
	}
	indexerFlag(c.Flags(), &addr)
	return c
}

// shortID cuts a hex ID to a length that still tells records apart.
func shortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

func metricsLine(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%.4g", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}
