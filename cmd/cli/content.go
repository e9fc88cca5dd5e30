package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/spf13/cobra"
)

// progressFloor is the input size from which add shows a progress bar.
const progressFloor = 8 << 20

func addCommand(e *env) *cobra.Command {
	var quiet bool
	c := &cobra.Command{
		Use:     "add PATH",
		Short:   "add a file or directory as UnixFS, pin it and print its CID (the CLI reads PATH and streams it to the daemon)",
		Example: "  cyxwiz add data.csv\n  cyxwiz add -q ./dataset/",
		Args:    exactArgs(1, "one path"),
		RunE: run(e, func(args []string) error {
			path, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			size, err := content.TreeSize(path)
			if err != nil {
				return err
			}
			return withClient(e, 0, func(ctx context.Context, c *api.Client) error {
				var opts api.StreamOptions
				var stopBar func()
				opts.Progress, stopBar = startProgress(ctx, c, e.stderr, !quiet && size >= progressFloor)
				res, err := c.AddPath(ctx, path, opts)
				stopBar()
				if err != nil {
					return err
				}
				switch {
				case e.json:
					return e.printJSON(res)
				case quiet:
					fmt.Fprintln(e.stdout, res.CID)
				default:
					fmt.Fprintf(e.stdout, "added %s %s (%s)\n", res.CID, res.Name, humanBytes(res.Size))
				}
				return nil
			})
		}),
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the CID")
	return c
}

func getCommand(e *env) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:               "get CID",
		Short:             "fetch content by CID and write it to PATH (default: ./CID)",
		Example:           "  cyxwiz get bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi\n  cyxwiz get bafkrei... -o result.txt",
		Args:              exactArgs(1, "one CID"),
		ValidArgsFunction: completePins(e),
		RunE: run(e, func(args []string) error {
			if out == "" {
				// CID, CID/dir/file or /ipfs/CID/...: name it after its last part.
				out = path.Base(strings.TrimRight(args[0], "/"))
			}
			output, err := filepath.Abs(out)
			if err != nil {
				return err
			}
			return withClient(e, 0, func(ctx context.Context, c *api.Client) error {
				var opts api.StreamOptions
				var stopBar func()
				opts.Progress, stopBar = startProgress(ctx, c, e.stderr, true)
				n, err := c.GetTo(ctx, args[0], output, opts)
				stopBar()
				if err != nil {
					return err
				}
				res := api.ContentGetResult{CID: args[0], Output: output, Bytes: n}
				if e.json {
					return e.printJSON(res)
				}
				fmt.Fprintf(e.stdout, "saved %s to %s\n", res.CID, res.Output)
				return nil
			})
		}),
	}
	c.Flags().StringVarP(&out, "output", "o", "", "output `PATH` (must not exist)")
	return c
}

func catCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:               "cat CID",
		Short:             "write a file's content to standard output",
		Example:           "  cyxwiz cat bafkrei...\n  cyxwiz cat METRICS_CID > metrics.json",
		Args:              exactArgs(1, "one CID"),
		ValidArgsFunction: completePins(e),
		RunE: run(e, func(args []string) error {
			return withClient(e, 0, func(ctx context.Context, c *api.Client) error {
				return catTo(ctx, c, args[0], e.stdout)
			})
		}),
	}
}

// catTo streams a file to w.
func catTo(ctx context.Context, c *api.Client, cid string, w io.Writer) error {
	_, err := c.Cat(ctx, cid, 0, -1, w, api.StreamOptions{})
	return err
}

func pinCommand(e *env) *cobra.Command {
	var name string
	pinAdd := &cobra.Command{
		Use:               "add CID",
		Short:             "fetch the whole DAG under CID and pin it",
		Example:           "  cyxwiz pin add bafybei... --name dataset",
		Args:              exactArgs(1, "one CID"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: run(e, func(args []string) error {
			// No timeout: pinning fetches the whole DAG.
			return withClient(e, 0, func(ctx context.Context, c *api.Client) error {
				if err := c.ContentPin(ctx, api.ContentPinParams{CID: args[0], Name: name}); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "pinned %s\n", args[0])
				return nil
			})
		}),
	}
	pinAdd.Flags().StringVar(&name, "name", "", "a label for the pin")
	return group("pin", "keep content through garbage collection", "  cyxwiz pin ls\n  cyxwiz pin add CID --name NAME\n  cyxwiz pin rm CID",
		pinAdd,
		&cobra.Command{
			Use:               "rm CID",
			Short:             "remove a pin (the blocks go at the next repo gc)",
			Example:           "  cyxwiz pin rm bafybei...",
			Args:              exactArgs(1, "one CID"),
			ValidArgsFunction: completePins(e),
			RunE: run(e, func(args []string) error {
				return withClient(e, callTimeout, func(ctx context.Context, c *api.Client) error {
					if err := c.ContentUnpin(ctx, args[0]); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "unpinned %s\n", args[0])
					return nil
				})
			}),
		},
		&cobra.Command{
			Use:     "ls",
			Short:   "list pinned roots",
			Example: "  cyxwiz pin ls\n  cyxwiz pin ls --json",
			Args:    noArgs,
			RunE: run(e, func(args []string) error {
				return show(e, callTimeout, func(ctx context.Context, c *api.Client) ([]api.PinInfo, error) {
					return c.ContentPins(ctx)
				}, func(pins []api.PinInfo) error {
					tw := e.table("CID\tNAME\tSIZE\tPINNED")
					for _, p := range pins {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, p.Name, humanBytes(p.Size), p.PinnedAt.Local().Format(time.DateTime))
					}
					return tw.Flush()
				})
			}),
		},
	)
}

func repoCommand(e *env) *cobra.Command {
	return group("repo", "the repo's block store", "  cyxwiz repo gc", &cobra.Command{
		Use:     "gc",
		Short:   "delete every block that no pin reaches",
		Example: "  cyxwiz repo gc\n  cyxwiz repo gc --json",
		Args:    noArgs,
		RunE: run(e, func(args []string) error {
			// No timeout: gc walks every pin of a repo of any size.
			return show(e, 0, func(ctx context.Context, c *api.Client) (api.GCResult, error) {
				return c.ContentGC(ctx)
			}, func(res api.GCResult) error {
				fmt.Fprintf(e.stdout, "removed %d blocks, freed %s\n", res.RemovedBlocks, humanBytes(res.FreedBytes))
				return nil
			})
		}),
	})
}

// startProgress shows a progress bar on w for the operation it names,
// where want is true and w is a terminal. It returns the progress ID to
// put in the request ("" for none) and the function that stops the bar.
func startProgress(ctx context.Context, c *api.Client, w io.Writer, want bool) (string, func()) {
	if !want || !isTerminal(w) {
		return "", func() {}
	}
	id := newProgressID()
	return id, showProgress(ctx, c, w, id)
}

func newProgressID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// showProgress draws a progress line on w from the operation's events. The
// returned function stops it and clears the line.
func showProgress(ctx context.Context, c *api.Client, w io.Writer, id string) func() {
	sub, err := c.SubscribeProgress(ctx, id)
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		for raw := range sub.Events() {
			var ev api.ProgressEvent
			if json.Unmarshal(raw, &ev) != nil {
				continue
			}
			rate := float64(ev.Done) / max(time.Since(start).Seconds(), 0.001)
			if ev.Total > 0 {
				const width = 30
				filled := int(float64(width) * float64(ev.Done) / float64(ev.Total))
				fmt.Fprintf(w, "\r%s [%s%s] %3.0f%% %s/%s %s/s ", ev.Op, strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
					100*float64(ev.Done)/float64(ev.Total), humanBytes(ev.Done), humanBytes(ev.Total), humanBytes(int64(rate)))
			} else {
				fmt.Fprintf(w, "\r%s %s %s/s ", ev.Op, humanBytes(ev.Done), humanBytes(int64(rate)))
			}
		}
	}()
	return func() {
		sub.Close()
		<-done
		fmt.Fprint(w, "\r\033[K")
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
