// Package cli implements the cyxwiz command line: the daemon and the
// commands that talk to it through the local JSON-RPC API (package api),
// like any other client. The command tree is built with cobra; Main runs
// it in-process and returns the exit code (see exitCodes).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cyxwiz/cyxwiz/node"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// env carries what every command needs.
type env struct {
	stdout, stderr io.Writer
	// repo is --repo; run fills in the default before a command runs.
	repo string
	json bool
	// ran is set once a command's own code starts: an error before it is
	// one of usage (an unknown command or flag, a bad argument count).
	ran bool
	// records, when set, receives the command's own messages as log
	// records: a daemon logging JSON keeps every line of standard error
	// JSON, its last error and a second signal's notice included.
	records atomic.Pointer[slog.Logger]
}

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(goFlagForms(root, args))
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	if cmd == nil {
		cmd = root
	}
	usage := !e.ran || isUsage(err)
	e.printError(cmd, err, usage)
	if usage {
		return exitUsage
	}
	return exitFailure
}

// newRoot builds the whole command tree, writing to e's streams.
func newRoot(e *env) *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:     "cyxwiz",
		Short:   "a peer-to-peer compute market: run a node, share content, buy and sell compute",
		Example: "  cyxwiz init\n  cyxwiz daemon &\n  cyxwiz job submit job.json --wait",
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if showVersion && len(args) == 0 {
				e.ran = true
				printVersion(e)
				return nil
			}
			return runGroup(cmd, args)
		},
		SilenceErrors:              true,
		SilenceUsage:               true,
		SuggestionsMinimumDistance: 2,
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.PersistentFlags().StringVar(&e.repo, "repo", "", "repo folder (default $"+node.EnvRepo+", else ~/.cyxwiz)")
	root.PersistentFlags().BoolVar(&e.json, "json", false, "print JSON instead of text (errors too, on standard error)")
	root.Flags().BoolVar(&showVersion, "version", false, "print the version, the commit and the build tags")
	_ = root.RegisterFlagCompletionFunc("repo", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveFilterDirs
	})
	root.SetFlagErrorFunc(flagError)
	for _, g := range groups {
		root.AddGroup(&cobra.Group{ID: g.id, Title: g.title})
	}
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add(groupNode, initCommand(e), daemonCommand(e), idCommand(e), configCommand(e), devnetCommand(e), topCommand(e), versionCommand(e))
	add(groupSwarm, swarmCommand(e), providersCommand(e), explorerCommand(e))
	add(groupContent, addCommand(e), getCommand(e), catCommand(e), pinCommand(e), repoCommand(e))
	add(groupCompute, jobCommand(e), modelCommand(e), inferCommand(e), walletCommand(e), arbiterCommand(e))
	root.SetHelpCommand(helpCommand())
	root.SetHelpCommandGroupID(groupOther)
	root.SetCompletionCommandGroupID(groupOther)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	finishTree(root)
	return root
}

// goFlagForms rewrites the spellings of flags that the flag package of Go's
// standard library took, as the CLI did before cobra, into pflag's: -name
// into --name, and --x into -x where x is a flag's shorthand only.
func goFlagForms(root *cobra.Command, args []string) []string {
	long, short := map[string]bool{"help": true}, map[string]bool{}
	walk(root, func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				long[f.Name] = true
				short[f.Shorthand] = f.Shorthand != ""
			})
		}
	})
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case strings.HasPrefix(a, "--") && len(name) == 1 && short[name] && !long[name]:
			a = a[1:]
		case strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 && long[name]:
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

// group makes a command that only holds others: alone it prints its help,
// and an unknown subcommand is a usage error with suggestions.
func group(use, short, example string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:                        use,
		Short:                      short,
		Example:                    example,
		Args:                       cobra.ArbitraryArgs,
		RunE:                       func(cmd *cobra.Command, args []string) error { return runGroup(cmd, args) },
		SuggestionsMinimumDistance: 2,
	}
	c.AddCommand(subs...)
	return c
}

func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return usagef("unknown command %q for %q%s", args[0], cmd.CommandPath(), didYouMean(cmd.SuggestionsFor(args[0])))
}

// run wraps a command's code: it marks the command as started and fills
// in the default repo first.
func run(e *env, fn func(args []string) error) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, args []string) error {
		e.ran = true
		dir, err := e.repoDir()
		if err != nil {
			return err
		}
		e.repo = dir
		return fn(args)
	}
}

// repoDir is --repo, else the default repo folder.
func (e *env) repoDir() (string, error) {
	if e.repo != "" {
		return e.repo, nil
	}
	return node.DefaultRepoDir()
}

// printError writes err for a person, or under --json as one JSON object
// that keeps the JSON-RPC error code; a usage error also shows the
// command's usage line.
func (e *env) printError(cmd *cobra.Command, err error, usage bool) {
	var rpcErr *api.Error
	isRPC := errors.As(err, &rpcErr)
	if log := e.records.Load(); log != nil {
		log.Error(cmd.CommandPath()+" failed", "error", err.Error())
		return
	}
	if e.json {
		out := struct {
			Command string `json:"command"`
			Error   string `json:"error"`
			Code    int    `json:"code,omitempty"`
			Usage   bool   `json:"usage,omitempty"`
		}{Command: cmd.CommandPath(), Error: err.Error(), Usage: usage}
		if isRPC {
			out.Code = rpcErr.Code
		}
		data, _ := json.Marshal(out)
		fmt.Fprintf(e.stderr, "%s\n", data)
		return
	}
	msg := err.Error()
	if isRPC {
		// The code is for programs (--json); people read the message.
		msg = strings.Replace(msg, rpcErr.Error(), rpcErr.Message, 1)
	}
	fmt.Fprintf(e.stderr, "%s: %s\n", cmd.CommandPath(), strings.TrimRight(msg, "\n"))
	if usage {
		fmt.Fprintf(e.stderr, "usage: %s\nRun '%s --help' for more.\n", usageLine(cmd), cmd.CommandPath())
	}
}

// callTimeout bounds a command that makes short API requests.
const callTimeout = time.Minute

// withClient runs fn with a client for the daemon on the env's repo and a
// context that the first SIGINT or SIGTERM cancels. A timeout other than 0
// also ends the context after that long; commands that stream or wait on
// the daemon pass 0.
func withClient(e *env, timeout time.Duration, fn func(context.Context, *api.Client) error) error {
	c, err := dial(e.repo)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(e)
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return staleAPI(e.repo, c, fn(ctx, c))
}

// dial returns a client for the daemon of repo, or an error that says how
// to start one (or to create the repo first).
func dial(repo string) (*api.Client, error) {
	c, err := api.FromRepo(repo)
	if errors.Is(err, api.ErrNoDaemon) {
		if _, statErr := os.Stat(repo + "/" + node.ConfigFile); statErr != nil {
			return nil, fmt.Errorf("%w (%s holds no repo): create one with '%s init', then start the daemon with '%s daemon'",
				api.ErrNoDaemon, repo, cyxwizRepo(repo), cyxwizRepo(repo))
		}
		return nil, fmt.Errorf("%w (%s): start one with '%s daemon'", api.ErrNoDaemon, repo, cyxwizRepo(repo))
	}
	return c, err
}

// staleAPI turns a refused connection into the advice to start the
// daemon: the repo's api file names an address where nothing listens, as
// a daemon that did not stop cleanly leaves it.
func staleAPI(repo string, c *api.Client, err error) error {
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	return fmt.Errorf("%w (%s): nothing answers at %s, the address in its api file (left by a daemon that did not stop cleanly?); start one with '%s daemon'",
		api.ErrNoDaemon, repo, c.Addr(), cyxwizRepo(repo))
}

// cyxwizRepo is the command line that names repo, quoted for a shell
// where it needs to be.
func cyxwizRepo(repo string) string {
	if strings.ContainsAny(repo, " \t'\"$\\`;&|<>()*?[]#~") {
		repo = "'" + strings.ReplaceAll(repo, "'", `'\''`) + "'"
	}
	return "cyxwiz --repo " + repo
}

// signalContext returns a context cancelled by the first SIGINT or SIGTERM.
// A second signal exits the process at once.
func signalContext(e *env) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			if log := e.records.Load(); log != nil {
				log.Warn("second signal: exiting now")
			} else {
				fmt.Fprintln(e.stderr, "second signal: exiting now")
			}
			os.Exit(exitFailure)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// printJSON writes v as indented JSON.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table returns a writer that aligns tab-separated columns on stdout,
// with the header row written; Flush prints it.
func (e *env) table(header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

// show makes one request through withClient and prints its result: as
// indented JSON under --json, else with text.
func show[T any](e *env, timeout time.Duration, req func(context.Context, *api.Client) (T, error), text func(T) error) error {
	return withClient(e, timeout, func(ctx context.Context, c *api.Client) error {
		v, err := req(ctx, c)
		if err != nil {
			return err
		}
		if e.json {
			return e.printJSON(v)
		}
		return text(v)
	})
}
