// Package e2e drives real cyxwiz binaries through the CLI and the public
// API: it builds the binary, inits repos, starts daemons and stops them with
// signals, as a user would.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips: see needBinary
	}
	code := func() int {
		dir, err := os.MkdirTemp("", "cyxwiz-e2e")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "cyxwiz")
		build := exec.Command("go", "build", "-o", binary, "github.com/cyxwiz/cyxwiz/cmd/cyxwiz")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			panic("build cyxwiz: " + err.Error())
		}
		return m.Run()
	}()
	os.Exit(code)
}

// needBinary skips an end-to-end test under -short, where the binary is
// not built; the full suite runs them.
func needBinary(t *testing.T) {
	t.Helper()
	if binary == "" {
		t.Skip("-short: the end-to-end tests run in the full suite")
	}
}

// cli runs the binary with args and returns its standard output; a non-zero
// exit fails the test.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := run(args...)
	if err != nil {
		t.Fatalf("cyxwiz %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func run(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

type daemon struct {
	repo   string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

// startDaemon starts `cyxwiz daemon` on repo and waits for its API file.
func startDaemon(t *testing.T, repo string, extra ...string) *daemon {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--repo", repo, "daemon"}, extra...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{repo: repo, cmd: cmd, stderr: &stderr, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-d.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(repo, "api")); err == nil {
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited before ready: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready after 30s\n%s", stderr.String())
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("daemon exit: %v\n%s", err, d.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not stop within 30s\n%s", d.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(d.repo, "api")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("api file left behind after a clean stop: %v", err)
	}
}

func TestTwoDaemons(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	repoA, repoB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cli(t, "--repo", repoA, "init", "--profile", "local", "--api-addr", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0")
	cli(t, "--repo", repoB, "init", "--profile", "local", "--api-addr", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0")

	a := startDaemon(t, repoA)
	b := startDaemon(t, repoB, "--log-level", "debug")

	// A second daemon on the same repo is refused with a clear error.
	_, errOut, err := run("--repo", repoA, "daemon")
	if err == nil || !strings.Contains(errOut, "in use by another daemon") {
		t.Fatalf("second daemon on the same repo: err %v, stderr %q", err, errOut)
	}

	var info struct {
		ID        string   `json:"id"`
		Addresses []string `json:"addresses"`
	}
	if err := json.Unmarshal([]byte(cli(t, "--repo", repoA, "id", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Addresses) == 0 {
		t.Fatalf("id --json: no addresses")
	}
	out := cli(t, "--repo", repoB, "swarm", "connect", info.Addresses[0])
	if !strings.Contains(out, info.ID) {
		t.Fatalf("swarm connect printed %q, want the peer ID", out)
	}

	var peers []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(cli(t, "--repo", repoB, "swarm", "peers", "--json")), &peers); err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0].ID != info.ID {
		t.Fatalf("swarm peers on b = %+v, want only a (%s)", peers, info.ID)
	}
	if text := cli(t, "--repo", repoA, "swarm", "peers"); !strings.Contains(text, "PEER") || strings.Count(text, "\n") != 2 {
		t.Fatalf("swarm peers (text) on a:\n%s", text)
	}

	// Bad input is a clear error and the daemon keeps serving.
	if _, errOut, err := run("--repo", repoB, "swarm", "connect", "/ip4/nonsense"); err == nil || !strings.Contains(errOut, "invalid params") {
		t.Fatalf("connect to a malformed address: err %v, stderr %q", err, errOut)
	}
	cli(t, "--repo", repoB, "id")

	a.stop(t)
	b.stop(t)
	if !strings.Contains(b.stderr.String(), "level=DEBUG") {
		t.Errorf("--log-level debug produced no debug lines")
	}

	// Commands that need a daemon say so when there is none.
	if _, errOut, err := run("--repo", repoA, "swarm", "peers"); err == nil || !strings.Contains(errOut, "no daemon is running") {
		t.Fatalf("swarm peers without a daemon: err %v, stderr %q", err, errOut)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	needBinary(t)
	repo := filepath.Join(t.TempDir(), "r")
	cli(t, "--repo", repo, "init", "--profile", "local")
	cfg := filepath.Join(repo, "config.json")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), `"dht_mode": "server"`, `"dht_mode": 5`, 1)
	if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := run("--repo", repo, "daemon")
	if err == nil || !strings.Contains(errOut, "swarm.dht_mode") {
		t.Fatalf("daemon with a bad config: err %v, stderr %q; want an error naming swarm.dht_mode", err, errOut)
	}
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = run("--repo", repo, "daemon", "--swarm.conn_high_water=abc")
	if err == nil || !strings.Contains(errOut, "swarm.conn_high_water") {
		t.Fatalf("daemon with a bad flag: err %v, stderr %q", err, errOut)
	}
}

func TestPrivateSwarmDaemons(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "swarm.key")
	cli(t, "swarm", "key", "gen", "-o", key)
	repos := map[string]string{"m1": filepath.Join(dir, "m1"), "m2": filepath.Join(dir, "m2"), "out": filepath.Join(dir, "out")}
	cli(t, "--repo", repos["m1"], "init", "--profile", "local", "--swarm-key", key)
	cli(t, "--repo", repos["m2"], "init", "--profile", "local", "--swarm-key", key)
	cli(t, "--repo", repos["out"], "init", "--profile", "local")
	for _, r := range repos {
		startDaemon(t, r)
	}
	var info struct {
		Addresses    []string `json:"addresses"`
		PrivateSwarm bool     `json:"private_swarm"`
	}
	if err := json.Unmarshal([]byte(cli(t, "--repo", repos["m1"], "id", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if !info.PrivateSwarm {
		t.Fatal("node with a swarm key does not report private_swarm")
	}
	cli(t, "--repo", repos["m2"], "swarm", "connect", info.Addresses[0])
	if _, errOut, err := run("--repo", repos["out"], "swarm", "connect", info.Addresses[0]); err == nil {
		t.Fatalf("a node without the key connected to the private swarm (stderr %q)", errOut)
	}
}
