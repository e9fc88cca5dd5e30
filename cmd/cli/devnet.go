package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/cyxwiz/cyxwiz/internal/logging"
	"github.com/cyxwiz/cyxwiz/node"
)

func devnetCommand() *command {
	var (
		nodes    int
		dir      string
		logLevel string
	)
	return &command{
		name:    "devnet",
		args:    "[--nodes N] [--dir DIR]",
		summary: "run a local swarm of N nodes on loopback until interrupted",
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&nodes, "nodes", 3, "number of nodes")
			fs.StringVar(&dir, "dir", "", "folder for the nodes' repos (default REPO/devnet)")
			fs.StringVar(&logLevel, "log-level", "warn", "log level of the nodes")
		},
		run: func(e *env, args []string) error {
			if nodes < 1 || nodes > 64 {
				return fmt.Errorf("%w: --nodes %d is not between 1 and 64", errUsage, nodes)
			}
			if dir == "" {
				dir = filepath.Join(e.repo, "devnet")
			}
			level, err := node.ParseLevel(logLevel)
			if err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := logging.New(e.stderr, "text", level, max(level, slog.LevelError))
			ctx, stop := signalContext(e.stderr)
			defer stop()
			startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			d, err := node.StartDevnet(startCtx, node.DevnetParams{Dir: dir, Nodes: nodes, Logger: log})
			cancel()
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "devnet ready: %d nodes, every node connected to every other\n", nodes)
			for i, n := range d.Nodes {
				fmt.Fprintf(e.stdout, "  node%d  %s  api %s  repo %s\n", i, n.Host().ID(), n.APIAddr(), filepath.Join(dir, fmt.Sprintf("node%d", i)))
			}
			fmt.Fprintf(e.stdout, "try: cyxwiz --repo %s swarm peers\nCtrl-C stops the devnet.\n", filepath.Join(dir, "node0"))
			<-ctx.Done()
			return closeWithWatchdog(d.Close, 30*time.Second, log)
		},
	}
}
