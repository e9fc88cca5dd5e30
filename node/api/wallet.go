package api

import "context"

// Wallet method names.
const (
	MethodWalletAddress = "wallet.address"
	MethodWalletBalance = "wallet.balance"
)

// WalletAddress is the node's ledger account.
type WalletAddress struct {
	// Address is the account's address (base58), the public key of the
	// repo's keys/wallet.json.
	Address string `json:"address"`
	// Ledger is the ledger the node settles on ("" for none), Cluster its
	// cluster.
	Ledger  string `json:"ledger"`
	Cluster string `json:"cluster,omitempty"`
}

// WalletBalanceParams are the parameters of wallet.balance.
type WalletBalanceParams struct {
	// Mint is the token to report; "" is the node's market mint.
	Mint string `json:"mint,omitempty"`
}

// WalletBalance is the node's balance of one token.
type WalletBalance struct {
	Address string `json:"address"`
	Mint    string `json:"mint"`
	// Balance is in the mint's base units.
	Balance uint64 `json:"balance"`
	// Lamports is the account's SOL, which pays transaction fees, where the
	// ledger reports it.
	Lamports *uint64 `json:"lamports,omitempty"`
}

// WalletAddress calls wallet.address.
func (c *Client) WalletAddress(ctx context.Context) (WalletAddress, error) {
	var out WalletAddress
	err := c.Call(ctx, MethodWalletAddress, nil, &out)
	return out, err
}

// WalletBalance calls wallet.balance.
func (c *Client) WalletBalance(ctx context.Context, p WalletBalanceParams) (WalletBalance, error) {
	var out WalletBalance
	err := c.Call(ctx, MethodWalletBalance, p, &out)
	return out, err
}
