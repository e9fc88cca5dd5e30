package cli

import (
	"context"
	"fmt"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/spf13/cobra"
)

func walletCommand(e *env) *cobra.Command {
	return group("wallet", "the node's ledger account", "  cyxwiz wallet address\n  cyxwiz wallet balance",
		&cobra.Command{
			Use:     "address",
			Short:   "the node's account address (the public key of keys/wallet.json)",
			Example: "  cyxwiz wallet address",
			Args:    noArgs,
			RunE: run(e, func(args []string) error {
				return show(e, callTimeout, func(ctx context.Context, c *api.Client) (api.WalletAddress, error) {
					return c.WalletAddress(ctx)
				}, func(a api.WalletAddress) error {
					fmt.Fprintln(e.stdout, a.Address)
					return nil
				})
			}),
		},
		walletBalanceCommand(e),
	)
}

func walletBalanceCommand(e *env) *cobra.Command {
	var mint string
	c := &cobra.Command{
		Use:     "balance",
		Short:   "the account's balance of the market mint (or MINT), and its SOL",
		Example: "  cyxwiz wallet balance\n  cyxwiz wallet balance --mint MINT --json",
		Args:    noArgs,
		RunE: run(e, func(args []string) error {
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
		}),
	}
	c.Flags().StringVar(&mint, "mint", "", "the token to report (default: market.mint)")
	return c
}
