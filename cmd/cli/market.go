package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/spf13/cobra"
)

func providersCommand(e *env) *cobra.Command {
	var gpu bool
	c := &cobra.Command{
		Use:     "providers",
		Short:   "list the providers' capacity records found in the DHT, with this node's reputation of each",
		Example: "  cyxwiz providers\n  cyxwiz providers --gpu --json",
		Args:    noArgs,
		RunE: run(e, func(args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) ([]api.ProviderInfo, error) {
				return c.MarketProviders(ctx, api.ProvidersParams{GPU: gpu})
			}, func(providers []api.ProviderInfo) error {
				tw := e.table("PROVIDER\tCPUS\tMEMORY\tDISK\tGPUS\tEXECUTORS\tPRICE/CPU-S\tSCORE\tCAPACITY\tRELAY\tREPUTATION\tFROM")
				for _, p := range providers {
					id := p.ID
					if p.Self {
						id += " (this node)"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%d\t%.0f\t%s\t%v\t%s\t%s\n", id, p.CPUCores,
						humanBytes(p.MemoryMiB<<20), humanBytes(p.DiskMiB<<20), len(p.GPUs),
						strings.Join(p.Executors, ","), p.PricePerCPUSecond, p.BenchScore, p.Capacity, p.Relay,
						reputationScore(p.Reputation), reputationFrom(p.Reputation))
				}
				return tw.Flush()
			})
		}),
	}
	c.Flags().BoolVar(&gpu, "gpu", false, "only providers that offer GPUs")
	return c
}

// reputationScore shows a provider's score, or that it is banned.
func reputationScore(r api.Reputation) string {
	if r.Banned {
		return fmt.Sprintf("%.2f banned", r.Score)
	}
	return fmt.Sprintf("%.2f", r.Score)
}

// reputationFrom says where a provider's score comes from.
func reputationFrom(r api.Reputation) string {
	return fmt.Sprintf("%d own, %d receipts, %d paid, %d mismatches", r.Own, r.Receipts, r.Paid, r.Mismatches)
}
