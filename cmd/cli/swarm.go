package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
)

func idCommand() *command {
	return &command{
		name:    "id",
		summary: "peer ID, listen addresses, role and version of the running node",
		run: func(e *env, args []string) error {
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
		},
	}
}

func swarmPeersCommand() *command {
	return &command{
		name:    "peers",
		summary: "list connected peers",
		run: func(e *env, args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) ([]api.Peer, error) {
				return c.SwarmPeers(ctx)
			}, func(peers []api.Peer) error {
				tw := e.table("PEER\tADDRESS\tDIRECTION\tLATENCY\tAGENT")
				for _, p := range peers {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fms\t%s\n", p.ID, p.Address, p.Direction, p.LatencyMS, p.Agent)
				}
				return tw.Flush()
			})
		},
	}
}

func swarmConnectCommand() *command {
	return &command{
		name:    "connect",
		args:    "MULTIADDR",
		summary: "dial a peer (a multiaddr ending in /p2p/ID)",
		want:    "one multiaddr",
		run: func(e *env, args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) (api.SwarmConnectResult, error) {
				return c.SwarmConnect(ctx, args[0])
			}, func(res api.SwarmConnectResult) error {
				fmt.Fprintf(e.stdout, "connected to %s\n", res.ID)
				return nil
			})
		},
	}
}

func swarmDisconnectCommand() *command {
	return &command{
		name:    "disconnect",
		args:    "PEER_ID",
		summary: "close every connection to a peer",
		want:    "one peer ID",
		run: func(e *env, args []string) error {
			return withClient(e, callTimeout, func(ctx context.Context, c *api.Client) error {
				if err := c.SwarmDisconnect(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "disconnected from %s\n", args[0])
				return nil
			})
		},
	}
}

func swarmEventsCommand() *command {
	return &command{
		name:    "events",
		summary: "follow peers connecting and disconnecting until interrupted",
		run: func(e *env, args []string) error {
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
		},
	}
}

func swarmKeyGenCommand() *command {
	var out string
	return &command{
		name:    "gen",
		args:    "[-o FILE]",
		summary: "print a new pre-shared key for a private swarm",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&out, "o", "", "write the key to FILE (mode 0600) instead of standard output")
		},
		run: func(e *env, args []string) error {
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
		},
	}
}
