package cli

import (
	"context"
	"fmt"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/spf13/cobra"
)

func jobDisputeCommand(e *env) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:               "dispute ID",
		Short:             "ask the arbiter to decide the job's escrow (as its requester or its provider)",
		Example:           "  cyxwiz job dispute 06BKC7HY2359F08JS8DVVJQTR8 --reason \"the output is empty\"",
		Args:              exactArgs(1, "one job ID"),
		ValidArgsFunction: completeJobs(e),
		RunE: run(e, func(args []string) error {
			// No timeout: the request waits on a ledger transaction.
			return show(e, 0, func(ctx context.Context, c *api.Client) (api.JobDisputeResult, error) {
				return c.JobDispute(ctx, api.JobDisputeParams{ID: args[0], Reason: reason})
			}, func(r api.JobDisputeResult) error {
				fmt.Fprintf(e.stdout, "dispute of escrow %s opened by the %s; the arbiter decides it\n", r.Escrow, r.Side)
				return nil
			})
		}),
	}
	c.Flags().StringVar(&reason, "reason", "", "what is wrong, for the arbiter")
	return c
}

func arbiterCommand(e *env) *cobra.Command {
	return group("arbiter", "decide escrow disputes (on a node with role arbiter)",
		"  cyxwiz arbiter disputes\n  cyxwiz arbiter resolve ESCROW provider",
		&cobra.Command{
			Use:     "disputes",
			Short:   "the disputes this arbiter was asked to decide",
			Example: "  cyxwiz arbiter disputes\n  cyxwiz arbiter disputes --json",
			Args:    noArgs,
			RunE: run(e, func(args []string) error {
				return show(e, callTimeout, func(ctx context.Context, c *api.Client) ([]api.DisputeInfo, error) {
					return c.ArbiterDisputes(ctx)
				}, func(ds []api.DisputeInfo) error {
					tw := e.table("ESCROW\tAMOUNT\tOPENED BY\tREASON\tRESULT\tDECIDED")
					for _, d := range ds {
						decided := "open"
						if d.Winner != "" {
							decided = "for the " + d.Winner
						}
						fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", d.Escrow, d.Amount, d.OpenedBy, d.Reason, d.ResultSummary, decided)
					}
					return tw.Flush()
				})
			}),
		},
		&cobra.Command{
			Use:       "resolve ESCROW requester|provider",
			Short:     "decide a dispute: pay the escrow to the side named, which co-signs",
			Example:   "  cyxwiz arbiter resolve ESCROW provider\n  cyxwiz arbiter resolve ESCROW requester",
			Args:      exactArgs(2, "an escrow ID and a side (requester or provider)"),
			ValidArgs: []string{"requester", "provider"},
			RunE: run(e, func(args []string) error {
				// No timeout: the request waits on a ledger transaction.
				return show(e, 0, func(ctx context.Context, c *api.Client) (api.DisputeInfo, error) {
					return c.ArbiterResolve(ctx, api.ArbiterResolveParams{Escrow: args[0], Winner: args[1]})
				}, func(d api.DisputeInfo) error {
					fmt.Fprintf(e.stdout, "escrow %s paid to the %s (tx %s)\n", d.Escrow, d.Winner, d.Tx)
					return nil
				})
			}),
		},
	)
}
