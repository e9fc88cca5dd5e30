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
		Short:   "list the providers' capacity records found in the DHT",
		Example: "  cyxwiz providers\n  cyxwiz providers --gpu --json",
		Args:    noArgs,
		RunE: run(e, func(args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) ([]api.ProviderInfo, error) {
				return c.MarketProviders(ctx, api.ProvidersParams{GPU: gpu})
			}, func(providers []api.ProviderInfo) error {
				tw := e.table("PROVIDER\tCPUS\tMEMORY\tDISK\tGPUS\tEXECUTORS\tPRICE/CPU-S\tSCORE\tCAPACITY\tRELAY")
				for _, p := range providers {
					id := p.ID
					if p.Self {
						id += " (this node)"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%d\t%.0f\t%s\t%v\n", id, p.CPUCores,
						humanBytes(p.MemoryMiB<<20), humanBytes(p.DiskMiB<<20), len(p.GPUs),
						strings.Join(p.Executors, ","), p.PricePerCPUSecond, p.BenchScore, p.Capacity, p.Relay)
				}
				return tw.Flush()
			})
		}),
	}
	c.Flags().BoolVar(&gpu, "gpu", false, "only providers that offer GPUs")
	return c
}
