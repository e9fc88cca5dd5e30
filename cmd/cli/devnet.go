package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/cyxwiz/cyxwiz/internal/logging"
	"github.com/cyxwiz/cyxwiz/node"
	"github.com/cyxwiz/cyxwiz/node/devnet"
	"github.com/cyxwiz/cyxwiz/settlement/localledger"
	"github.com/spf13/cobra"
)

func devnetCommand(e *env) *cobra.Command {
	var (
		nodes    int
		dir      string
		logLevel string
		ledger   bool
	)
	c := &cobra.Command{
		Use:   "devnet",
		Short: "run a local swarm of N nodes on loopback, with a local Solana ledger, until interrupted",
		Example: `  cyxwiz devnet
  cyxwiz devnet --nodes 5 --dir /tmp/net
  cyxwiz devnet --nodes 2 --ledger=false`,
		Args: noArgs,
		RunE: run(e, func(args []string) error {
			if nodes < 1 || nodes > 64 {
				return usagef("--nodes %d is not between 1 and 64", nodes)
			}
			if dir == "" {
				dir = filepath.Join(e.repo, "devnet")
			}
			level, err := node.ParseLevel(logLevel)
			if err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := logging.New(e.stderr, "text", level, max(level, slog.LevelError))
			ctx, stop := signalContext(e)
			defer stop()
			startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			params := devnet.Params{Dir: dir, Nodes: nodes, Logger: log}
			if ledger && nodes >= 3 {
				l, err := localledger.Start(startCtx, localledger.Options{Logger: log.With("system", "ledger")})
				switch {
				case errors.Is(err, localledger.ErrUnavailable):
					fmt.Fprintf(e.stderr, "cyxwiz devnet: no local ledger, so jobs are not paid: %v\n", err)
				case err != nil:
					return err
				default:
					defer l.Close()
					params.Ledger = l
				}
			} else if ledger {
				fmt.Fprintln(e.stderr, "cyxwiz devnet: a ledger needs at least 3 nodes (arbiter, requester, provider); none started")
			}
			d, err := devnet.Start(startCtx, params)
			cancel()
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "devnet ready: %d nodes, every node connected to every other\n", nodes)
			for i, n := range d.Nodes {
				fmt.Fprintf(e.stdout, "  node%d  %s  api %s  repo %s\n", i, n.Host().ID(), n.APIAddr(), filepath.Join(dir, fmt.Sprintf("node%d", i)))
			}
			if l := params.Ledger; l != nil {
				fmt.Fprintf(e.stdout, "ledger: %s (local Solana); node0 is the arbiter; jobs priced in mint %s are paid through escrows\n", l.RPC(), d.Mint)
			}
			fmt.Fprintf(e.stdout, "try: cyxwiz --repo %s swarm peers\nCtrl-C stops the devnet.\n", filepath.Join(dir, "node0"))
			<-ctx.Done()
			return closeWithWatchdog(d.Close, 30*time.Second, log)
		}),
	}
	fs := c.Flags()
	fs.IntVar(&nodes, "nodes", 3, "number of nodes")
	fs.StringVar(&dir, "dir", "", "folder for the nodes' repos (default REPO/devnet)")
	fs.StringVar(&logLevel, "log-level", "warn", "log level of the nodes")
	fs.BoolVar(&ledger, "ledger", true, "start a local Solana ledger and settle priced jobs on it (node0 is the arbiter)")
	return c
}
