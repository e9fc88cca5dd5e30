package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The exit codes of cyxwiz.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitCodes documents the exit codes, in the root help and docs/cli.md.
var exitCodes = []struct {
	code  int
	means string
}{
	{exitOK, "success"},
	{exitFailure, "the command failed: the daemon refused the request or is not running, a job followed with --wait ended other than succeeded, a file could not be read or written; also a second Ctrl-C"},
	{exitUsage, "usage error: an unknown command or flag, a wrong number of arguments, a bad flag value"},
}

// The command groups of the root help.
const (
	groupNode    = "node"
	groupSwarm   = "swarm"
	groupContent = "content"
	groupCompute = "compute"
	groupOther   = "other"
)

var groups = []struct{ id, title string }{
	{groupNode, "Node:"},
	{groupSwarm, "Swarm and market:"},
	{groupContent, "Content:"},
	{groupCompute, "Compute and payments:"},
	{groupOther, "Help and shell completion:"},
}

// usageError is an error in how a command was called (exit code 2).
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

func isUsage(err error) bool {
	var u *usageError
	return errors.As(err, &u)
}

// noArgs refuses positional arguments.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

// exactArgs wants n positional arguments, which want describes ("one CID").
func exactArgs(n int, want string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("want %s", want)
		}
		return nil
	}
}

// optionalArg takes one positional argument or none.
func optionalArg(want string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 1 {
			return usagef("want at most %s", want)
		}
		return nil
	}
}

// flagError makes a flag error a usage error, and suggests the flag meant
// where one is close to an unknown one.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		var names []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && (levenshtein(name, f.Name) <= 2 || strings.HasPrefix(f.Name, name)) {
				names = append(names, "--"+f.Name)
			}
		})
		msg += didYouMean(names)
	}
	return &usageError{msg}
}

// didYouMean is the hint for a mistyped name: empty without suggestions.
func didYouMean(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("; did you mean %s?", quoteName(names[0]))
	}
	for i, n := range names {
		names[i] = quoteName(n)
	}
	return fmt.Sprintf("; did you mean one of %s?", strings.Join(names, ", "))
}

func quoteName(n string) string {
	if strings.HasPrefix(n, "-") {
		return n
	}
	return fmt.Sprintf("%q", n)
}

// levenshtein is the edit distance between a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// helpCommand is "cyxwiz help [COMMAND]...": the help of any command; an
// unknown one is a usage error with suggestions.
func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "help [COMMAND]...",
		Short:   "the help of any command (the same as COMMAND --help)",
		Example: "  cyxwiz help job\n  cyxwiz help job submit",
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := cmd.Root().Find(args)
			if err != nil {
				return usagef("%v", err)
			}
			if len(rest) > 0 {
				return usagef("unknown command %q for %q%s", rest[0], target.CommandPath(), didYouMean(target.SuggestionsFor(rest[0])))
			}
			return target.Help()
		},
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			target, _, err := cmd.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, c := range target.Commands() {
				if c.IsAvailableCommand() && strings.HasPrefix(c.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(c.Name(), c.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
	}
}

// finishTree sets what every command shares: suggestions for typos, and
// examples and groups on the commands cobra adds itself; the root gets its
// own help, which lists every command.
func finishTree(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Short = "print a shell completion script (bash, zsh, fish or powershell)"
			c.Long = ""
			c.ValidArgsFunction = cobra.NoFileCompletions
			c.Example = "  source <(cyxwiz completion bash)\n  cyxwiz completion zsh > \"${fpath[1]}/_cyxwiz\"\n  cyxwiz completion fish > ~/.config/fish/completions/cyxwiz.fish"
			for _, sub := range c.Commands() {
				sub.Short = "print the completion script for " + sub.Name()
				sub.Example = "  cyxwiz completion " + sub.Name() + " > cyxwiz." + sub.Name()
			}
		}
	}
	walk(root, func(c *cobra.Command) {
		c.SuggestionsMinimumDistance = 2
		if !c.Runnable() && c.HasSubCommands() {
			c.Args = cobra.ArbitraryArgs
			c.RunE = runGroup
		}
	})
	root.SetUsageTemplate(usageTemplate)
	defaultHelp := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		if c != root {
			defaultHelp(c, args)
			return
		}
		printRootHelp(c.OutOrStdout(), root)
	})
}

// walk calls fn on c and every command under it but the hidden ones.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		if !sub.Hidden {
			walk(sub, fn)
		}
	}
}

// leaves lists the commands under c that run something, by path: the
// lines of the root help.
func leaves(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	walk(c, func(sub *cobra.Command) {
		if !sub.HasAvailableSubCommands() {
			out = append(out, sub)
		}
	})
	return out
}

// usageName is a command's path below the root and its arguments, as the
// root help lists it ("swarm connect MULTIADDR").
func usageName(c *cobra.Command) string {
	path := strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
	if _, args, ok := strings.Cut(c.Use, " "); ok {
		path += " " + args
	}
	return path
}

func printRootHelp(w io.Writer, root *cobra.Command) {
	fmt.Fprintf(w, "cyxwiz: %s.\n\nUsage:\n  cyxwiz [--repo DIR] [--json] COMMAND [ARGS] [FLAGS]\n", root.Short)
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s\n", g.title)
		for _, top := range root.Commands() {
			if top.GroupID != g.id || !top.IsAvailableCommand() && top.Name() != "help" {
				continue
			}
			for _, c := range leaves(top) {
				fmt.Fprintf(w, "  %-42s %s\n", usageName(c), c.Short)
			}
		}
	}
	fmt.Fprintf(w, "\nFlags:\n%s", root.LocalFlags().FlagUsages())
	fmt.Fprintf(w, "\nExamples:\n%s\n", root.Example)
	fmt.Fprintf(w, "\nExit codes:\n")
	for _, x := range exitCodes {
		fmt.Fprintf(w, "  %d  %s\n", x.code, x.means)
	}
	fmt.Fprintf(w, "\nRun 'cyxwiz COMMAND --help' (or 'cyxwiz help COMMAND') for a command's flags and examples.\n")
}

func init() { cobra.AddTemplateFunc("usageLine", usageLine) }

// usageLine is how to call c: its use line, or for a group the command
// path and COMMAND.
func usageLine(c *cobra.Command) string {
	if c.HasAvailableSubCommands() {
		return c.CommandPath() + " COMMAND [ARGS] [FLAGS]"
	}
	return c.UseLine()
}

// usageTemplate is the help of every command but the root: cobra's, with a
// group's usage line saying COMMAND.
const usageTemplate = `Usage:
  {{usageLine .}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if .IsAvailableCommand}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run '{{.CommandPath}} COMMAND --help' for a command's flags and examples.{{end}}
`
