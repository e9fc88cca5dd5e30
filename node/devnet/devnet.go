// Package devnet runs a local swarm of nodes in one process, on loopback:
// what `cyxwiz devnet` and the benchmarks start. With a local ledger it
// also sets up settlement: node0 the arbiter, the wallets funded and a
// token minted. It is kept out of package node, since the local ledger it
// drives starts Node.js.
package devnet

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cyxwiz/cyxwiz/node"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/settlement/localledger"
	"github.com/cyxwiz/cyxwiz/settlement/solana"
	sol "github.com/gagliardetto/solana-go"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mr-tron/base58"
)

// Params are the inputs of Start.
type Params struct {
	// Dir holds one repo per node (node0, node1, ...); missing repos are
	// created with the local profile, existing ones are reused.
	Dir string
	// Nodes is the number of nodes, at least 1.
	Nodes int
	// Logger receives the nodes' log lines, each tagged with its node.
	Logger *slog.Logger
	// Ledger, when set, settles priced jobs on this local Solana ledger:
	// node0 becomes the arbiter (and no provider), every node's wallet gets
	// SOL for fees, and the others get Funds of a new token, the
	// market mint of every node.
	Ledger *localledger.Ledger
	// EditHost, when set, changes every node's host parameters before it
	// starts (see node.Params.EditHost); tests use it to record dials.
	EditHost func(*p2p.Params)
}

// Settlement figures of a devnet.
const (
	// Lamports is the SOL each node's wallet gets for fees and rent.
	Lamports = 10_000_000_000
	// Decimals and Funds describe the devnet's token: each node but the
	// arbiter holds 1000 of it.
	Decimals = 6
	Funds    = 1000_000_000
	// PricePerCPUSecond is the providers' price when their config names
	// none: 0.0001 token per CPU-second.
	PricePerCPUSecond = 100
	// PricePerCall is what a call to a model the providers serve costs,
	// when their config names none.
	PricePerCall = 10
)

// Devnet is a local swarm of nodes in this process, on loopback, each with
// its own repo and API. node0 is the bootstrap peer of the others.
type Devnet struct {
	// Dir holds the nodes' repos.
	Dir string
	// Nodes are the running nodes, node0 first.
	Nodes []*node.Node
	// Mint is the token jobs are priced in when the devnet has a ledger.
	Mint  string
	repos []*node.Repo
}

// Start starts the nodes and waits until each is connected to every other
// one, or ctx ends.
func Start(ctx context.Context, p Params) (*Devnet, error) {
	if p.Nodes < 1 {
		return nil, fmt.Errorf("devnet: need at least 1 node, got %d", p.Nodes)
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Devnet{Dir: p.Dir}
	var bootstrap []string
	var arbiter string
	var bank *solana.Ledger // the devnet token's mint authority
	for i := range p.Nodes {
		dir := filepath.Join(p.Dir, fmt.Sprintf("node%d", i))
		if _, err := os.Stat(filepath.Join(dir, node.ConfigFile)); errors.Is(err, os.ErrNotExist) {
			if _, err := node.InitRepo(dir, node.InitOptions{Config: node.LocalConfig()}); err != nil {
				d.Close()
				return nil, fmt.Errorf("devnet: %w", err)
			}
		}
		repo, err := node.OpenRepo(dir)
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
		if p.Ledger != nil {
			if bank == nil {
				if bank, d.Mint, err = newMint(ctx, p.Ledger); err != nil {
					d.Close()
					return nil, fmt.Errorf("devnet: %w", err)
				}
			}
			if err := setUpSettlement(ctx, p.Ledger, bank, repo, &cfg, i, arbiter, d.Mint); err != nil {
				d.Close()
				return nil, fmt.Errorf("devnet: node%d: %w", i, err)
			}
		}
		n, err := node.New(ctx, node.Params{Repo: repo, Config: cfg, Logger: log.With("node", i), EditHost: p.EditHost})
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("devnet: node%d: %w", i, err)
		}
		if err := n.Start(ctx); err != nil {
			n.Close()
			d.Close()
			return nil, fmt.Errorf("devnet: node%d: %w", i, err)
		}
		d.Nodes = append(d.Nodes, n)
		if i == 0 {
			h := n.Host()
			for _, a := range h.Addrs() {
				bootstrap = append(bootstrap, a.String()+"/p2p/"+h.ID().String())
			}
			arbiter = h.ID().String()
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
				if a == b || len(a.Host().Network().ConnsToPeer(b.Host().ID())) > 0 {
					continue
				}
				missing++
				if time.Now().After(deadline) {
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					err := a.Host().Connect(cctx, peer.AddrInfo{ID: b.Host().ID(), Addrs: b.Host().Addrs()})
					cancel()
					if err != nil {
						return fmt.Errorf("devnet: connect %s to %s: %w", a.Host().ID(), b.Host().ID(), err)
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

// newMint creates the devnet's token on the ledger, with a throwaway
// key as its mint authority.
func newMint(ctx context.Context, ledger *localledger.Ledger) (*solana.Ledger, string, error) {
	key, err := sol.NewRandomPrivateKey()
	if err != nil {
		return nil, "", err
	}
	bank, err := solana.New(solana.Config{RPC: ledger.RPC(), WS: ledger.WS(), Key: key})
	if err != nil {
		return nil, "", err
	}
	if err := ledger.Airdrop(ctx, bank.Address(), Lamports); err != nil {
		return nil, "", fmt.Errorf("fund the mint authority: %w", err)
	}
	mint, err := bank.CreateMint(ctx, Decimals)
	if err != nil {
		return nil, "", err
	}
	return bank, mint, nil
}

// setUpSettlement points node i's config at the local ledger and funds
// its wallet: SOL for fees, and Funds of the mint unless it is the
// arbiter (node0).
func setUpSettlement(ctx context.Context, ledger *localledger.Ledger, bank *solana.Ledger, repo *node.Repo, cfg *node.Config, i int, arbiter, mint string) error {
	cfg.Settlement = node.SettlementConfig{Ledger: "solana", Cluster: node.ClusterLocal, RPCURL: ledger.RPC(), WSURL: ledger.WS(), Arbiter: arbiter}
	cfg.Market.Mint = mint
	if cfg.Market.PricePerCall == 0 {
		cfg.Market.PricePerCall = PricePerCall
	}
	if cfg.Market.PricePerCPUSecond == 0 {
		cfg.Market.PricePerCPUSecond = PricePerCPUSecond
	}
	if i == 0 {
		cfg.Role, cfg.Market.Provider, cfg.Settlement.Arbiter = node.RoleArbiter, false, ""
	}
	key, err := repo.WalletKey()
	if err != nil {
		return err
	}
	addr := base58.Encode(key.Public().(ed25519.PublicKey))
	if err := ledger.Airdrop(ctx, addr, Lamports); err != nil {
		return fmt.Errorf("fund the wallet: %w", err)
	}
	if i == 0 {
		return nil
	}
	return bank.MintTo(ctx, mint, addr, Funds)
}
