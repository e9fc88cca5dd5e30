// Package interop checks that CyxWiz exchanges content with the IPFS
// network's own software: a stock Kubo node fetches what a CyxWiz node added
// and the other way round, over bitswap on loopback.
//
// The Kubo binary comes from scripts/build-kubo.sh (bin/ipfs, or $KUBO_BIN).
// A missing binary fails the tests: they never skip.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
)

func kuboBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the Kubo interop tests run in the full suite")
	}
	bin := os.Getenv("KUBO_BIN")
	if bin == "" {
		bin = "../../bin/ipfs"
	}
	abs, _ := filepath.Abs(bin)
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("Kubo binary %s not found (%v): build it with scripts/build-kubo.sh", abs, err)
	}
	return abs
}

// kubo is a running Kubo daemon on loopback with routing off: blocks move
// only between directly connected peers.
type kubo struct {
	bin, path string
	cmd       *exec.Cmd
	done      chan error
}

func startKubo(t *testing.T) *kubo {
	t.Helper()
	k := &kubo{bin: kuboBinary(t), path: t.TempDir()}
	k.run(t, "init", "--profile", "test")
	for _, kv := range [][]string{
		{"Routing.Type", "none"},
		{"--json", "Swarm.RelayClient.Enabled", "false"},
		{"--json", "Swarm.RelayService.Enabled", "false"},
		{"AutoNAT.ServiceMode", "disabled"},
		{"--json", "HTTPRetrieval.Enabled", "false"},
		{"--json", "Provide.Enabled", "false"},
		{"--json", "Swarm.Transports.Network.QUIC", "false"},
		{"--json", "Swarm.Transports.Network.WebTransport", "false"},
		{"--json", "Swarm.Transports.Network.WebRTCDirect", "false"},
		{"--json", "Swarm.Transports.Network.Websocket", "false"},
		{"--json", "Addresses.Swarm", `["/ip4/127.0.0.1/tcp/0"]`},
	} {
		k.run(t, append([]string{"config"}, kv...)...)
	}
	k.cmd = exec.Command(k.bin, "daemon")
	k.cmd.Env = k.env()
	stdout, err := k.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	k.cmd.Stderr = k.cmd.Stdout
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	k.done = make(chan error, 1)
	ready := make(chan struct{})
	var log bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Daemon is ready") {
				close(ready)
			}
		}
		k.done <- k.cmd.Wait()
	}()
	t.Cleanup(func() {
		k.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-k.done:
		case <-time.After(30 * time.Second):
			k.cmd.Process.Kill()
			<-k.done
		}
	})
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("kubo not ready after 60s:\n%s", log.String())
	}
	return k
}

func (k *kubo) env() []string {
	return append(os.Environ(), "IPFS_PATH="+k.path, "IPFS_TELEMETRY=off")
}

func (k *kubo) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, args...)
	cmd.Env = k.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// startNode runs an in-process CyxWiz node on loopback.
func startNode(t *testing.T) (*node.Node, *api.Client) {
	t.Helper()
	dir := t.TempDir()
	cfg := node.LocalConfig()
	cfg.Swarm.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	if _, err := node.InitRepo(dir, node.InitOptions{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	repo, err := node.OpenRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(t.Context(), node.Params{Repo: repo, Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		repo.Close()
	})
	c, err := api.FromRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	return n, c
}

func connect(t *testing.T, n *node.Node, k *kubo) {
	t.Helper()
	addrs := strings.Fields(k.run(t, "id", "-f=<addrs>\n"))
	if len(addrs) == 0 {
		t.Fatal("kubo reports no addresses")
	}
	info, err := p2p.ParsePeerAddr(addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Host().Connect(ctx, info); err != nil {
		t.Fatalf("connect to kubo: %v", err)
	}
}

func randomFile(t *testing.T, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "data.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// TestKuboFetchesFromCyxWiz: content added on a CyxWiz node is fetched by
// Kubo by CID, a file and a directory.
func TestKuboFetchesFromCyxWiz(t *testing.T) {
	k := startKubo(t)
	n, c := startNode(t)
	connect(t, n, k)
	ctx := context.Background()

	path, data := randomFile(t, 3<<20+11)
	added, err := c.ContentAdd(ctx, api.ContentAddParams{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if got := k.run(t, "cat", added.CID); got != string(data) {
		t.Fatalf("kubo cat of our CID returned %d bytes, want %d", len(got), len(data))
	}

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "a.txt"), []byte("alpha\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.bin"), data[:5000], 0o644)
	tree, err := c.ContentAdd(ctx, api.ContentAddParams{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tree")
	k.run(t, "get", "-o", out, tree.CID)
	if got, _ := os.ReadFile(filepath.Join(out, "sub", "a.txt")); string(got) != "alpha\n" {
		t.Fatalf("kubo get of our directory: sub/a.txt = %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "b.bin")); !bytes.Equal(got, data[:5000]) {
		t.Fatal("kubo get of our directory: b.bin differs")
	}

	// The same bytes give the same CID on both sides (CIDv1, raw leaves).
	if kuboCID := strings.TrimSpace(k.run(t, "add", "-q", "--cid-version=1", "--raw-leaves", path)); kuboCID != added.CID {
		t.Errorf("kubo computes %s for the file, we computed %s", kuboCID, added.CID)
	}
}

// TestCyxWizFetchesFromKubo: content added on Kubo (CIDv0 by default and
// CIDv1) is fetched by a CyxWiz node.
func TestCyxWizFetchesFromKubo(t *testing.T) {
	k := startKubo(t)
	n, c := startNode(t)
	connect(t, n, k)
	ctx := context.Background()

	path, data := randomFile(t, 2<<20+3)
	for _, args := range [][]string{{"add", "-q", path}, {"add", "-q", "--cid-version=1", path}} {
		cid := strings.TrimSpace(k.run(t, args...))
		out := filepath.Join(t.TempDir(), "out.bin")
		if _, err := c.ContentGet(ctx, api.ContentGetParams{CID: cid, Output: out}); err != nil {
			t.Fatalf("get %s (from ipfs %s): %v", cid, strings.Join(args[:len(args)-1], " "), err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
			t.Fatalf("get %s wrote different bytes", cid)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.txt"), []byte("from kubo\n"), 0o644)
	lines := strings.Fields(k.run(t, "add", "-r", "-q", dir))
	root := lines[len(lines)-1]
	res, err := c.ContentCat(ctx, api.ContentCatParams{CID: root + "/x.txt"})
	if err != nil || string(res.Data) != "from kubo\n" {
		t.Fatalf("cat %s/x.txt = %q, %v", root, res.Data, err)
	}
}
