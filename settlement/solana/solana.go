// Package solana implements settlement.Escrow on Solana with programs that
// every cluster has (System, SPL Token, Associated Token Account, Memo) and
// no program of its own.
//
// Each (requester, provider, arbiter) triple shares one 2-of-3 SPL Token
// multisig, created by the requester on its first lock and reused after
// (SPL Token cannot close a multisig, so its rent is spent once). Each job
// gets a vault: a token account owned by the multisig. Both live at
// addresses derived with CreateAccountWithSeed from the requester's key:
// the multisig's seed hashes the provider and the arbiter, the vault's
// hashes every term (job, parties, mint, amount, deadline). Any party
// computes them from the terms, only the requester can create them, and a
// vault at the derived address can only be the one those terms describe.
//
// A lock is one transaction, signed by the requester: create the vault
// (and the multisig the first time), initialise it, move the amount in
// (for wrapped SOL, fund it with rent + amount and sync), and a memo with
// the terms.
//
// A payout is one transaction that needs two members: the proposer builds
// [AdvanceNonceAccount, create the recipient's token account if absent,
// TransferChecked vault -> recipient, CloseAccount vault -> requester] on
// its own durable nonce, signs it and hands the bytes to the co-signer,
// who rebuilds it from the terms, requires the very same message, signs,
// submits and waits for confirmation. The recipient, always one of the two
// signers, pays the fee: the one who gains from a payout pays for it. The
// vault's rent goes back to the requester, who paid it.
//
// A split (settlement.Split, ArbiterSplit) is a payout of the same kind
// that pays the provider an exact amount and the rest of the vault back to
// the requester, with a second TransferChecked (see split.go); the
// provider proposes it and pays its fee.
//
// After settlement the vault is gone; Status learns who was paid from the
// vault's last transaction (getSignaturesForAddress, getTransaction).
//
// Costs: after set-up a job takes two transactions and three signatures,
// 15,000 lamports at 5,000 per signature (the requester pays 5,000 for the
// lock, the recipient 10,000 for the payout); the vault's rent comes back
// on close. Set-up, once: the triple's multisig (355 bytes of rent, for
// good), each proposer's nonce account (80 bytes, kept for reuse) and the
// recipient's token account.
//
// Escrows in SOL use the wrapped-SOL mint, NativeMint: the lock takes the
// requester's lamports, the payout arrives in the recipient's wrapped-SOL
// account, and Balance reports that wrapped balance, as for any mint.
//
// Anyone can send tokens into a vault. A vault that held more than its
// amount could not be closed, so a payout moves everything in the vault to
// the recipient; a payout proposed before such a deposit is refused as
// ErrStale and proposed again.
//
// Limits: use mints of the classic Token program (Token-2022 extensions
// such as a permanent delegate could undo the escrow); a mint's freeze
// authority can freeze a vault.
package solana

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
	sol "github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/rpc"
)

// Config says which cluster to use and as whom.
type Config struct {
	// RPC is the cluster's JSON-RPC endpoint (http or https).
	RPC string
	// WS is the cluster's PubSub endpoint; optional. Confirmations are
	// polled with getSignatureStatuses; a signatureSubscribe here only
	// wakes the wait early and lets it poll less.
	WS string
	// Key is this party's keypair; its public key is its account.
	Key sol.PrivateKey
	// Commitment is the commitment reads and confirmations wait for;
	// confirmed when empty.
	Commitment rpc.CommitmentType
	// Logger receives debug records of requests and transactions; none
	// when nil.
	Logger *slog.Logger
	// Timeout bounds each RPC request and each wait for a confirmation;
	// one minute when zero.
	Timeout time.Duration
}

// Ledger is one party's view of a Solana cluster. It implements
// settlement.Escrow and is safe for concurrent use.
type Ledger struct {
	cfg  Config
	key  sol.PrivateKey
	addr sol.PublicKey
	rpc  *rpc.Client
	log  *slog.Logger

	mu           sync.Mutex
	rents        map[uint64]uint64
	mintDecimals map[sol.PublicKey]uint8

	nonceMu sync.Mutex
	leases  []sol.PublicKey // vault whose payout holds the i-th nonce account; zero when free

	sent atomic.Int64 // transactions sent, for tests
}

var (
	_ settlement.Escrow         = (*Ledger)(nil)
	_ settlement.LedgerClock    = (*Ledger)(nil)
	_ settlement.NativeBalancer = (*Ledger)(nil)
)

// New returns a ledger that acts with cfg.Key on the cluster at cfg.RPC.
// It does not contact the cluster.
func New(cfg Config) (*Ledger, error) {
	if cfg.RPC == "" {
		return nil, errors.New("solana ledger: no RPC endpoint")
	}
	if err := cfg.Key.Validate(); err != nil {
		return nil, fmt.Errorf("solana ledger: key: %w", err)
	}
	if cfg.Commitment == "" {
		cfg.Commitment = rpc.CommitmentConfirmed
	}
	switch cfg.Commitment {
	case rpc.CommitmentProcessed, rpc.CommitmentConfirmed, rpc.CommitmentFinalized:
	default:
		return nil, fmt.Errorf("solana ledger: unknown commitment %q", cfg.Commitment)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ledger{
		cfg: cfg, key: cfg.Key, addr: cfg.Key.PublicKey(), rpc: rpc.New(cfg.RPC),
		log:   log.With("account", cfg.Key.PublicKey().String()),
		rents: map[uint64]uint64{}, mintDecimals: map[sol.PublicKey]uint8{},
	}, nil
}

// Address returns this party's account address.
func (l *Ledger) Address() string { return l.addr.String() }

// sign signs a transaction with this party's key, leaving other signers'
// slots as they are.
func (l *Ledger) sign(tx *sol.Transaction) error {
	_, err := tx.PartialSign(func(k sol.PublicKey) *sol.PrivateKey {
		if k.Equals(l.addr) {
			return &l.key
		}
		return nil
	})
	return err
}

// Lock moves the terms' amount from this party, the requester, into the
// job's vault in one transaction. Locking the same terms again returns the
// existing vault, so a lock whose outcome was lost can be repeated.
func (l *Ledger) Lock(ctx context.Context, t settlement.Terms) (settlement.Ref, error) {
	p, err := parseTerms(t)
	if err != nil {
		return settlement.Ref{}, fmt.Errorf("lock: %w", err)
	}
	if !p.requester.Equals(l.addr) {
		return settlement.Ref{}, fmt.Errorf("lock: %w: only the requester locks funds", settlement.ErrNotMember)
	}
	k := deriveKeys(t, p)
	ref := settlement.Ref{Multisig: k.multisig.String(), Vault: k.vault.String()}
	if v, err := l.account(ctx, k.vault); err != nil {
		return settlement.Ref{}, fmt.Errorf("lock %s: %w", t.JobID, err)
	} else if v != nil {
		if err := l.Verify(ctx, ref, t); err != nil {
			return settlement.Ref{}, fmt.Errorf("lock %s: a vault exists already: %w", t.JobID, err)
		}
		return ref, nil
	}
	decimals, err := l.decimals(ctx, p.mint)
	if err != nil {
		return settlement.Ref{}, fmt.Errorf("lock %s: %w", t.JobID, err)
	}
	vaultRent, err := l.rent(ctx, TokenAccountSize)
	if err != nil {
		return settlement.Ref{}, fmt.Errorf("lock %s: %w", t.JobID, err)
	}
	var ixs []sol.Instruction
	lamportsNeeded := uint64(5000) + vaultRent
	ms, err := l.account(ctx, k.multisig)
	if err != nil {
		return settlement.Ref{}, fmt.Errorf("lock %s: %w", t.JobID, err)
	}
	if ms == nil {
		msRent, err := l.rent(ctx, MultisigSize)
		if err != nil {
			return settlement.Ref{}, fmt.Errorf("lock %s: %w", t.JobID, err)
		}
		lamportsNeeded += msRent
		ixs = append(ixs,
			createAccountWithSeed(l.addr, k.multisig, l.addr, k.multisigSeed, msRent, MultisigSize, sol.TokenProgramID),
			initializeMultisig2(k.multisig, 2, p.requester, p.provider, p.arbiter))
	} else if err := checkMultisig(ms, p); err != nil {
		return settlement.Ref{}, fmt.Errorf("lock %s: %w", t.JobID, err)
	}
	if p.mint.Equals(nativeMint) {
		lamportsNeeded += t.Amount
		ixs = append(ixs,
			createAccountWithSeed(l.addr, k.vault, l.addr, k.vaultSeed, vaultRent+t.Amount, TokenAccountSize, sol.TokenProgramID),
			initializeAccount3(k.vault, p.mint, k.multisig),
			syncNative(k.vault))
	} else {
		src := ata(l.addr, p.mint)
		have, err := l.tokenBalance(ctx, src)
		if err != nil {
			return settlement.Ref{}, fmt.Errorf("lock %s: %w", t.JobID, err)
		}
		if have < t.Amount {
			return settlement.Ref{}, fmt.Errorf("lock %s: %w: holds %d of %s, needs %d", t.JobID, settlement.ErrFunds, have, p.mint, t.Amount)
		}
		ixs = append(ixs,
			createAccountWithSeed(l.addr, k.vault, l.addr, k.vaultSeed, vaultRent, TokenAccountSize, sol.TokenProgramID),
			initializeAccount3(k.vault, p.mint, k.multisig),
			transferChecked(src, p.mint, k.vault, l.addr, nil, t.Amount, decimals))
	}
	ixs = append(ixs, memoInstruction(memo(t)))
	if have, err := l.lamports(ctx, l.addr); err != nil {
		return settlement.Ref{}, fmt.Errorf("lock %s: %w", t.JobID, err)
	} else if have < lamportsNeeded {
		return settlement.Ref{}, fmt.Errorf("lock %s: %w: %d lamports, needs %d for rent and fee", t.JobID, settlement.ErrFunds, have, lamportsNeeded)
	}
	if _, err := l.sendNew(ctx, "lock "+t.JobID, ixs); err != nil {
		if v, verr := l.account(ctx, k.vault); verr == nil && v != nil && l.Verify(ctx, ref, t) == nil {
			return ref, nil // it landed after all
		}
		return settlement.Ref{}, err
	}
	return ref, nil
}

// sendNew builds a transaction paid and signed by this party on a recent
// blockhash, sends it and waits for it.
func (l *Ledger) sendNew(ctx context.Context, what string, ixs []sol.Instruction, extra ...sol.PrivateKey) (sol.Signature, error) {
	bh, err := l.blockhash(ctx)
	if err != nil {
		return sol.Signature{}, fmt.Errorf("%s: %w", what, err)
	}
	tx, err := sol.NewTransaction(ixs, bh, sol.TransactionPayer(l.addr))
	if err != nil {
		return sol.Signature{}, fmt.Errorf("%s: build: %w", what, err)
	}
	keys := append([]sol.PrivateKey{l.key}, extra...)
	if _, err := tx.Sign(func(k sol.PublicKey) *sol.PrivateKey {
		for i := range keys {
			if keys[i].PublicKey().Equals(k) {
				return &keys[i]
			}
		}
		return nil
	}); err != nil {
		return sol.Signature{}, fmt.Errorf("%s: sign: %w", what, err)
	}
	return l.submit(ctx, what, tx)
}

// checkMultisig checks a multisig account: the Token program's, 2 of the
// three parties.
func checkMultisig(a *rpc.Account, p parties) error {
	data := a.Data.GetBinary()
	if !a.Owner.Equals(sol.TokenProgramID) || len(data) != MultisigSize {
		return fmt.Errorf("%w: the multisig is not a Token program multisig", settlement.ErrVaultMismatch)
	}
	m, n, init := data[0], data[1], data[2]
	if init != 1 || m != 2 || n != 3 {
		return fmt.Errorf("%w: the multisig is %d of %d (initialised %v), want 2 of 3", settlement.ErrVaultMismatch, m, n, init == 1)
	}
	want := map[sol.PublicKey]bool{p.requester: true, p.provider: true, p.arbiter: true}
	for i := range 3 {
		k := sol.PublicKeyFromBytes(data[3+32*i : 3+32*(i+1)])
		if !want[k] {
			return fmt.Errorf("%w: the multisig's members are not the three parties", settlement.ErrVaultMismatch)
		}
		delete(want, k)
	}
	return nil
}

// tokenAccount is the part of an SPL Token account the escrow reads.
type tokenAccount struct {
	mint, owner    sol.PublicKey
	amount         uint64
	delegate       bool
	state          byte // 0 uninitialised, 1 initialised, 2 frozen
	closeAuthority bool
}

func decodeTokenAccount(a *rpc.Account) (tokenAccount, error) {
	data := a.Data.GetBinary()
	if !a.Owner.Equals(sol.TokenProgramID) || len(data) != TokenAccountSize {
		return tokenAccount{}, fmt.Errorf("%w: not a Token program account", settlement.ErrVaultMismatch)
	}
	return tokenAccount{
		mint:           sol.PublicKeyFromBytes(data[0:32]),
		owner:          sol.PublicKeyFromBytes(data[32:64]),
		amount:         binary.LittleEndian.Uint64(data[64:72]),
		delegate:       binary.LittleEndian.Uint32(data[72:76]) != 0,
		state:          data[108],
		closeAuthority: binary.LittleEndian.Uint32(data[129:133]) != 0,
	}, nil
}

// checkVault checks a vault account against the multisig and the terms.
func checkVault(a *rpc.Account, multisig sol.PublicKey, p parties, amount uint64) (tokenAccount, error) {
	v, err := decodeTokenAccount(a)
	switch {
	case err != nil:
		return v, err
	case v.state != 1:
		return v, fmt.Errorf("%w: the vault is not usable (state %d: uninitialised or frozen)", settlement.ErrVaultMismatch, v.state)
	case !v.owner.Equals(multisig):
		return v, fmt.Errorf("%w: the vault belongs to %s, not the multisig", settlement.ErrVaultMismatch, v.owner)
	case !v.mint.Equals(p.mint):
		return v, fmt.Errorf("%w: the vault holds %s, not %s", settlement.ErrVaultMismatch, v.mint, p.mint)
	case v.delegate || v.closeAuthority:
		return v, fmt.Errorf("%w: the vault has a delegate or a close authority", settlement.ErrVaultMismatch)
	case v.amount < amount:
		return v, fmt.Errorf("%w: the vault holds %d, want %d", settlement.ErrVaultMismatch, v.amount, amount)
	}
	return v, nil
}

// Verify checks on the ledger that the escrow holds the terms: the
// addresses are the ones the terms derive, the multisig is 2 of exactly
// the three parties, the vault belongs to it, holds at least the amount of
// the mint, and has no delegate, close authority or freeze.
func (l *Ledger) Verify(ctx context.Context, ref settlement.Ref, t settlement.Terms) error {
	p, err := parseTerms(t)
	if err != nil {
		return fmt.Errorf("verify: %w: %w", settlement.ErrVaultMismatch, err)
	}
	k := deriveKeys(t, p)
	if ref.Multisig != k.multisig.String() || ref.Vault != k.vault.String() {
		return fmt.Errorf("verify: %w: the escrow is not the one these terms lock into", settlement.ErrVaultMismatch)
	}
	ms, err := l.account(ctx, k.multisig)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if ms == nil {
		return fmt.Errorf("verify: %w: no multisig at %s", settlement.ErrVaultMismatch, k.multisig)
	}
	if err := checkMultisig(ms, p); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	v, err := l.account(ctx, k.vault)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if v == nil {
		return fmt.Errorf("verify: %w: no vault at %s (never locked, or settled)", settlement.ErrVaultMismatch, k.vault)
	}
	if _, err := checkVault(v, k.multisig, p, t.Amount); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	return nil
}

// Status reads an escrow: locked with the vault's amount, or, once the
// vault is closed, who its payout paid, from the vault's transactions.
func (l *Ledger) Status(ctx context.Context, ref settlement.Ref) (settlement.Status, error) {
	vault, err := sol.PublicKeyFromBase58(ref.Vault)
	if err != nil {
		return settlement.Status{}, fmt.Errorf("status: %w: vault %q: %w", settlement.ErrVaultMismatch, ref.Vault, err)
	}
	a, err := l.account(ctx, vault)
	if err != nil {
		return settlement.Status{}, fmt.Errorf("status: %w", err)
	}
	if a != nil {
		v, err := decodeTokenAccount(a)
		if err != nil {
			return settlement.Status{}, fmt.Errorf("status of %s: %w", vault, err)
		}
		return settlement.Status{State: settlement.Locked, Amount: v.amount}, nil
	}
	paid, found, err := l.settlement(ctx, vault)
	if err != nil {
		return settlement.Status{}, fmt.Errorf("status of %s: %w", vault, err)
	}
	if !found {
		return settlement.Status{}, fmt.Errorf("status: %w: no vault %s", settlement.ErrVaultMismatch, vault)
	}
	st := settlement.Status{State: settlement.Released, PaidTo: paid.paidTo.String(), Returned: paid.returned}
	if paid.refunded {
		st.State = settlement.Refunded
	}
	return st, nil
}

// historyCommitment is the commitment for history reads, which do not
// take processed.
func (l *Ledger) historyCommitment() rpc.CommitmentType {
	if l.cfg.Commitment == rpc.CommitmentProcessed {
		return rpc.CommitmentConfirmed
	}
	return l.cfg.Commitment
}

// settlement finds the payout that closed a vault among the vault's
// latest successful transactions.
func (l *Ledger) settlement(ctx context.Context, vault sol.PublicKey) (paid settled, found bool, err error) {
	var sigs []*rpc.TransactionSignature
	limit := 20
	err = l.call(ctx, "getSignaturesForAddress", func(ctx context.Context) (err error) {
		sigs, err = l.rpc.GetSignaturesForAddressWithOpts(ctx, vault, &rpc.GetSignaturesForAddressOpts{Limit: &limit, Commitment: l.historyCommitment()})
		return err
	})
	if err != nil {
		return settled{}, false, err
	}
	version := uint64(0)
	for _, s := range sigs {
		if s.Err != nil {
			continue
		}
		var res *rpc.GetTransactionResult
		err = l.call(ctx, "getTransaction", func(ctx context.Context) (err error) {
			res, err = l.rpc.GetTransaction(ctx, s.Signature, &rpc.GetTransactionOpts{
				Encoding: sol.EncodingBase64, Commitment: l.historyCommitment(), MaxSupportedTransactionVersion: &version})
			return err
		})
		if errors.Is(err, rpc.ErrNotFound) {
			continue
		}
		if err != nil {
			return settled{}, false, err
		}
		if res.Transaction == nil || (res.Meta != nil && res.Meta.Err != nil) {
			continue
		}
		tx, err := res.Transaction.GetTransaction()
		if err != nil {
			continue
		}
		if s, ok := payoutOf(&tx.Message, vault); ok {
			return s, true, nil
		}
	}
	return settled{}, false, nil
}

// tokenBalance reads a token account's amount; 0 when it does not exist.
func (l *Ledger) tokenBalance(ctx context.Context, account sol.PublicKey) (uint64, error) {
	a, err := l.account(ctx, account)
	if err != nil || a == nil {
		return 0, err
	}
	v, err := decodeTokenAccount(a)
	if err != nil {
		return 0, fmt.Errorf("token account %s: %w", account, err)
	}
	return v.amount, nil
}

// Balance reads owner's balance of mint: the amount in its associated token
// account, 0 when there is none. For the wrapped-SOL mint it is likewise the
// wrapped balance, where payouts in SOL arrive, not the owner's lamports.
func (l *Ledger) Balance(ctx context.Context, owner, mint string) (uint64, error) {
	o, err := sol.PublicKeyFromBase58(owner)
	if err != nil {
		return 0, fmt.Errorf("balance: owner %q: %w", owner, err)
	}
	m, err := sol.PublicKeyFromBase58(mint)
	if err != nil {
		return 0, fmt.Errorf("balance: mint %q: %w", mint, err)
	}
	v, err := l.tokenBalance(ctx, ata(o, m))
	if err != nil {
		return 0, fmt.Errorf("balance of %s in %s: %w", owner, mint, err)
	}
	return v, nil
}
