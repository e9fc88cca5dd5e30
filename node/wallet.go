package node

import (
	"context"
	"crypto/ed25519"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/mr-tron/base58"
)

// walletAPI serves wallet.*: the node's ledger keypair and, when it
// settles payments, its account.
type walletAPI struct {
	repo   *Repo
	escrow settlement.Escrow // nil when the node settles no payments
	ledger SettlementConfig
	mint   string // market.mint, the default of wallet.balance
}

func (a walletAPI) register(srv *rpc.Server) {
	srv.Register(api.MethodWalletAddress, rpc.NoParams(a.address))
	srv.Register(api.MethodWalletBalance, rpc.Method(a.balance))
}

func (a walletAPI) address(context.Context) (api.WalletAddress, error) {
	key, err := a.repo.WalletKey()
	if err != nil {
		return api.WalletAddress{}, err
	}
	out := api.WalletAddress{Address: base58.Encode(key.Public().(ed25519.PublicKey)), Ledger: a.ledger.Ledger}
	if out.Ledger != "" {
		out.Cluster = a.ledger.Cluster
	}
	return out, nil
}

func (a walletAPI) balance(ctx context.Context, p api.WalletBalanceParams) (api.WalletBalance, error) {
	if p.Mint != "" {
		if err := market.CheckMint(p.Mint); err != nil {
			return api.WalletBalance{}, api.Errorf(api.CodeInvalidParams, "invalid params: mint: %v", err)
		}
	}
	if a.escrow == nil {
		return api.WalletBalance{}, api.Errorf(api.CodeFailed, "this node settles no payments (settlement.ledger is empty)")
	}
	mint := p.Mint
	if mint == "" {
		mint = a.mint
	}
	if mint == "" {
		return api.WalletBalance{}, api.Errorf(api.CodeInvalidParams, "invalid params: mint: required (the node has no market.mint)")
	}
	addr := a.escrow.Address()
	bal, err := a.escrow.Balance(ctx, addr, mint)
	if err != nil {
		return api.WalletBalance{}, api.Errorf(api.CodeUnreachable, "ledger: %v", err)
	}
	out := api.WalletBalance{Address: addr, Mint: mint, Balance: bal}
	if nb, ok := a.escrow.(settlement.NativeBalancer); ok {
		if l, err := nb.NativeBalance(ctx, addr); err == nil {
			out.Lamports = &l
		}
	}
	return out, nil
}
