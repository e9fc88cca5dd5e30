package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/cyxwiz/cyxwiz/node/api"
)

func jobDisputeCommand() *command {
	var reason string
	return &command{
		name:    "dispute",
		args:    "ID [--reason TEXT]",
		summary: "ask the arbiter to decide the job's escrow (as its requester or its provider)",
		flags:   func(fs *flag.FlagSet) { fs.StringVar(&reason, "reason", "", "what is wrong, for the arbiter") },
		want:    "one job ID",
		run: func(e *env, args []string) error {
			// No timeout: the request waits on a ledger transaction.
			return show(e, 0, func(ctx context.Context, c *api.Client) (api.JobDisputeResult, error) {
				return c.JobDispute(ctx, api.JobDisputeParams{ID: args[0], Reason: reason})
			}, func(r api.JobDisputeResult) error {
				fmt.Fprintf(e.stdout, "dispute of escrow %s opened by the %s; the arbiter decides it\n", r.Escrow, r.Side)
				return nil
			})
		},
	}
}

func arbiterCommand() *command {
	return &command{name: "arbiter", summary: "decide escrow disputes (on a node with role arbiter)", sub: []*command{
		{
			name:    "disputes",
			summary: "the disputes this arbiter was asked to decide",
			run: func(e *env, args []string) error {
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
			},
		},
		{
			name:    "resolve",
			args:    "ESCROW requester|provider",
			summary: "decide a dispute: pay the escrow to the side named, which co-signs",
			want:    "an escrow ID and a side (requester or provider)",
			nargs:   2,
			run: func(e *env, args []string) error {
				// No timeout: the request waits on a ledger transaction.
				return show(e, 0, func(ctx context.Context, c *api.Client) (api.DisputeInfo, error) {
					return c.ArbiterResolve(ctx, api.ArbiterResolveParams{Escrow: args[0], Winner: args[1]})
				}, func(d api.DisputeInfo) error {
					fmt.Fprintf(e.stdout, "escrow %s paid to the %s (tx %s)\n", d.Escrow, d.Winner, d.Tx)
					return nil
				})
			},
		},
	}}
}
