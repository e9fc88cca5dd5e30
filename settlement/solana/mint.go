package solana

import (
	"context"
	"fmt"

	sol "github.com/gagliardetto/solana-go"
)

// CreateMint creates a new SPL Token mint of the given decimals, with this
// party as its mint authority, and returns its address. Devnets and tests
// use it for a token to price jobs in.
func (l *Ledger) CreateMint(ctx context.Context, decimals uint8) (string, error) {
	mintKey, err := sol.NewRandomPrivateKey()
	if err != nil {
		return "", fmt.Errorf("create mint: %w", err)
	}
	mint := mintKey.PublicKey()
	rent, err := l.rent(ctx, MintSize)
	if err != nil {
		return "", fmt.Errorf("create mint: %w", err)
	}
	if _, err := l.sendNew(ctx, "create mint", []sol.Instruction{
		createAccount(l.addr, mint, rent, MintSize, sol.TokenProgramID),
		initializeMint2(mint, decimals, l.addr),
	}, mintKey); err != nil {
		return "", fmt.Errorf("create mint: %w", err)
	}
	return mint.String(), nil
}

// MintTo mints amount of a mint whose authority is this party into the
// owner's associated token account, creating the account when needed.
func (l *Ledger) MintTo(ctx context.Context, mint, owner string, amount uint64) error {
	m, err := sol.PublicKeyFromBase58(mint)
	if err != nil {
		return fmt.Errorf("mint to: mint: %w", err)
	}
	o, err := sol.PublicKeyFromBase58(owner)
	if err != nil {
		return fmt.Errorf("mint to: owner: %w", err)
	}
	if _, err := l.sendNew(ctx, "mint to "+owner, []sol.Instruction{
		createATAIdempotent(l.addr, o, m),
		mintTo(m, ata(o, m), l.addr, amount),
	}); err != nil {
		return fmt.Errorf("mint to: %w", err)
	}
	return nil
}
