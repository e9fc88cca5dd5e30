package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHelp: every command has an example, and both
// `COMMAND --help` and `help COMMAND` print its help with the example,
// exit 0.
func TestEveryCommandHelp(t *testing.T) {
	root := newRoot(&env{stdout: io.Discard, stderr: io.Discard})
	var n int
	walk(root, func(c *cobra.Command) {
		n++
		path := strings.Fields(c.CommandPath())[1:]
		if c.Example == "" {
			t.Errorf("%s has no example", c.CommandPath())
		}
		for _, args := range [][]string{append(append([]string{}, path...), "--help"), append([]string{"help"}, path...)} {
			code, out, errOut := runCLI(t, args...)
			if code != 0 || !strings.Contains(out, c.Example) || errOut != "" {
				t.Errorf("cyxwiz %s: exit %d, stderr %q; want exit 0 and the example in:\n%s", strings.Join(args, " "), code, errOut, out)
			}
		}
	})
	if n < 50 {
		t.Fatalf("walked %d commands: too few, the walk is broken", n)
	}
}

// TestGroupHelp: a group's help lists its commands; the root help lists
// every command by its path, and the exit codes.
func TestGroupHelp(t *testing.T) {
	for _, args := range [][]string{{"job", "--help"}, {"help", "job"}, {"job"}} {
		code, out, _ := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "cyxwiz job COMMAND") || !strings.Contains(out, "  submit ") || !strings.Contains(out, "  logs ") {
			t.Errorf("cyxwiz %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	code, out, _ := runCLI(t, "--help")
	for _, want := range []string{"  job submit SPEC", "  swarm key gen", "  completion bash", "Exit codes:", "  2  usage error"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("cyxwiz --help: exit %d, no %q in:\n%s", code, want, out)
		}
	}
}

// TestDaemonHelp: the daemon's help shows each config key's flag with its
// type and default.
func TestDaemonHelp(t *testing.T) {
	code, out, _ := runCLI(t, "daemon", "--help")
	for _, want := range []string{
		`--api.addr string`, `(default "127.0.0.1:5250")`,
		`--api.max_connections int`, `(default 128)`,
		`--swarm.listen strings`, `--swarm.mdns `, `--market.price_per_cpu_second uint`,
		`--log-level string`,
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("daemon --help: exit %d, no %q in:\n%s", code, want, out)
		}
	}
}

// TestCompletionScripts: completion prints a script for each shell.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "__start_cyxwiz",
		"zsh":  "#compdef cyxwiz",
		"fish": "complete -c cyxwiz",
	} {
		code, out, errOut := runCLI(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, stderr %q, no %q in %d bytes", shell, code, errOut, want, len(out))
		}
	}
	if code, _, _ := runCLI(t, "completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct{ a, b string }{{"jbo", "job"}, {"", "abc"}, {"kitten", "sitting"}, {"same", "same"}}
	for i, want := range []int{2, 3, 3, 0} {
		if got := levenshtein(tests[i].a, tests[i].b); got != want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tests[i].a, tests[i].b, got, want)
		}
	}
}
