package devnet

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/node/api"
)

// TestMain lets this test binary serve as the train executor's CPU
// worker, as the cyxwiz binary does.
func TestMain(m *testing.M) {
	train.ServeWorkerIfAsked()
	os.Exit(m.Run())
}

func TestDevnet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	d, err := Start(ctx, Params{Dir: dir, Nodes: 3, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range d.Nodes {
		c, err := api.FromRepo(filepath.Join(dir, "node"+string(rune('0'+i))))
		if err != nil {
			t.Fatal(err)
		}
		peers, err := c.SwarmPeers(ctx)
		if err != nil || len(peers) != 2 {
			t.Errorf("node%d (%s): %d peers, %v; want 2", i, n.Host().ID(), len(peers), err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// A second start reuses the repos and keeps the identities.
	d2, err := Start(ctx, Params{Dir: dir, Nodes: 3, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	for i := range d.Nodes {
		if d.Nodes[i].Host().ID() != d2.Nodes[i].Host().ID() {
			t.Errorf("node%d changed identity across restarts", i)
		}
	}
}
