package cli

import (
	"context"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/spf13/cobra"
)

// completeTimeout bounds the daemon request behind one shell completion:
// a shell waits on it while the user waits on the shell.
const completeTimeout = 2 * time.Second

// completeFrom completes a command's first argument with what list asks
// the daemon of the --repo for. Without a daemon, or when it does not
// answer in time, it completes nothing and says nothing.
func completeFrom(e *env, list func(context.Context, *api.Client) ([]cobra.Completion, error)) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		repo, err := e.repoDir()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := api.FromRepo(repo)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
		defer cancel()
		items, err := list(ctx, c)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, it := range items {
			if strings.HasPrefix(it, toComplete) {
				out = append(out, it)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeJobs completes the IDs of the jobs this node submitted.
func completeJobs(e *env) cobra.CompletionFunc {
	return completeFrom(e, func(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
		jobs, err := c.JobList(ctx)
		var out []cobra.Completion
		for _, j := range jobs {
			out = append(out, cobra.CompletionWithDesc(j.ID, strings.TrimSpace(j.Kind+" "+j.State)))
		}
		return out, err
	})
}

// completePins completes the CIDs of the node's pins.
func completePins(e *env) cobra.CompletionFunc {
	return completeFrom(e, func(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
		pins, err := c.ContentPins(ctx)
		var out []cobra.Completion
		for _, p := range pins {
			out = append(out, cobra.CompletionWithDesc(p.ID, p.Name))
		}
		return out, err
	})
}

// completePeers completes the IDs of the connected peers.
func completePeers(e *env) cobra.CompletionFunc {
	return completeFrom(e, func(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
		peers, err := c.SwarmPeers(ctx)
		var out []cobra.Completion
		for _, p := range peers {
			out = append(out, cobra.CompletionWithDesc(p.ID, p.Agent))
		}
		return out, err
	})
}
