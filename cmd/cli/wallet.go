package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/cyxwiz/cyxwiz/node/api"
)

func walletCommand() *command {
	return &command{name: "wallet", summary: "the node's ledger account", sub: []*command{
		{
			name:    "address",
			summary: "the node's account address (the public key of keys/wallet.json)",
			run: func(e *env, args []string) error {
				return show(e, callTimeout, func(ctx context.Context, c *api.Client) (api.WalletAddress, error) {
					return c.WalletAddress(ctx)
				}, func(a api.WalletAddress) error {
					fmt.Fprintln(e.stdout, a.Address)
					return nil
				})
			},
		},
		walletBalanceCommand(),
	}}
}

func walletBalanceCommand() *command {
	var mint string
	return &command{
		name:    "balance",
		args:    "[--mint MINT]",
		summary: "the account's balance of the market mint (or MINT), and its SOL",
		flags:   func(fs *flag.FlagSet) { fs.StringVar(&mint, "mint", "", "the token to report (default: market.mint)") },
		run: func(e *env, args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) (api.WalletBalance, error) {
				return c.WalletBalance(ctx, api.WalletBalanceParams{Mint: mint})
			}, func(b api.WalletBalance) error {
				fmt.Fprintf(e.stdout, "%s: %d of mint %s", b.Address, b.Balance, b.Mint)
				if b.Lamports != nil {
					fmt.Fprintf(e.stdout, ", %d lamports", *b.Lamports)
				}
				fmt.Fprintln(e.stdout)
				return nil
			})
		},
	}
}
