package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/node"
	"github.com/cyxwiz/cyxwiz/p2p"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestHelpListsTheContract(t *testing.T) {
	code, out, _ := runCLI(t, "help")
	if code != 0 {
		t.Fatalf("help exit %d", code)
	}
	for _, want := range []string{"init", "daemon", "id", "swarm peers", "swarm connect", "swarm key gen", "devnet"} {
		if !strings.Contains(out, "  "+want) {
			t.Errorf("help does not list %q:\n%s", want, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"swarm", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"swarm", "connect"}, "want one multiaddr"},
		{[]string{"--nope"}, "unknown flag: --nope"},
		{[]string{"jbo"}, `unknown command "jbo" for "cyxwiz"; did you mean "job"?`},
		{[]string{"help", "jbo"}, `did you mean "job"?`},
		{[]string{"job", "logs", "ID", "--folow"}, "unknown flag: --folow; did you mean --follow?"},
		{[]string{"job", "status"}, "want one job ID"},
		{[]string{"id", "extra"}, `unexpected argument "extra"`},
		{[]string{"explorer", "prices", "--since", "soon"}, `invalid argument "soon"`},
		{[]string{"init", "--profile", "huge"}, `--profile "huge"`},
		{[]string{"devnet", "--nodes", "0"}, "not between 1 and 64"},
	}
	for _, tt := range tests {
		code, _, errOut := runCLI(t, append([]string{"--repo", t.TempDir()}, tt.args...)...)
		if code != 2 || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "usage: cyxwiz") {
			t.Errorf("cyxwiz %v: exit %d, stderr %q; want exit 2 mentioning %q and the usage", tt.args, code, errOut, tt.want)
		}
	}
}

func TestInitWritesFlagsIntoConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	keyFile := filepath.Join(t.TempDir(), "swarm.key")
	if code, _, errOut := runCLI(t, "swarm", "key", "gen", "-o", keyFile); code != 0 {
		t.Fatalf("swarm key gen: %s", errOut)
	}
	data, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2p.ParseSwarmKey(data); err != nil {
		t.Fatalf("generated key does not parse: %v", err)
	}
	boot := "/ip4/127.0.0.1/tcp/4250/p2p/12D3KooWPAegP3CjnFRJbeZvSoCeBbuzsP61P8YzUa4vFdRYa5vf"
	code, out, errOut := runCLI(t, "--repo", dir, "--json", "init", "--api-addr", "127.0.0.1:0",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", boot, "--swarm-key", keyFile, "--role", "indexer")
	if code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	var res struct{ ID, Repo string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.ID == "" || res.Repo != dir {
		t.Fatalf("init --json printed %q (%v)", out, err)
	}
	cfg, err := node.LoadConfig(filepath.Join(dir, node.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.Addr != "127.0.0.1:0" || len(cfg.Swarm.Listen) != 1 || cfg.Swarm.Bootstrap[0] != boot || cfg.Role != node.RoleIndexer {
		t.Fatalf("config after init = %+v", cfg)
	}
	if _, err := os.Stat(filepath.Join(dir, node.SwarmKeyFile)); err != nil {
		t.Fatalf("swarm key not copied: %v", err)
	}
	if code, _, errOut := runCLI(t, "--repo", dir, "init"); code != 1 || !strings.Contains(errOut, "already holds a repo") {
		t.Fatalf("second init: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "--repo", filepath.Join(t.TempDir(), "r"), "init", "--bootstrap", "/ip4/1.2.3.4/tcp/1")
	if code != 1 || !strings.Contains(errOut, "swarm.bootstrap") {
		t.Fatalf("init with a bootstrap address lacking /p2p: exit %d, %q", code, errOut)
	}
}

// TestVersion: --version and version print the version, and job logs
// takes --follow as the long form of -f.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, errOut := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "cyxwiz "+node.Version) || !strings.Contains(out, "commit:") || !strings.Contains(out, "tags:") {
			t.Errorf("cyxwiz %v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	code, out, _ := runCLI(t, "job", "logs", "--help")
	if code != 0 || !strings.Contains(out, "-f, --follow") {
		t.Errorf("job logs --help: exit %d\n%s", code, out)
	}
}

// TestGoFlagForms: the flag spellings of the CLI before cobra still work:
// -name for --name, and --o for -o.
func TestGoFlagForms(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "swarm.key")
	if code, _, errOut := runCLI(t, "swarm", "key", "gen", "--o", key); code != 0 {
		t.Fatalf("swarm key gen --o: %s", errOut)
	}
	code, out, errOut := runCLI(t, "-repo", filepath.Join(dir, "r"), "-json", "init", "-profile", "local", "-swarm-key", key)
	if code != 0 || !strings.Contains(out, `"id"`) {
		t.Fatalf("init with single-dash flags: exit %d, %s%s", code, out, errOut)
	}
	if code, out, _ := runCLI(t, "-version"); code != 0 || !strings.Contains(out, "cyxwiz "+node.Version) {
		t.Errorf("-version: exit %d, %s", code, out)
	}
	got := goFlagForms(newRoot(&env{}), []string{"-nodes", "3", "-5", "--", "-nodes"})
	if want := []string{"--nodes", "3", "-5", "--", "-nodes"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("goFlagForms = %q, want %q", got, want)
	}
}
