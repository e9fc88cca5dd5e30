package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/cyxwiz/cyxwiz/internal/logging"
	"github.com/cyxwiz/cyxwiz/node"
	"github.com/spf13/cobra"
)

func daemonCommand(e *env) *cobra.Command {
	var (
		overrides *node.Overrides
		logLevel  string
	)
	c := &cobra.Command{
		Use:   "daemon [--CONFIG.KEY=VALUE]...",
		Short: "run the node; every config key can be overridden by a flag (docs/config.md)",
		Long: `Run the node until SIGINT or SIGTERM (a second one exits at once). When it is ready,
the daemon writes its API address to REPO/api, where the other commands find it.
Every config key is also a flag, named after its dotted path; a list flag replaces
the configured list, repeat it for several values (docs/config.md).`,
		Example: `  cyxwiz daemon
  cyxwiz --repo /srv/cyxwiz daemon --log-level=debug
  cyxwiz daemon --api.addr=127.0.0.1:0 --log.format=json
  cyxwiz daemon --swarm.listen=/ip4/0.0.0.0/tcp/4001 --swarm.listen=/ip4/0.0.0.0/udp/4001/quic-v1`,
		Args: noArgs,
		RunE: run(e, func(args []string) error {
			if logLevel != "" {
				overrides.Set("log.level", logLevel)
			}
			ctx, stop := signalContext(e)
			defer stop()
			return runDaemon(ctx, e, overrides)
		}),
	}
	overrides = bindConfigFlags(c.Flags())
	c.Flags().StringVar(&logLevel, "log-level", "", "shorthand for --log.level")
	return c
}

func runDaemon(ctx context.Context, e *env, overrides *node.Overrides) error {
	repo, err := node.OpenRepo(e.repo)
	if err != nil {
		return err
	}
	defer repo.Close()
	cfg, err := repo.Config()
	if err != nil {
		return err
	}
	if err := overrides.Apply(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log, err := newLogger(e.stderr, cfg.Log)
	if err != nil {
		return err
	}
	if cfg.Log.Format == "json" {
		e.records.Store(log)
	}
	n, err := node.New(ctx, node.Params{Repo: repo, Config: cfg, Logger: log})
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		n.Close()
		return err
	}
	fmt.Fprintf(e.stdout, "daemon ready: peer %s, api %s\n", n.Host().ID(), n.APIAddr())

	<-ctx.Done()
	log.Info("shutting down")
	return closeWithWatchdog(n.Close, time.Duration(cfg.ShutdownTimeoutSeconds)*time.Second, log)
}

// closeWithWatchdog runs closeFn and gives up after timeout: a shutdown
// that hangs must not keep the process alive.
func closeWithWatchdog(closeFn func() error, timeout time.Duration, log *slog.Logger) error {
	done := make(chan error, 1)
	go func() { done <- closeFn() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		log.Info("stopped")
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("shutdown: still running after %s, exiting anyway", timeout)
	}
}

// newLogger builds the daemon's logger and bridges library logs into it.
func newLogger(w io.Writer, cfg node.LogConfig) (*slog.Logger, error) {
	level, err := node.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	libLevel, err := node.ParseLevel(cfg.Libp2pLevel)
	if err != nil {
		return nil, fmt.Errorf("log.libp2p_level: %w", err)
	}
	return logging.New(w, cfg.Format, level, libLevel), nil
}
