package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testConfig keeps a node on loopback TCP with free ports.
func testConfig() Config {
	c := LocalConfig()
	c.Swarm.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	return c
}

// seededKey returns a deterministic identity, so that golden files can
// hold peer IDs.
func seededKey(t testing.TB, seed byte) []byte {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	k, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	data, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type testNode struct {
	*Node
	client *api.Client
	token  string
	dir    string
}

// startNode inits a repo (with a seeded key when seed > 0), starts a node on
// it and stops it when the test ends.
func startNode(t *testing.T, cfg Config, seed byte) *testNode {
	t.Helper()
	return startNodeWith(t, cfg, seed, nil)
}

// startNodeWith is startNode with the node's ledger account opened by
// escrow (nil: as configured).
func startNodeWith(t *testing.T, cfg Config, seed byte, escrow EscrowFactory) *testNode {
	t.Helper()
	return startNodeEdit(t, cfg, seed, func(p *Params) { p.Escrow = escrow })
}

// startNodeEdit is startNode with the node's Params changed by edit.
func startNodeEdit(t testing.TB, cfg Config, seed byte, edit func(*Params)) *testNode {
	t.Helper()
	dir := t.TempDir()
	if _, err := InitRepo(dir, InitOptions{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	shareWasmCache(t, dir)
	if seed > 0 {
		if err := os.WriteFile(filepath.Join(dir, PeerKeyFile), seededKey(t, seed), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := OpenRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := Params{Repo: repo, Config: cfg, Logger: slog.New(slog.DiscardHandler)}
	edit(&p)
	n, err := New(t.Context(), p)
	if err != nil {
		repo.Close()
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
		repo.Close()
	})
	c, err := api.FromRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := repo.Token()
	return &testNode{Node: n, client: c, token: token, dir: dir}
}

// shareWasmCache points the repo's WASM compilation cache at the one the
// test run shares.
func shareWasmCache(t testing.TB, repoDir string) {
	t.Helper()
	cache := filepath.Join(repoDir, WasmCacheDir)
	if err := os.RemoveAll(cache); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sharedWasmCache(t), cache); err != nil {
		t.Fatal(err)
	}
}

func mustPub(t *testing.T, id string) crypto.PubKey {
	t.Helper()
	pid, err := peer.Decode(id)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestNodeAPI(t *testing.T) {
	a := startNode(t, testConfig(), 0)
	b := startNode(t, testConfig(), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	infoA, err := a.client.NodeInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if infoA.ID != a.Host().ID().String() || len(infoA.Addresses) == 0 || infoA.Role != RolePeer || infoA.Version != Version {
		t.Fatalf("node.info = %+v", infoA)
	}
	for _, addr := range infoA.Addresses {
		if !strings.HasSuffix(addr, "/p2p/"+infoA.ID) {
			t.Errorf("address %s does not end in /p2p/%s", addr, infoA.ID)
		}
	}

	sub, err := a.client.SubscribePeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	res, err := b.client.SwarmConnect(ctx, infoA.Addresses[0])
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != infoA.ID {
		t.Fatalf("swarm.connect returned %s, want %s", res.ID, infoA.ID)
	}
	wantEvent(t, sub, b.Host().ID().String(), "connected")

	peers, err := a.client.SwarmPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0].ID != b.Host().ID().String() || peers[0].Direction != "inbound" {
		t.Fatalf("swarm.peers on a = %+v, want b inbound", peers)
	}

	if err := a.client.SwarmDisconnect(ctx, b.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	// b may dial back at once (its DHT keeps a as a peer); stopping b ends
	// the connection for good.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, sub, b.Host().ID().String(), "disconnected")

	var ae *api.Error
	if err := a.client.SwarmDisconnect(ctx, "12D3KooWPAegP3CjnFRJbeZvSoCeBbuzsP61P8YzUa4vFdRYa5vf"); !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Errorf("disconnect of a peer never connected = %v, want code %d", err, api.CodeNotFound)
	}
	if _, err := a.client.SwarmConnect(ctx, "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWPAegP3CjnFRJbeZvSoCeBbuzsP61P8YzUa4vFdRYa5vf"); !errors.As(err, &ae) || ae.Code != api.CodeUnreachable {
		t.Errorf("connect to a closed port = %v, want code %d", err, api.CodeUnreachable)
	}
	if _, err := a.client.SwarmConnect(ctx, "/ip4/999.0.0.1/tcp/1"); !errors.As(err, &ae) || ae.Code != api.CodeInvalidParams {
		t.Errorf("connect to a malformed address = %v, want code %d", err, api.CodeInvalidParams)
	}
}

func wantEvent(t *testing.T, sub *api.Subscription, id, state string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case raw, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended: %v", sub.Err())
			}
			var ev api.PeerEvent
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.ID == id && ev.State == state {
				return
			}
		case <-timeout:
			t.Fatalf("no %s event for %s", state, id)
		}
	}
}

// TestPortInUse: a port of the API or of the metrics in use fails New,
// naming its key and the cause, before any swarm work.
func TestPortInUse(t *testing.T) {
	for key, set := range map[string]func(*Config, string){
		"api.addr":     func(c *Config, a string) { c.API.Addr = a },
		"metrics.addr": func(c *Config, a string) { c.Metrics.Addr = a },
	} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		cfg := testConfig()
		set(&cfg, l.Addr().String())
		dir := t.TempDir()
		if _, err := InitRepo(dir, InitOptions{Config: cfg}); err != nil {
			t.Fatal(err)
		}
		repo, err := OpenRepo(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer repo.Close()
		_, err = New(t.Context(), Params{Repo: repo, Config: cfg, Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("New with %s in use = %v, want an error naming %s and the cause", key, err, key)
		}
	}
}

func TestUnreachableBootstrapIsNotFatal(t *testing.T) {
	cfg := testConfig()
	cfg.Swarm.Bootstrap = []string{"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWPAegP3CjnFRJbeZvSoCeBbuzsP61P8YzUa4vFdRYa5vf"}
	n := startNode(t, cfg, 0)
	if _, err := n.client.NodeInfo(context.Background()); err != nil {
		t.Fatalf("node with an unreachable bootstrap peer does not serve: %v", err)
	}
}

func TestCloseRemovesAPIFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := InitRepo(dir, InitOptions{Config: testConfig()}); err != nil {
		t.Fatal(err)
	}
	repo, err := OpenRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	n, err := New(t.Context(), Params{Repo: repo, Config: testConfig(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, api.AddrFile)); err != nil {
		t.Fatalf("api file missing while running: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, api.AddrFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("api file still there after Close: %v", err)
	}
	if _, err := http.Get("http://" + n.APIAddr() + api.PathRPC); err == nil {
		t.Fatal("API still answers after Close")
	}
}

// rawCall posts body to the node's API with its token and returns the reply.
func rawCall(t *testing.T, n *testNode, body string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+n.APIAddr()+api.PathRPC, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(data))
}

// TestCloseWithAStalledClient: a client that opened a connection to the
// API and sends its request slowly does not make the node's Close fail.
func TestCloseWithAStalledClient(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	if _, err := InitRepo(dir, InitOptions{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	repo, err := OpenRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	n, err := New(t.Context(), Params{Repo: repo, Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", n.APIAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /v1/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("close with a stalled client: %v", err)
	}
}
