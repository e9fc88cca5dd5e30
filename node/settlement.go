package node

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"

	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Solana clusters a node can settle on.
const (
	ClusterLocal   = "local"
	ClusterDevnet  = "devnet"
	ClusterMainnet = "mainnet"
)

// clusterURLs are the public JSON-RPC and WebSocket endpoints of each
// cluster; local is the ledger `cyxwiz devnet` starts, whose URLs the
// devnet writes into each node's config.
var clusterURLs = map[string][2]string{
	ClusterDevnet:  {"https://api.devnet.solana.com", "wss://api.devnet.solana.com"},
	ClusterMainnet: {"https://api.mainnet-beta.solana.com", "wss://api.mainnet-beta.solana.com"},
}

// SettlementConfig configures payments: escrows on a Solana cluster.
type SettlementConfig struct {
	// Ledger is "" (jobs are not paid on a ledger) or "solana".
	Ledger string `json:"ledger"`
	// Cluster is local, devnet or mainnet.
	Cluster string `json:"cluster"`
	// RPCURL and WSURL override the cluster's endpoints ("" keeps them;
	// local has none and needs both).
	RPCURL string `json:"rpc_url"`
	WSURL  string `json:"ws_url"`
	// Arbiter is the peer ID of the arbiter node that co-signs refunds of
	// this node's escrows; a requester without one does not lock escrows.
	Arbiter string `json:"arbiter"`
}

// DefaultSettlementConfig returns the settings of a new node: no ledger.
func DefaultSettlementConfig() SettlementConfig {
	return SettlementConfig{Cluster: ClusterDevnet}
}

// Endpoints returns the JSON-RPC and WebSocket URLs to use.
func (c SettlementConfig) Endpoints() (rpc, ws string) {
	u := clusterURLs[c.Cluster]
	rpc, ws = u[0], u[1]
	if c.RPCURL != "" {
		rpc = c.RPCURL
	}
	if c.WSURL != "" {
		ws = c.WSURL
	}
	return rpc, ws
}

// Validate reports every setting that cannot work, each naming its key.
func (c SettlementConfig) Validate() error {
	var errs []error
	switch c.Ledger {
	case "", "solana":
	default:
		errs = append(errs, fmt.Errorf("ledger: %q is not one of \"\", solana", c.Ledger))
	}
	switch c.Cluster {
	case ClusterLocal, ClusterDevnet, ClusterMainnet:
	default:
		errs = append(errs, fmt.Errorf("cluster: %q is not one of local, devnet, mainnet", c.Cluster))
	}
	for _, f := range []struct{ key, v string }{{"rpc_url", c.RPCURL}, {"ws_url", c.WSURL}} {
		if f.v == "" {
			continue
		}
		if u, err := url.Parse(f.v); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not a URL", f.key, f.v))
		}
	}
	if rpc, ws := c.Endpoints(); c.Ledger != "" && (rpc == "" || ws == "") {
		errs = append(errs, errors.New("rpc_url/ws_url: the local cluster needs both"))
	}
	if c.Arbiter != "" {
		if _, err := peer.Decode(c.Arbiter); err != nil {
			errs = append(errs, fmt.Errorf("arbiter: %q is not a peer ID", c.Arbiter))
		}
	}
	return errors.Join(errs...)
}

// WalletKey reads the node's ledger keypair (Solana CLI JSON: the 64
// bytes of the secret key as numbers).
func (r *Repo) WalletKey() (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(r.Path(WalletFile))
	if err != nil {
		return nil, fmt.Errorf("wallet: %w", err)
	}
	var ints []int
	if err := json.Unmarshal(data, &ints); err != nil || len(ints) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("wallet: %s is not a Solana keypair file", WalletFile)
	}
	key := make([]byte, len(ints))
	for i, v := range ints {
		if v < 0 || v > 255 {
			return nil, fmt.Errorf("wallet: %s is not a Solana keypair file", WalletFile)
		}
		key[i] = byte(v)
	}
	return ed25519.PrivateKey(key), nil
}

// EscrowFactory opens a node's account on a ledger from its wallet key.
type EscrowFactory func(key ed25519.PrivateKey) (settlement.Escrow, error)

// openEscrow opens the node's account on the configured ledger, or
// returns nil when it settles no payments.
func openEscrow(repo *Repo, cfg SettlementConfig, log *slog.Logger, factory EscrowFactory) (settlement.Escrow, error) {
	if factory == nil {
		if cfg.Ledger == "" {
			return nil, nil
		}
		factory = solanaEscrow(cfg, log.With("system", "settlement"))
	}
	key, err := repo.WalletKey()
	if err != nil {
		return nil, err
	}
	esc, err := factory(key)
	if err != nil {
		return nil, fmt.Errorf("open the ledger: %w", err)
	}
	return esc, nil
}

// jobSettlement is the market engine's settlement, nil when the node
// settles no payments.
func jobSettlement(escrow settlement.Escrow, repo *Repo, cfg Config) *jobs.Settlement {
	if escrow == nil {
		return nil
	}
	s := &jobs.Settlement{Escrow: escrow, Mint: cfg.Market.Mint, Serve: cfg.Role == RoleArbiter}
	if key, err := repo.WalletKey(); err == nil {
		s.Sign = func(msg []byte) []byte { return ed25519.Sign(key, msg) }
	}
	if a, err := peer.Decode(cfg.Settlement.Arbiter); err == nil {
		s.Arbiter = a
	}
	return s
}
