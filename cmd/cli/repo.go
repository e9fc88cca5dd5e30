package cli

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/cyxwiz/cyxwiz/node"
)

func initCommand() *command {
	var (
		apiAddr   string
		listen    listFlag
		bootstrap listFlag
		swarmKey  string
		profile   string
		role      string
	)
	return &command{
		name:    "init",
		args:    "[--api-addr HOST:PORT] [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--swarm-key FILE] [--profile default|local] [--role peer|indexer]",
		summary: "create a repo: peer key, config, wallet keypair, API token",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&apiAddr, "api-addr", "", "API address (host:port, port 0 picks a free one)")
			fs.Var(&listen, "listen", "swarm listen multiaddr (repeatable; port 0 picks a free one)")
			fs.Var(&bootstrap, "bootstrap", "bootstrap peer multiaddr ending in /p2p/ID (repeatable)")
			fs.StringVar(&swarmKey, "swarm-key", "", "swarm key file: join only the private swarm holding this key")
			fs.StringVar(&profile, "profile", "default", "default (public node) or local (loopback only, free ports, no LAN or NAT traffic)")
			fs.StringVar(&role, "role", node.RolePeer, "peer or indexer (an indexer also relays)")
		},
		run: func(e *env, args []string) error {
			var cfg node.Config
			switch profile {
			case "default":
				cfg = node.DefaultConfig()
			case "local":
				cfg = node.LocalConfig()
			default:
				return fmt.Errorf("%w: --profile %q is not one of default, local", errUsage, profile)
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
		},
	}
}

func configCommand() *command {
	return &command{name: "config", summary: "the repo's configuration", sub: []*command{{
		name:    "show",
		summary: "print the repo's config file, every key included",
		run: func(e *env, args []string) error {
			cfg, err := node.LoadConfig(e.repo + "/" + node.ConfigFile)
			if err != nil {
				return err
			}
			return e.printJSON(cfg)
		},
	}}}
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version, the commit and the build tags",
		run: func(e *env, _ []string) error {
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
