package devnet

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
)

// TestDevnetDialsOnlyLoopback runs a job on a devnet whose every host
// carries a dial guard, and checks that nothing was dialled or accepted
// outside loopback: no bootstrap list, DHT lookup, rendezvous or NAT
// feature of the local profile reaches off the machine.
func TestDevnetDialsOnlyLoopback(t *testing.T) {
	if s := node.LocalConfig().Swarm; len(s.AminoBootstrap) != 0 || s.MDNS || s.NATPortMap {
		t.Fatalf("local profile: amino_bootstrap %v, mdns %v, nat_port_map %v; want none of them", s.AminoBootstrap, s.MDNS, s.NATPortMap)
	}
	guest := filepath.Join(t.TempDir(), "guest.wasm")
	build := exec.Command("go", "build", "-o", guest, "../../compute/wasm/testdata/guest")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build guest: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	guard := &p2ptest.DialGuard{}
	dir := t.TempDir()
	d, err := Start(ctx, Params{Dir: dir, Nodes: 3, Logger: slog.New(slog.DiscardHandler),
		EditHost: func(p *p2p.Params) { p.ConnectionGater = guard }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, n := range d.Nodes {
		if n.Host().Amino != nil {
			t.Errorf("devnet node %s has an Amino DHT", n.Host().ID())
		}
	}

	c, err := api.FromRepo(filepath.Join(dir, "node0"))
	if err != nil {
		t.Fatal(err)
	}
	add := func(name string, data []byte) string {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := c.ContentAdd(ctx, api.ContentAddParams{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		return res.CID
	}
	wasm, err := os.ReadFile(guest)
	if err != nil {
		t.Fatal(err)
	}
	module, input := add("guest.wasm", wasm), add("data.txt", []byte("local only\n"))
	for ps, _ := c.MarketProviders(ctx, api.ProvidersParams{}); len(ps) < 2; ps, _ = c.MarketProviders(ctx, api.ProvidersParams{}) {
		if ctx.Err() != nil {
			t.Fatalf("%d providers listed; want 2", len(ps))
		}
		time.Sleep(50 * time.Millisecond)
	}
	spec, _ := json.Marshal(map[string]any{
		"kind":    "wasm",
		"wasm":    map[string]any{"module": module, "args": []string{"copy", "/in/data.txt", "/out/result.txt"}},
		"inputs":  []map[string]string{{"name": "data.txt", "cid": input}},
		"outputs": []map[string]any{{"name": "result", "path": "/out/result.txt"}},
		"limits":  map[string]int{"wall_seconds": 30},
	})
	job, err := c.JobSubmit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for job.State != "succeeded" {
		if job.State == "failed" || job.State == "cancelled" || ctx.Err() != nil {
			t.Fatalf("job %s: %+v", job.State, job)
		}
		time.Sleep(50 * time.Millisecond)
		if job, err = c.JobStatus(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
	}

	if len(guard.Dialed()) == 0 {
		t.Fatal("the dial guard saw no dial; is it installed?")
	}
	for _, a := range guard.Outside() {
		t.Errorf("a devnet node dialled or accepted %s, outside loopback", a)
	}
}
