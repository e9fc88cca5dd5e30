package node

import (
	"crypto/ed25519"

	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/cyxwiz/cyxwiz/settlement/solana"
	sol "github.com/gagliardetto/solana-go"
)

// solanaEscrow opens the node's account on the configured Solana cluster.
func (n *Node) solanaEscrow(key ed25519.PrivateKey) (settlement.Escrow, error) {
	rpc, ws := n.cfg.Settlement.Endpoints()
	return solana.New(solana.Config{RPC: rpc, WS: ws, Key: sol.PrivateKey(key), Logger: n.log.With("system", "settlement")})
}
