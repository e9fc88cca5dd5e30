package localledger_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement/localledger"
	"github.com/cyxwiz/cyxwiz/settlement/localledger/ledgertest"
	"github.com/mr-tron/base58"
)

// call makes a JSON-RPC call over plain HTTP, as any client would.
func call(t *testing.T, url, method string, params []any, out any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Result json.RawMessage
		Error  *localledger.RPCError
		ID     int
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Error != nil || r.ID != 7 {
		t.Fatalf("%s: %v, id %d", method, r.Error, r.ID)
	}
	if err := json.Unmarshal(r.Result, out); err != nil {
		t.Fatalf("%s: %v in %s", method, err, r.Result)
	}
}

// clock reads the unix_timestamp of the Clock sysvar.
func clock(t *testing.T, l *localledger.Ledger) time.Time {
	t.Helper()
	var info struct{ Value struct{ Data [2]string } }
	call(t, l.RPC(), "getAccountInfo", []any{"SysvarC1ock11111111111111111111111111111111", map[string]any{"encoding": "base64"}}, &info)
	data, err := base64.StdEncoding.DecodeString(info.Value.Data[0])
	if err != nil || len(data) != 40 {
		t.Fatalf("clock sysvar %q: %v", info.Value.Data[0], err)
	}
	return time.Unix(int64(binary.LittleEndian.Uint64(data[32:])), 0)
}

func TestLedger(t *testing.T) {
	ctx := context.Background()
	l := ledgertest.Start(t)
	if !strings.HasPrefix(l.RPC(), "http://127.0.0.1:") || !strings.HasPrefix(l.WS(), "ws://127.0.0.1:") {
		t.Fatalf("addresses %s, %s", l.RPC(), l.WS())
	}

	var version map[string]any
	call(t, l.RPC(), "getVersion", nil, &version)
	if _, ok := version["solana-core"].(string); !ok {
		t.Fatalf("getVersion: %v", version)
	}

	key := make([]byte, 32)
	rand.Read(key)
	addr := base58.Encode(key)
	if err := l.Airdrop(ctx, addr, 5_000_000_000); err != nil {
		t.Fatal(err)
	}
	var balance struct{ Value uint64 }
	call(t, l.RPC(), "getBalance", []any{addr}, &balance)
	if balance.Value != 5_000_000_000 {
		t.Fatalf("balance %d after an airdrop of 5 SOL", balance.Value)
	}
	if err := l.Airdrop(ctx, "not an address", 1); err == nil {
		t.Fatal("airdrop to a bad address")
	}

	before := clock(t, l)
	if d := time.Since(before); d < -5*time.Second || d > 5*time.Second {
		t.Fatalf("ledger clock %v, wall clock %v", before, time.Now())
	}
	if err := l.WarpTime(ctx, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if after := clock(t, l); after.Sub(before) < 2*time.Hour {
		t.Fatalf("clock moved %v after a warp of 2h", after.Sub(before))
	}
	if err := l.WarpTime(ctx, -time.Second); err == nil {
		t.Fatal("warped back in time")
	}

	var slot, later uint64
	call(t, l.RPC(), "getSlot", nil, &slot)
	if err := l.AdvanceSlots(ctx, 160); err != nil {
		t.Fatal(err)
	}
	call(t, l.RPC(), "getSlot", nil, &later)
	if later < slot+160 {
		t.Fatalf("slot %d after advancing 160 from %d", later, slot)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := http.Post(l.RPC(), "application/json", strings.NewReader("{}")); err == nil {
		t.Fatal("the ledger still serves after Close")
	}
}

func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "server.mjs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := localledger.Start(ctx, localledger.Options{Dir: dir})
	if !errors.Is(err, localledger.ErrUnavailable) || !strings.Contains(err.Error(), "npm ci --prefix tools/ledger") {
		t.Fatalf("without npm packages: %v", err)
	}
	for _, pkg := range []string{"litesvm", "ws"} {
		os.MkdirAll(filepath.Join(dir, "node_modules", pkg), 0o755)
		os.WriteFile(filepath.Join(dir, "node_modules", pkg, "package.json"), []byte("{}"), 0o644)
	}
	_, err = localledger.Start(ctx, localledger.Options{Dir: dir, Node: filepath.Join(dir, "no-node")})
	if !errors.Is(err, localledger.ErrUnavailable) {
		t.Fatalf("without node: %v", err)
	}
	_, err = localledger.Start(ctx, localledger.Options{Dir: filepath.Join(dir, "nowhere")})
	if !errors.Is(err, localledger.ErrUnavailable) {
		t.Fatalf("without a ledger folder: %v", err)
	}
}

// TestNativeModuleMissing: a ledger folder whose LiteSVM cannot load reads
// as unavailable, not as a failure.
func TestNativeModuleMissing(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node")
	}
	dir := t.TempDir()
	script := "process.stderr.write('ledger: LiteSVM does not load\\n'); process.exit(3);"
	if err := os.WriteFile(filepath.Join(dir, "server.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"litesvm", "ws"} {
		os.MkdirAll(filepath.Join(dir, "node_modules", pkg), 0o755)
		os.WriteFile(filepath.Join(dir, "node_modules", pkg, "package.json"), []byte("{}"), 0o644)
	}
	_, err = localledger.Start(context.Background(), localledger.Options{Dir: dir, Node: node})
	if !errors.Is(err, localledger.ErrUnavailable) || !strings.Contains(err.Error(), "does not load") {
		t.Fatalf("%v, want ErrUnavailable with the ledger's reason", err)
	}
}
