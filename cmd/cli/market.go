package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/cyxwiz/cyxwiz/node/api"
)

func providersCommand() *command {
	var gpu bool
	return &command{
		name:    "providers",
		args:    "[--gpu]",
		summary: "list the providers' capacity records found in the DHT",
		flags:   func(fs *flag.FlagSet) { fs.BoolVar(&gpu, "gpu", false, "only providers that offer GPUs") },
		run: func(e *env, args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) ([]api.ProviderInfo, error) {
				return c.MarketProviders(ctx, api.ProvidersParams{GPU: gpu})
			}, func(providers []api.ProviderInfo) error {
				tw := e.table("PROVIDER\tCPUS\tMEMORY\tDISK\tGPUS\tEXECUTORS\tPRICE/CPU-S\tSCORE\tRELAY")
				for _, p := range providers {
					id := p.ID
					if p.Self {
						id += " (this node)"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%d\t%.0f\t%v\n", id, p.CPUCores,
						humanBytes(p.MemoryMiB<<20), humanBytes(p.DiskMiB<<20), len(p.GPUs),
						strings.Join(p.Executors, ","), p.PricePerCPUSecond, p.BenchScore, p.Relay)
				}
				return tw.Flush()
			})
		},
	}
}
