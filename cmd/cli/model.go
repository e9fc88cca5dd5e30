package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/node/api"
)

func modelCommand() *command {
	return &command{name: "model", summary: "the model registry: publish trained weights, find them", sub: []*command{
		modelPublishCommand(),
		modelListCommand(),
		modelSearchCommand(),
		modelShowCommand(),
	}}
}

func modelPublishCommand() *command {
	var p api.ModelPublishParams
	var specFile string
	return &command{
		name:     "publish",
		args:     "[CID] --name NAME [--job ID] [--spec FILE] [--description TEXT] [--license SPDX]",
		summary:  "sign a model record and publish it to the swarm's indexers (--job ID publishes a train job's result)",
		want:     "the weights' CID",
		optional: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&p.Name, "name", "", "the model's name (required)")
			fs.StringVar(&p.Job, "job", "", "a train job of this node: its weights, spec, metrics and receipt")
			fs.StringVar(&specFile, "spec", "", "the train spec the weights came from (a job spec or its train section), without --job")
			fs.StringVar(&p.Description, "description", "", "what the model does")
			fs.StringVar(&p.License, "license", "", "the weights' license (an SPDX identifier, such as MIT)")
		},
		run: func(e *env, args []string) error {
			if len(args) == 1 {
				p.CID = args[0]
			}
			if p.Name == "" {
				return fmt.Errorf("%w: --name is required", errUsage)
			}
			if p.Job == "" && (p.CID == "" || specFile == "") {
				return fmt.Errorf("%w: give --job ID, or a CID and --spec FILE", errUsage)
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
		},
	}
}

func modelListCommand() *command {
	return &command{
		name:    "list",
		summary: "the model records this node publishes",
		run: func(e *env, _ []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) ([]api.ModelInfo, error) {
				return c.ModelList(ctx)
			}, func(ms []api.ModelInfo) error {
				tw := e.table("ID\tNAME\tWEIGHTS\tJOB\tPUBLISHED")
				for _, m := range ms {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", shortID(m.ID), m.Name, m.WeightsCID, orDash(m.Job), m.PublishedAt.Local().Format(time.DateTime))
				}
				return tw.Flush()
			})
		},
	}
}

func modelSearchCommand() *command {
	var addr, publisher, cursor string
	var limit int
	return &command{
		name:    "search",
		args:    "TEXT [--indexer ADDR] [--publisher PEER] [--limit N] [--cursor C]",
		summary: "find model records by name or description, newest first",
		want:    "the text to look for",
		flags: func(fs *flag.FlagSet) {
			indexerFlag(fs, &addr)
			fs.StringVar(&publisher, "publisher", "", "only models this peer published")
			fs.IntVar(&limit, "limit", 0, "models per page (default 50, at most 500)")
			fs.StringVar(&cursor, "cursor", "", "the next page's cursor, as the last page printed it")
		},
		run: func(e *env, args []string) error {
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
		},
	}
}

func modelShowCommand() *command {
	var addr string
	return &command{
		name:    "show",
		args:    "ID [--indexer ADDR]",
		summary: "a model record: weights, train spec, metrics, the job and receipt behind it",
		want:    "a model ID",
		flags:   func(fs *flag.FlagSet) { indexerFlag(fs, &addr) },
		run: func(e *env, args []string) error {
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
		},
	}
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
