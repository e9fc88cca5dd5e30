package cli

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var update = flag.Bool("update", false, "rewrite docs/cli.md from the command tree")

// docsFile is the CLI reference, generated from the command tree.
const docsFile = "../../docs/cli.md"

// TestCLIDocs fails when docs/cli.md is not what the command tree says;
// `make docs` (go test ./cmd/cli -run TestCLIDocs -update) rewrites it.
func TestCLIDocs(t *testing.T) {
	var buf bytes.Buffer
	writeMarkdown(&buf, newRoot(&env{stdout: io.Discard, stderr: io.Discard}))
	if *update {
		if err := os.WriteFile(docsFile, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, buf.Bytes()) {
		t.Fatalf("docs/cli.md is not current: run 'make docs' and commit it")
	}
}

// writeMarkdown writes the reference of every command under root.
func writeMarkdown(w io.Writer, root *cobra.Command) {
	fmt.Fprintf(w, "# Command line reference\n\n")
	fmt.Fprintf(w, "<!-- Generated from the command tree by `make docs`; do not edit. cmd/cli's tests fail when it is not current. -->\n\n")
	fmt.Fprintf(w, "`cyxwiz` is %s. The daemon (`cyxwiz daemon`) runs the node; every other command talks to it\n", root.Short)
	fmt.Fprintf(w, "through its local JSON-RPC API ([rpc.md](rpc.md)), found through the repo's `api` file. Flags may come\n")
	fmt.Fprintf(w, "before or after the arguments; `cyxwiz COMMAND --help` and `cyxwiz help COMMAND` print a command's help.\n\n")
	fmt.Fprintf(w, "## Global flags\n\nEvery command takes these:\n\n```\n%s```\n\n", root.PersistentFlags().FlagUsages())
	fmt.Fprintf(w, "`--json` prints what a read command shows as JSON on standard output (every listing is an array of\n")
	fmt.Fprintf(w, "objects with an `id` field). Under `--json` an error is one JSON object on standard error:\n")
	fmt.Fprintf(w, "`{\"command\": \"cyxwiz job status\", \"error\": \"...\", \"code\": %d}`, with the JSON-RPC error code of\n", api.CodeNotFound)
	fmt.Fprintf(w, "an error from the daemon (see [rpc.md](rpc.md)) and `\"usage\": true` on a usage error. Without `--json`\n")
	fmt.Fprintf(w, "errors are one line for people, without codes.\n\n")
	fmt.Fprintf(w, "## Exit codes\n\n| code | means |\n|---|---|\n")
	for _, x := range exitCodes {
		fmt.Fprintf(w, "| %d | %s |\n", x.code, x.means)
	}
	fmt.Fprintf(w, "\nWhen no daemon runs on the repo (no `api` file, or one left by a daemon that did not stop cleanly),\n")
	fmt.Fprintf(w, "a command says so and how to start one with the same `--repo`, and exits 1.\n\n")
	fmt.Fprintf(w, "## Shell completion\n\n`cyxwiz completion bash|zsh|fish|powershell` prints a completion script; see `cyxwiz completion SHELL --help`\n")
	fmt.Fprintf(w, "for where to put it. Besides commands and flags it completes job IDs, pinned CIDs and peer IDs, asked\n")
	fmt.Fprintf(w, "of the daemon of the `--repo` given (within %s); without a running daemon it completes none.\n\n", completeTimeout)
	fmt.Fprintf(w, "## Commands\n\n")
	var all []*cobra.Command
	walk(root, func(c *cobra.Command) {
		if c != root {
			all = append(all, c)
		}
	})
	for _, c := range all {
		fmt.Fprintf(w, "- [`%s`](#%s) %s\n", c.CommandPath(), anchor(c), c.Short)
	}
	for _, c := range all {
		fmt.Fprintf(w, "\n### %s\n\n", c.CommandPath())
		desc := c.Long
		if desc == "" {
			desc = c.Short
		}
		fmt.Fprintf(w, "%s\n\n```\n%s\n```\n", strings.TrimSpace(desc), usageLine(c))
		if c.HasAvailableSubCommands() {
			fmt.Fprintf(w, "\nCommands:\n\n")
			for _, sub := range c.Commands() {
				if sub.IsAvailableCommand() {
					fmt.Fprintf(w, "- [`%s`](#%s) %s\n", sub.Name(), anchor(sub), sub.Short)
				}
			}
		}
		if c.Example != "" {
			fmt.Fprintf(w, "\nExamples:\n\n```\n%s\n```\n", c.Example)
		}
		fs := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
		c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" {
				fs.AddFlag(f)
			}
		})
		if fs.HasAvailableFlags() {
			fmt.Fprintf(w, "\nFlags:\n\n```\n%s```\n", fs.FlagUsages())
		}
	}
}

// anchor is the GitHub anchor of a command's heading.
func anchor(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "-")
}
