package cli

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/cyxwiz/cyxwiz/cmd/cli/top"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/spf13/cobra"
)

func topCommand(e *env) *cobra.Command {
	var interval time.Duration
	c := &cobra.Command{
		Use:   "top",
		Short: "a terminal monitor of this node: peers, providers, jobs, traffic, escrows, served models and live training loss",
		Long: "top shows this node's peers and providers, its running and recent jobs with their escrows, " +
			"the swarm traffic, the models it serves with their call rates, latencies and earnings (infer.stats), " +
			"and the loss of a running train job as a sparkline, refreshed every --interval. " +
			"It needs a terminal of at least 80x24; q quits.",
		Example: "  cyxwiz top\n  cyxwiz --repo ~/.cyxwiz-2 top --interval 2s",
		Args:    exactArgs(0, "no arguments"),
		RunE: run(e, func([]string) error {
			if !isTerminal(e.stdout) || !isTerminal(os.Stdin) {
				return errors.New("top needs a terminal on standard input and output")
			}
			return withClient(e, 0, func(ctx context.Context, c *api.Client) error {
				return top.Run(ctx, c, top.Options{Interval: interval, Input: os.Stdin, Output: e.stdout, AltScreen: true})
			})
		}),
	}
	c.Flags().DurationVar(&interval, "interval", time.Second, "how often to read the node")
	return c
}
