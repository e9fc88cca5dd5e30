package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/spf13/cobra"
)

func idCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "id",
		Short:   "peer ID, listen addresses, role and version of the running node",
		Example: "  cyxwiz id\n  cyxwiz --repo /srv/node1 id --json",
		Args:    noArgs,
		RunE: run(e, func(args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) (api.NodeInfo, error) {
				return c.NodeInfo(ctx)
			}, func(info api.NodeInfo) error {
				fmt.Fprintf(e.stdout, "peer id:   %s\nrole:      %s\nversion:   %s\nprivate:   %v\ndht mode:  %s\npeers:     %d\naddresses:\n",
					info.ID, info.Role, info.Version, info.PrivateSwarm, info.DHTMode, info.Peers)
				for _, a := range info.Addresses {
					fmt.Fprintf(e.stdout, "  %s\n", a)
				}
				return nil
			})
		}),
	}
}

func swarmCommand(e *env) *cobra.Command {
	return group("swarm", "peers of this node and private swarm keys",
		"  cyxwiz swarm peers\n  cyxwiz swarm connect /ip4/10.0.0.5/tcp/4250/p2p/12D3KooW...\n  cyxwiz swarm key gen -o swarm.key",
		swarmPeersCommand(e),
		swarmConnectCommand(e),
		swarmDisconnectCommand(e),
		swarmEventsCommand(e),
		group("key", "pre-shared keys for private swarms", "  cyxwiz swarm key gen -o swarm.key", swarmKeyGenCommand(e)),
	)
}

func swarmPeersCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "peers",
		Short:   "list connected peers",
		Example: "  cyxwiz swarm peers\n  cyxwiz swarm peers --json",
		Args:    noArgs,
		RunE: run(e, func(args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) ([]api.Peer, error) {
				return c.SwarmPeers(ctx)
			}, func(peers []api.Peer) error {
				tw := e.table("PEER\tADDRESS\tDIRECTION\tLATENCY\tAGENT")
				for _, p := range peers {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fms\t%s\n", p.ID, p.Address, p.Direction, p.LatencyMS, p.Agent)
				}
				return tw.Flush()
			})
		}),
	}
}

func swarmConnectCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:               "connect MULTIADDR",
		Short:             "dial a peer (a multiaddr ending in /p2p/ID)",
		Example:           "  cyxwiz swarm connect /ip4/10.0.0.5/tcp/4250/p2p/12D3KooW...",
		Args:              exactArgs(1, "one multiaddr"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: run(e, func(args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) (api.SwarmConnectResult, error) {
				return c.SwarmConnect(ctx, args[0])
			}, func(res api.SwarmConnectResult) error {
				fmt.Fprintf(e.stdout, "connected to %s\n", res.ID)
				return nil
			})
		}),
	}
}

func swarmDisconnectCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:               "disconnect PEER_ID",
		Short:             "close every connection to a peer",
		Example:           "  cyxwiz swarm disconnect 12D3KooWPAegP3CjnFRJbeZvSoCeBbuzsP61P8YzUa4vFdRYa5vf",
		Args:              exactArgs(1, "one peer ID"),
		ValidArgsFunction: completePeers(e),
		RunE: run(e, func(args []string) error {
			return withClient(e, callTimeout, func(ctx context.Context, c *api.Client) error {
				if err := c.SwarmDisconnect(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "disconnected from %s\n", args[0])
				return nil
			})
		}),
	}
}

func swarmEventsCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "events",
		Short:   "follow peers connecting and disconnecting until interrupted",
		Example: "  cyxwiz swarm events\n  cyxwiz swarm events --json",
		Args:    noArgs,
		RunE: run(e, func(args []string) error {
			return withClient(e, 0, func(ctx context.Context, c *api.Client) error {
				sub, err := c.SubscribePeers(ctx)
				if err != nil {
					return err
				}
				defer sub.Close()
				for raw := range sub.Events() {
					if e.json {
						fmt.Fprintln(e.stdout, string(raw))
						continue
					}
					var ev api.PeerEvent
					if err := json.Unmarshal(raw, &ev); err != nil {
						return fmt.Errorf("decode event: %w", err)
					}
					fmt.Fprintf(e.stdout, "%s  %-12s  %s\n", ev.Time.Local().Format(time.TimeOnly), ev.State, ev.ID)
				}
				if ctx.Err() != nil {
					return nil
				}
				return sub.Err()
			})
		}),
	}
}

func swarmKeyGenCommand(e *env) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:     "gen",
		Short:   "print a new pre-shared key for a private swarm",
		Example: "  cyxwiz swarm key gen -o swarm.key\n  cyxwiz swarm key gen > swarm.key",
		Args:    noArgs,
		RunE: run(e, func(args []string) error {
			key, err := p2p.GenerateSwarmKey()
			if err != nil {
				return err
			}
			if out == "" {
				_, err = e.stdout.Write(key)
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("write swarm key: %w", err)
			}
			if _, err := f.Write(key); err != nil {
				f.Close()
				return fmt.Errorf("write swarm key: %w", err)
			}
			return f.Close()
		}),
	}
	c.Flags().StringVarP(&out, "output", "o", "", "write the key to FILE (mode 0600) instead of standard output")
	return c
}
