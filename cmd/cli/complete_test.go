package cli

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/node"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/devnet"
)

// TestAgainstNode drives the commands against a running in-process node:
// completion offers the job submitted and the content pinned; a daemon's
// error reads without its JSON-RPC code, which --json keeps.
func TestAgainstNode(t *testing.T) {
	repo := startOneNode(t)
	dir := filepath.Dir(repo)

	if err := os.WriteFile(filepath.Join(dir, "mod.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(spec, []byte(`{"kind": "wasm", "wasm": {"module": "mod.wasm"},
		"resources": {"cpu": 1, "memory_mib": 64}, "limits": {"wall_seconds": 5}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "--repo", repo, "job", "submit", spec)
	if code != 0 {
		t.Fatalf("job submit: exit %d, %s", code, errOut)
	}
	id := strings.TrimSpace(out)

	for _, cmd := range []string{"status", "logs", "cancel", "result", "dispute"} {
		code, out, _ := runCLI(t, "__complete", "--repo", repo, "job", cmd, "")
		if code != 0 || !strings.Contains(out, id+"\t") {
			t.Errorf("complete job %s: exit %d, want %s in:\n%s", cmd, code, id, out)
		}
	}
	if _, out, _ := runCLI(t, "__complete", "--repo", repo, "job", "status", id[:4]); !strings.Contains(out, id) {
		t.Errorf("complete job status %s: want %s in:\n%s", id[:4], id, out)
	}
	if _, out, _ := runCLI(t, "__complete", "--repo", repo, "job", "status", "zzz"); strings.Contains(out, id) {
		t.Errorf("complete job status zzz offers %s:\n%s", id, out)
	}
	var pins []api.PinInfo
	code, out, _ = runCLI(t, "--repo", repo, "--json", "pin", "ls")
	if err := json.Unmarshal([]byte(out), &pins); code != 0 || err != nil || len(pins) == 0 {
		t.Fatalf("pin ls --json: exit %d, %v\n%s", code, err, out)
	}
	if _, out, _ := runCLI(t, "__complete", "--repo", repo, "pin", "rm", ""); !strings.Contains(out, pins[0].ID) {
		t.Errorf("complete pin rm: want %s in:\n%s", pins[0].ID, out)
	}

	code, _, errOut = runCLI(t, "--repo", repo, "job", "status", "NOSUCHJOB")
	if code != 1 || errOut == "" || strings.Contains(errOut, "code") {
		t.Errorf("job status of no job: exit %d, stderr %q; want exit 1 and a message without the code", code, errOut)
	}
	code, _, errOut = runCLI(t, "--repo", repo, "--json", "job", "status", "NOSUCHJOB")
	var jerr struct {
		Command, Error string
		Code           int
	}
	if err := json.Unmarshal([]byte(errOut), &jerr); code != 1 || err != nil || jerr.Code == 0 || jerr.Command != "cyxwiz job status" {
		t.Errorf("--json job status of no job: exit %d, stderr %q (%v); want a JSON error with the code", code, errOut, err)
	}
}

// startOneNode starts a devnet of one node in this process and returns
// its repo; it skips the test under -short.
func startOneNode(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts a node")
	}
	dir := t.TempDir()
	d, err := devnet.Start(t.Context(), devnet.Params{Dir: dir, Nodes: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return filepath.Join(dir, "node0")
}

// TestNoDaemon: without a daemon, or with an api file that a daemon left
// behind, a command says to start one with the same --repo and exits 1;
// completion offers nothing.
func TestNoDaemon(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "my repo")
	code, _, errOut := runCLI(t, "--repo", repo, "job", "list")
	if code != 1 || !strings.Contains(errOut, "no daemon is running") || !strings.Contains(errOut, "cyxwiz --repo '"+repo+"' init") {
		t.Errorf("job list without a repo: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "--repo", repo, "init", "--profile", "local"); code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	code, _, errOut = runCLI(t, "--repo", repo, "id")
	if code != 1 || !strings.Contains(errOut, "no daemon is running") || !strings.Contains(errOut, "cyxwiz --repo '"+repo+"' daemon") {
		t.Errorf("id without a daemon: exit %d, %q", code, errOut)
	}
	if err := os.WriteFile(filepath.Join(repo, api.AddrFile), []byte("127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "--repo", repo, "job", "list")
	if code != 1 || !strings.Contains(errOut, "no daemon is running") || !strings.Contains(errOut, "127.0.0.1:1") ||
		!strings.Contains(errOut, "daemon'") || strings.Contains(errOut, "connection refused") {
		t.Errorf("job list with a stale api file: exit %d, %q", code, errOut)
	}
	code, out, _ := runCLI(t, "__complete", "--repo", repo, "job", "status", "")
	if code != 0 || strings.TrimSpace(out) != ":4" {
		t.Errorf("completion without a daemon: exit %d, %q; want only the directive", code, out)
	}
	if _, err := os.Stat(filepath.Join(repo, node.ConfigFile)); err != nil {
		t.Fatal(err)
	}
}
