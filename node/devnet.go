package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement/localledger"
	"github.com/cyxwiz/cyxwiz/settlement/solana"
	sol "github.com/gagliardetto/solana-go"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mr-tron/base58"
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
	// Ledger, when set, settles priced jobs on this local Solana ledger:
	// node0 becomes the arbiter (and no provider), every node's wallet gets
	// SOL for fees, and the others get DevnetFunds of a new token, the
	// market mint of every node.
	Ledger *localledger.Ledger
}

// Devnet settlement figures.
const (
	// DevnetLamports is the SOL each node's wallet gets for fees and rent.
	DevnetLamports = 10_000_000_000
	// DevnetDecimals and DevnetFunds describe the devnet's token: each
	// node but the arbiter holds 1000 of it.
	DevnetDecimals = 6
	DevnetFunds    = 1000_000_000
	// DevnetPricePerCPUSecond is the providers' price when their config
	// names none: 0.0001 token per CPU-second.
	DevnetPricePerCPUSecond = 100
)

// Devnet is a local swarm of nodes in this process, on loopback, each with
// its own repo and API. node0 is the bootstrap peer of the others.
type Devnet struct {
	Dir   string
	Nodes []*Node
	// Mint is the token jobs are priced in when the devnet has a ledger.
	Mint  string
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
	var arbiter string
	var bank *solana.Ledger // the devnet token's mint authority
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
		if p.Ledger != nil {
			if bank == nil {
				if bank, d.Mint, err = devnetMint(ctx, p.Ledger); err != nil {
					d.Close()
					return nil, fmt.Errorf("devnet: %w", err)
				}
			}
			if err := devnetSettlement(ctx, p.Ledger, bank, repo, &cfg, i, arbiter, d.Mint); err != nil {
				d.Close()
				return nil, fmt.Errorf("devnet: node%d: %w", i, err)
			}
		}
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
			bootstrap, arbiter = info.Addresses, info.ID
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

// devnetMint creates the devnet's token on the ledger, with a throwaway
// key as its mint authority.
func devnetMint(ctx context.Context, ledger *localledger.Ledger) (*solana.Ledger, string, error) {
	key, err := sol.NewRandomPrivateKey()
	if err != nil {
		return nil, "", err
	}
	bank, err := solana.New(solana.Config{RPC: ledger.RPC(), WS: ledger.WS(), Key: key})
	if err != nil {
		return nil, "", err
	}
	if err := ledger.Airdrop(ctx, bank.Address(), DevnetLamports); err != nil {
		return nil, "", fmt.Errorf("fund the mint authority: %w", err)
	}
	mint, err := bank.CreateMint(ctx, DevnetDecimals)
	if err != nil {
		return nil, "", err
	}
	return bank, mint, nil
}

// devnetSettlement points node i's config at the local ledger and funds
// its wallet: SOL for fees, and DevnetFunds of the mint unless it is the
// arbiter (node0).
func devnetSettlement(ctx context.Context, ledger *localledger.Ledger, bank *solana.Ledger, repo *Repo, cfg *Config, i int, arbiter, mint string) error {
	cfg.Settlement = SettlementConfig{Ledger: "solana", Cluster: ClusterLocal, RPCURL: ledger.RPC(), WSURL: ledger.WS(), Arbiter: arbiter}
	cfg.Market.Mint = mint
	if cfg.Market.PricePerCPUSecond == 0 {
		cfg.Market.PricePerCPUSecond = DevnetPricePerCPUSecond
	}
	if i == 0 {
		cfg.Role, cfg.Market.Provider, cfg.Settlement.Arbiter = RoleArbiter, false, ""
	}
	key, err := repo.WalletKey()
	if err != nil {
		return err
	}
	addr := base58.Encode(key.Public().(ed25519.PublicKey))
	if err := ledger.Airdrop(ctx, addr, DevnetLamports); err != nil {
		return fmt.Errorf("fund the wallet: %w", err)
	}
	if i == 0 {
		return nil
	}
	return bank.MintTo(ctx, mint, addr, DevnetFunds)
}
