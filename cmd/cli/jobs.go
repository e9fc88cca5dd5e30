package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"
)

func jobCommand(e *env) *cobra.Command {
	return group("job", "submit and follow compute jobs",
		"  cyxwiz job submit job.json --wait\n  cyxwiz job list\n  cyxwiz job logs ID -f\n  cyxwiz job result ID -o ./out",
		jobSubmitCommand(e), jobStatusCommand(e), jobListCommand(e), jobLogsCommand(e), jobCancelCommand(e), jobResultCommand(e),
		jobDisputeCommand(e),
	)
}

func jobSubmitCommand(e *env) *cobra.Command {
	var wait bool
	c := &cobra.Command{
		Use:   "submit SPEC",
		Short: "submit a job spec (local paths in place of CIDs are added first)",
		Long: `Submit a job spec (docs/jobs.md) and print the new job's ID. Local paths in place of
CIDs (wasm.module, train.dataset.cid, inputs[].cid) are added to the content store first.
With --wait, follow the job's events and output until it ends, then print its result;
the exit code is 1 unless the job succeeded.`,
		Example: "  cyxwiz job submit job.json\n  cyxwiz job submit examples/wordcount/spec.json --wait",
		Args:    exactArgs(1, "one spec file"),
		RunE: run(e, func(args []string) error {
			return withClient(e, 0, func(ctx context.Context, c *api.Client) error {
				spec, err := loadSpec(ctx, c, args[0])
				if err != nil {
					return err
				}
				job, err := c.JobSubmit(ctx, spec)
				if err != nil {
					return err
				}
				if !wait {
					if e.json {
						return e.printJSON(job)
					}
					fmt.Fprintln(e.stdout, job.ID)
					return nil
				}
				fmt.Fprintf(e.stderr, "job %s submitted\n", job.ID)
				final, err := follow(ctx, c, e, job.ID, true)
				if err != nil {
					return err
				}
				if e.json {
					return e.printJSON(final)
				}
				printResult(e, final)
				if final.State != "succeeded" {
					return fmt.Errorf("job %s %s: %s", final.ID, final.State, final.Reason)
				}
				return nil
			})
		}),
	}
	c.Flags().BoolVar(&wait, "wait", false, "follow the job and its output until it ends")
	return c
}

// loadSpec reads a spec file and replaces local paths in wasm.module,
// train.dataset.cid and inputs[].cid with the CIDs of their content, adding
// it first.
func loadSpec(ctx context.Context, c *api.Client, file string) (json.RawMessage, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	base := filepath.Dir(file)
	resolve := func(v any, field string) (any, error) {
		s, ok := v.(string)
		if !ok || s == "" {
			return v, nil
		}
		if _, err := cid.Decode(s); err == nil {
			return s, nil
		}
		path := s
		if !filepath.IsAbs(path) {
			path = filepath.Join(base, path)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("%s: %q is neither a CID nor a local path (%w)", field, s, err)
		}
		res, err := c.AddPath(ctx, abs, api.StreamOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: add %s: %w", field, abs, err)
		}
		return res.CID, nil
	}
	if w, ok := spec["wasm"].(map[string]any); ok {
		if w["module"], err = resolve(w["module"], "wasm.module"); err != nil {
			return nil, err
		}
	}
	if t, ok := spec["train"].(map[string]any); ok {
		if d, ok := t["dataset"].(map[string]any); ok {
			if d["cid"], err = resolve(d["cid"], "train.dataset.cid"); err != nil {
				return nil, err
			}
		}
	}
	if ins, ok := spec["inputs"].([]any); ok {
		for i, in := range ins {
			if m, ok := in.(map[string]any); ok {
				if m["cid"], err = resolve(m["cid"], fmt.Sprintf("inputs[%d].cid", i)); err != nil {
					return nil, err
				}
			}
		}
	}
	return json.Marshal(spec)
}

// follow prints a job's events and output until it ends, and returns its
// final status.
func follow(ctx context.Context, c *api.Client, e *env, id string, events bool) (api.JobInfo, error) {
	sub, err := c.SubscribeJob(ctx, id)
	if err != nil {
		return api.JobInfo{}, err
	}
	defer sub.Close()
	var offset int64
	printLogs := func() error {
		for {
			logs, err := c.JobLogs(ctx, api.JobLogsParams{ID: id, Offset: offset})
			if err != nil {
				return err
			}
			fmt.Fprint(e.stdout, logs.Data)
			offset = logs.Next
			if logs.Data == "" || logs.Next-logs.Offset < 1<<20 {
				return nil
			}
		}
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		status, err := c.JobStatus(ctx, id)
		if err != nil {
			return api.JobInfo{}, err
		}
		if err := printLogs(); err != nil {
			return api.JobInfo{}, err
		}
		switch status.State {
		case "succeeded", "failed", "cancelled":
			return status, nil
		}
		select {
		case <-ctx.Done():
			return api.JobInfo{}, ctx.Err()
		case raw, ok := <-sub.Events():
			if !ok {
				if ctx.Err() != nil {
					return api.JobInfo{}, ctx.Err() // the subscription ends with no error of its own
				}
				return api.JobInfo{}, fmt.Errorf("subscription ended: %w", sub.Err())
			}
			var n api.JobNotification
			if json.Unmarshal(raw, &n) == nil && n.Type == "event" && events {
				fmt.Fprintf(e.stderr, "%s  %-10s %s\n", n.Time.Local().Format("15:04:05.000"), n.State, n.Detail)
			}
		case <-tick.C:
		}
	}
}

func printResult(e *env, j api.JobInfo) {
	fmt.Fprintf(e.stdout, "job %s %s", j.ID, j.State)
	if j.Provider != "" {
		fmt.Fprintf(e.stdout, " on %s (attempt %d)", j.Provider, j.Attempt)
	}
	fmt.Fprintln(e.stdout)
	if j.Reason != "" {
		fmt.Fprintf(e.stdout, "reason: %s\n", j.Reason)
	}
	for _, x := range j.Escrows {
		fmt.Fprintf(e.stdout, "escrow %s: %s, %d of mint %s", x.ID, x.State, x.Amount, x.Mint)
		if x.Paid > 0 && x.Paid < x.Amount {
			fmt.Fprintf(e.stdout, " (split: %d to the provider for the time served, %d back)", x.Paid, x.Amount-x.Paid)
		}
		if x.Tx != "" {
			fmt.Fprintf(e.stdout, " (tx %s)", x.Tx)
		}
		if x.Error != "" && x.State == "locked" {
			fmt.Fprintf(e.stdout, " (%s)", x.Error)
		}
		fmt.Fprintln(e.stdout)
	}
	if r := j.Result; r != nil {
		fmt.Fprintf(e.stdout, "exit code %d, ran %d ms\n", r.ExitCode, r.WallMillis)
		for _, o := range r.Outputs {
			fmt.Fprintf(e.stdout, "output %s: %s (%s)\n", o.Name, o.CID, humanBytes(o.Size))
		}
		if r.LogCID != "" {
			fmt.Fprintf(e.stdout, "log: %s\n", r.LogCID)
		}
		if r.ModelCID != "" {
			fmt.Fprintf(e.stdout, "model: %s\n", r.ModelCID)
		}
		if r.MetricsCID != "" {
			fmt.Fprintf(e.stdout, "metrics: %s\n", r.MetricsCID)
		}
		if len(r.Metrics) > 0 {
			keys := slices.Sorted(maps.Keys(r.Metrics))
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = fmt.Sprintf("%s %.4g", k, r.Metrics[k])
			}
			fmt.Fprintf(e.stdout, "final: %s\n", strings.Join(parts, ", "))
		}
	}
}

func jobStatusCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:               "status ID",
		Short:             "a job's state, history and result",
		Example:           "  cyxwiz job status 06BKC7HY2359F08JS8DVVJQTR8\n  cyxwiz job status 06BKC7HY2359F08JS8DVVJQTR8 --json",
		Args:              exactArgs(1, "one job ID"),
		ValidArgsFunction: completeJobs(e),
		RunE: run(e, func(args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) (api.JobInfo, error) {
				return c.JobStatus(ctx, args[0])
			}, func(j api.JobInfo) error {
				printResult(e, j)
				for _, ev := range j.Events {
					fmt.Fprintf(e.stdout, "  %s  %-10s %s\n", ev.Time.Local().Format("15:04:05.000"), ev.State, ev.Detail)
				}
				return nil
			})
		}),
	}
}

func jobListCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "the jobs this node submitted, newest first",
		Example: "  cyxwiz job list\n  cyxwiz job list --json",
		Args:    noArgs,
		RunE: run(e, func(args []string) error {
			return show(e, callTimeout, func(ctx context.Context, c *api.Client) ([]api.JobInfo, error) {
				return c.JobList(ctx)
			}, func(list []api.JobInfo) error {
				tw := e.table("ID\tSTATE\tKIND\tATTEMPT\tPROVIDER\tCREATED")
				for _, j := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.State, j.Kind, j.Attempt, j.Provider, j.CreatedAt.Local().Format(time.DateTime))
				}
				return tw.Flush()
			})
		}),
	}
}

func jobLogsCommand(e *env) *cobra.Command {
	var followFlag bool
	c := &cobra.Command{
		Use:               "logs ID",
		Short:             "a job's output; -f follows it until the job ends",
		Example:           "  cyxwiz job logs 06BKC7HY2359F08JS8DVVJQTR8\n  cyxwiz job logs 06BKC7HY2359F08JS8DVVJQTR8 --follow",
		Args:              exactArgs(1, "one job ID"),
		ValidArgsFunction: completeJobs(e),
		RunE: run(e, func(args []string) error {
			timeout := callTimeout
			if followFlag {
				timeout = 0
			}
			return withClient(e, timeout, func(ctx context.Context, c *api.Client) error {
				if followFlag {
					_, err := follow(ctx, c, e, args[0], false)
					return err
				}
				var offset int64
				for {
					logs, err := c.JobLogs(ctx, api.JobLogsParams{ID: args[0], Offset: offset})
					if err != nil {
						return err
					}
					fmt.Fprint(e.stdout, logs.Data)
					if logs.Data == "" {
						return nil
					}
					offset = logs.Next
				}
			})
		}),
	}
	c.Flags().BoolVarP(&followFlag, "follow", "f", false, "follow the output until the job ends")
	return c
}

func jobCancelCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:               "cancel ID",
		Short:             "stop a job at whatever stage it is",
		Example:           "  cyxwiz job cancel 06BKC7HY2359F08JS8DVVJQTR8",
		Args:              exactArgs(1, "one job ID"),
		ValidArgsFunction: completeJobs(e),
		RunE: run(e, func(args []string) error {
			return withClient(e, callTimeout, func(ctx context.Context, c *api.Client) error {
				if _, err := c.JobCancel(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "cancelling %s\n", args[0])
				return nil
			})
		}),
	}
}

func jobResultCommand(e *env) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:               "result ID",
		Short:             "a finished job's result; -o writes each output to DIR/<name>",
		Example:           "  cyxwiz job result 06BKC7HY2359F08JS8DVVJQTR8\n  cyxwiz job result 06BKC7HY2359F08JS8DVVJQTR8 -o ./out",
		Args:              exactArgs(1, "one job ID"),
		ValidArgsFunction: completeJobs(e),
		RunE: run(e, func(args []string) error {
			timeout := callTimeout
			var dir string
			if out != "" {
				abs, err := filepath.Abs(out)
				if err != nil {
					return err
				}
				dir = abs
				timeout = 0 // the outputs are fetched and written here
			}
			var names []string
			return show(e, timeout, func(ctx context.Context, c *api.Client) (api.JobInfo, error) {
				j, err := c.JobResult(ctx, api.JobResultParams{ID: args[0]})
				if err != nil || dir == "" {
					return j, err
				}
				names, err = writeOutputs(ctx, c, j, dir)
				return j, err
			}, func(j api.JobInfo) error {
				printResult(e, j)
				if dir != "" {
					fmt.Fprintf(e.stdout, "wrote %s\n", strings.Join(names, ", "))
				}
				return nil
			})
		}),
	}
	c.Flags().StringVarP(&out, "output", "o", "", "`DIR` that receives the outputs")
	return c
}

// writeOutputs streams each output of a finished job to dir/<name>, on
// this machine, and returns the paths written.
func writeOutputs(ctx context.Context, c *api.Client, j api.JobInfo, dir string) ([]string, error) {
	if j.Result == nil {
		return nil, fmt.Errorf("job %s has no result", j.ID)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var names []string
	for _, o := range j.Result.Outputs {
		if !filepath.IsLocal(o.Name) || strings.ContainsAny(o.Name, `/\`) {
			return names, fmt.Errorf("output name %q is not a plain name", o.Name)
		}
		path := filepath.Join(dir, o.Name)
		if _, err := c.GetTo(ctx, o.CID, path, api.StreamOptions{}); err != nil {
			return names, fmt.Errorf("output %s: %w", o.Name, err)
		}
		names = append(names, path)
	}
	return names, nil
}
