package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// DevnetParams are the inputs of StartDevnet.
type DevnetParams struct {
	// Dir holds one repo per node (node0, node1, ...); missing repos are
	// created with the local profile, existing ones are reused.
	Dir string
	// Nodes is the number of nodes, at least 1.
	Nodes int
	// Logger receives the nodes' log lines, each tagged with its node.
	Logger *slog.Logger
}

// Devnet is a local swarm of nodes in this process, on loopback, each with
// its own repo and API. node0 is the bootstrap peer of the others.
type Devnet struct {
	Dir   string
	Nodes []*Node
	repos []*Repo
}

// StartDevnet starts the nodes and waits until each is connected to every
// other one, or ctx ends.
func StartDevnet(ctx context.Context, p DevnetParams) (*Devnet, error) {
	if p.Nodes < 1 {
		return nil, fmt.Errorf("devnet: need at least 1 node, got %d", p.Nodes)
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Devnet{Dir: p.Dir}
	var bootstrap []string
	for i := range p.Nodes {
		dir := filepath.Join(p.Dir, fmt.Sprintf("node%d", i))
		if _, err := os.Stat(filepath.Join(dir, ConfigFile)); errors.Is(err, os.ErrNotExist) {
			if _, err := InitRepo(dir, InitOptions{Config: LocalConfig()}); err != nil {
				d.Close()
				return nil, fmt.Errorf("devnet: %w", err)
			}
		}
		repo, err := OpenRepo(dir)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("devnet: %w", err)
		}
		d.repos = append(d.repos, repo)
		cfg, err := repo.Config()
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("devnet: %w", err)
		}
		cfg.Swarm.Bootstrap = bootstrap
		n, err := New(Params{Repo: repo, Config: cfg, Logger: log.With("node", i)})
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("devnet: node%d: %w", i, err)
		}
		if err := n.Start(); err != nil {
			n.Close()
			d.Close()
			return nil, fmt.Errorf("devnet: node%d: %w", i, err)
		}
		d.Nodes = append(d.Nodes, n)
		if i == 0 {
			info, err := n.nodeInfo(ctx)
			if err != nil {
				d.Close()
				return nil, fmt.Errorf("devnet: %w", err)
			}
			bootstrap = info.Addresses
		}
	}
	if err := d.waitMesh(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// waitMesh waits until every node is connected to every other node. The
// DHT's bootstrap walk finds the peers; a direct dial covers any it missed
// after a while.
func (d *Devnet) waitMesh(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(2 * time.Second)
	for {
		missing := 0
		for _, a := range d.Nodes {
			for _, b := range d.Nodes {
				if a == b || len(a.host.Network().ConnsToPeer(b.host.ID())) > 0 {
					continue
				}
				missing++
				if time.Now().After(deadline) {
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					err := a.host.Connect(cctx, peer.AddrInfo{ID: b.host.ID(), Addrs: b.host.Addrs()})
					cancel()
					if err != nil {
						return fmt.Errorf("devnet: connect %s to %s: %w", a.host.ID(), b.host.ID(), err)
					}
				}
			}
		}
		if missing == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devnet: waiting for peers: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Close stops every node in reverse order and releases their repos.
func (d *Devnet) Close() error {
	var errs []error
	for i := len(d.Nodes) - 1; i >= 0; i-- {
		errs = append(errs, d.Nodes[i].Close())
	}
	for _, r := range d.repos {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}
