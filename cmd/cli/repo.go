package cli

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/cyxwiz/cyxwiz/node"
	"github.com/spf13/cobra"
)

func initCommand(e *env) *cobra.Command {
	var (
		apiAddr   string
		listen    []string
		bootstrap []string
		swarmKey  string
		profile   string
		role      string
	)
	c := &cobra.Command{
		Use:   "init",
		Short: "create a repo: peer key, config, wallet keypair, API token",
		Example: `  cyxwiz init
  cyxwiz --repo /srv/node1 init --profile local --api-addr 127.0.0.1:0
  cyxwiz init --swarm-key swarm.key --bootstrap /ip4/10.0.0.5/tcp/4250/p2p/12D3KooW...`,
		Args: noArgs,
		RunE: run(e, func(args []string) error {
			var cfg node.Config
			switch profile {
			case "default":
				cfg = node.DefaultConfig()
			case "local":
				cfg = node.LocalConfig()
			default:
				return usagef("--profile %q is not one of default, local", profile)
			}
			cfg.Role = role
			if apiAddr != "" {
				cfg.API.Addr = apiAddr
			}
			if len(listen) > 0 {
				cfg.Swarm.Listen = listen
			}
			if len(bootstrap) > 0 {
				cfg.Swarm.Bootstrap = bootstrap
			}
			opts := node.InitOptions{Config: cfg}
			if swarmKey != "" {
				data, err := os.ReadFile(swarmKey)
				if err != nil {
					return fmt.Errorf("read swarm key: %w", err)
				}
				opts.SwarmKey = data
			}
			id, err := node.InitRepo(e.repo, opts)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(map[string]string{"id": id.String(), "repo": e.repo})
			}
			fmt.Fprintf(e.stdout, "initialized repo %s\npeer id: %s\n", e.repo, id)
			return nil
		}),
	}
	fs := c.Flags()
	fs.StringVar(&apiAddr, "api-addr", "", "API address (host:port, port 0 picks a free one; default "+node.DefaultAPIAddr+")")
	fs.StringArrayVar(&listen, "listen", nil, "swarm listen multiaddr (repeatable; port 0 picks a free one)")
	fs.StringArrayVar(&bootstrap, "bootstrap", nil, "bootstrap peer multiaddr ending in /p2p/ID (repeatable)")
	fs.StringVar(&swarmKey, "swarm-key", "", "swarm key file: join only the private swarm holding this key")
	fs.StringVar(&profile, "profile", "default", "default (public node) or local (loopback only, free ports, no LAN or NAT traffic)")
	fs.StringVar(&role, "role", node.RolePeer, "peer or indexer (an indexer also relays)")
	return c
}

func configCommand(e *env) *cobra.Command {
	return group("config", "the repo's configuration", "  cyxwiz config show", &cobra.Command{
		Use:     "show",
		Short:   "print the repo's config file, every key included",
		Example: "  cyxwiz config show\n  cyxwiz --repo /srv/node1 config show",
		Args:    noArgs,
		RunE: run(e, func(args []string) error {
			cfg, err := node.LoadConfig(e.repo + "/" + node.ConfigFile)
			if err != nil {
				return err
			}
			return e.printJSON(cfg)
		}),
	})
}

func versionCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "print the version, the commit and the build tags",
		Example: "  cyxwiz version\n  cyxwiz --version\n  cyxwiz version --json",
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			e.ran = true
			printVersion(e)
			return nil
		},
	}
}

// buildInfo is what the binary says of its build: the commit (with
// "-dirty" for a modified tree) and the build tags.
func buildInfo() (commit, tags string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", ""
	}
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		case "-tags":
			tags = s.Value
		}
	}
	if commit != "" && dirty {
		commit += "-dirty"
	}
	return commit, tags
}

// printVersion prints the version, commit and build tags.
func printVersion(e *env) {
	commit, tags := buildInfo()
	if e.json {
		e.printJSON(map[string]string{"version": node.Version, "commit": commit, "tags": tags})
		return
	}
	fmt.Fprintf(e.stdout, "cyxwiz %s\ncommit: %s\ntags:   %s\n", node.Version, orDash(commit), orDash(tags))
}
