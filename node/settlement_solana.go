package node

import (
	"crypto/ed25519"
	"log/slog"

	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/cyxwiz/cyxwiz/settlement/solana"
	sol "github.com/gagliardetto/solana-go"
)

// solanaEscrow opens accounts on the configured Solana cluster.
func solanaEscrow(cfg SettlementConfig, log *slog.Logger) EscrowFactory {
	return func(key ed25519.PrivateKey) (settlement.Escrow, error) {
		rpc, ws := cfg.Endpoints()
		return solana.New(solana.Config{RPC: rpc, WS: ws, Key: sol.PrivateKey(key), Logger: log})
	}
}
