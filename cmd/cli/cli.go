// Package cli implements the cyxwiz command line: the daemon and the
// commands that talk to it through the local JSON-RPC API (package api),
// like any other client.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cyxwiz/cyxwiz/node"
	"github.com/cyxwiz/cyxwiz/node/api"
)

// errUsage marks an error in how the command was called (exit code 2).
var errUsage = errors.New("usage")

// env carries what every command needs.
type env struct {
	stdout, stderr io.Writer
	repo           string
	json           bool
}

// command is one node of the command tree.
type command struct {
	name    string
	args    string
	summary string
	// want describes the positional arguments the command takes ("one
	// CID"); empty for commands that take none.
	want string
	// nargs is how many positional arguments want describes (0 means 1).
	nargs int
	// optional: the positional arguments may also be left out.
	optional bool
	// flags registers the command's own flags; nil for none.
	flags func(fs *flag.FlagSet)
	run   func(e *env, args []string) error
	sub   []*command
}

func commands() []*command {
	return []*command{
		initCommand(),
		daemonCommand(),
		idCommand(),
		{name: "swarm", summary: "peers of this node and private swarm keys", sub: []*command{
			swarmPeersCommand(),
			swarmConnectCommand(),
			swarmDisconnectCommand(),
			swarmEventsCommand(),
			{name: "key", summary: "pre-shared keys for private swarms", sub: []*command{swarmKeyGenCommand()}},
		}},
		addCommand(),
		getCommand(),
		catCommand(),
		pinCommand(),
		repoCommand(),
		providersCommand(),
		explorerCommand(),
		modelCommand(),
		jobCommand(),
		walletCommand(),
		arbiterCommand(),
		configCommand(),
		devnetCommand(),
		versionCommand(),
	}
}

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	cmds := commands()
	global := flag.NewFlagSet("cyxwiz", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	addCommonFlags(global, e)
	showVersion := global.Bool("version", false, "print the version, the commit and the build tags")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, "", cmds)
			return 0
		}
		fmt.Fprintf(stderr, "cyxwiz: %v\n", err)
		return 2
	}
	if *showVersion {
		printVersion(e)
		return 0
	}
	rest := global.Args()
	path := "cyxwiz"
	for {
		if len(rest) == 0 || rest[0] == "help" {
			printHelp(stdout, path, cmds)
			return 0
		}
		c := find(cmds, rest[0])
		if c == nil {
			fmt.Fprintf(stderr, "%s: unknown command %q (see '%s help')\n", path, rest[0], path)
			return 2
		}
		path += " " + c.name
		rest = rest[1:]
		if c.run == nil {
			cmds = c.sub
			continue
		}
		return runCommand(e, path, c, rest)
	}
}

func runCommand(e *env, path string, c *command, args []string) int {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addCommonFlags(fs, e)
	if c.flags != nil {
		c.flags(fs)
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(e.stdout, path, c, fs)
			return 0
		}
		fmt.Fprintf(e.stderr, "%s: %v\n", path, err)
		return 2
	}
	if err := checkArgs(c, positional); err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\nusage: %s %s\n", path, err, path, c.args)
		return 2
	}
	if e.repo == "" {
		dir, err := node.DefaultRepoDir()
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", path, err)
			return 1
		}
		e.repo = dir
	}
	if err := c.run(e, positional); err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", path, err)
		if errors.Is(err, errUsage) {
			fmt.Fprintf(e.stderr, "usage: %s %s\n", path, c.args)
			return 2
		}
		return 1
	}
	return 0
}

// checkArgs checks the count of positional arguments once for every command.
func checkArgs(c *command, args []string) error {
	switch {
	case c.want == "" && len(args) > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
	case c.want != "" && c.optional && len(args) == 0:
	case c.want != "" && len(args) != max(1, c.nargs):
		return fmt.Errorf("%w: want %s", errUsage, c.want)
	}
	return nil
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments (cyxwiz get CID -o out); after "--" everything is
// positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional, rest []string
	for i, a := range args {
		if a == "--" {
			rest = args[i+1:]
			args = args[:i]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(positional, rest...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func addCommonFlags(fs *flag.FlagSet, e *env) {
	fs.StringVar(&e.repo, "repo", e.repo, "repo folder (default $"+node.EnvRepo+", else ~/.cyxwiz)")
	fs.BoolVar(&e.json, "json", e.json, "print JSON instead of text")
}

func find(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printHelp(w io.Writer, path string, cmds []*command) {
	if path == "" {
		path = "cyxwiz"
	}
	fmt.Fprintf(w, "usage: %s [--repo DIR] [--json] COMMAND [ARGS]\n\ncommands:\n", path)
	var lines []string
	var walk func(prefix string, cs []*command)
	walk = func(prefix string, cs []*command) {
		for _, c := range cs {
			if c.run == nil {
				walk(prefix+c.name+" ", c.sub)
				continue
			}
			lines = append(lines, fmt.Sprintf("  %-34s %s", strings.TrimSpace(prefix+c.name+" "+c.args), c.summary))
		}
	}
	walk("", cmds)
	sort.Strings(lines)
	fmt.Fprintln(w, strings.Join(lines, "\n"))
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n", path)
}

func printCommandHelp(w io.Writer, path string, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s %s\n\n%s\n\nflags:\n", path, c.args, c.summary)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// callTimeout bounds a command that makes short API requests.
const callTimeout = time.Minute

// withClient runs fn with a client for the daemon on the env's repo and a
// context that the first SIGINT or SIGTERM cancels. A timeout other than 0
// also ends the context after that long; commands that stream or wait on
// the daemon pass 0.
func withClient(e *env, timeout time.Duration, fn func(context.Context, *api.Client) error) error {
	c, err := api.FromRepo(e.repo)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(e.stderr)
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return fn(ctx, c)
}

// signalContext returns a context cancelled by the first SIGINT or SIGTERM.
// A second signal exits the process at once.
func signalContext(stderr io.Writer) (context.Context, func()) {
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
			fmt.Fprintln(stderr, "second signal: exiting now")
			os.Exit(1)
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

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

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
