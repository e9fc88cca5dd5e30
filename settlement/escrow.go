package settlement

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors every implementation returns for the same faults.
var (
	ErrInvalidTerms  = errors.New("invalid escrow terms")
	ErrVaultMismatch = errors.New("vault does not match the terms")
	ErrTampered      = errors.New("payout does not match the terms")
	ErrNotMember     = errors.New("not a member of the escrow")
	ErrTooEarly      = errors.New("the deadline has not passed")
	ErrClosed        = errors.New("escrow already settled")
	ErrSignatures    = errors.New("payout lacks the signatures it needs")
	ErrFunds         = errors.New("insufficient funds")
)

// Terms are what requester and provider agreed for one job.
type Terms struct {
	// JobID names the escrow on the ledger: the job and its attempt.
	JobID     string `json:"id"`
	Requester string `json:"requester"` // account addresses
	Provider  string `json:"provider"`
	Arbiter   string `json:"arbiter"`
	Mint      string `json:"mint"`
	Amount    uint64 `json:"amount"` // base units of Mint
	// Deadline: after it the requester may be refunded with the arbiter.
	Deadline time.Time `json:"deadline"`
}

// Validate checks the terms' form.
func (t Terms) Validate() error {
	switch {
	case t.JobID == "":
		return fmt.Errorf("%w: no job id", ErrInvalidTerms)
	case t.Requester == "" || t.Provider == "" || t.Arbiter == "":
		return fmt.Errorf("%w: requester, provider and arbiter are required", ErrInvalidTerms)
	case t.Requester == t.Provider || t.Requester == t.Arbiter || t.Provider == t.Arbiter:
		return fmt.Errorf("%w: requester, provider and arbiter must differ", ErrInvalidTerms)
	case t.Mint == "":
		return fmt.Errorf("%w: no mint", ErrInvalidTerms)
	case t.Amount == 0:
		return fmt.Errorf("%w: amount is zero", ErrInvalidTerms)
	case t.Deadline.IsZero():
		return fmt.Errorf("%w: no deadline", ErrInvalidTerms)
	}
	return nil
}

// Ref locates a job's escrow; an award carries it.
type Ref struct {
	Multisig string `json:"multisig"`
	Vault    string `json:"vault"`
}

// PayoutKind says who a payout pays and who must sign it.
type PayoutKind string

// Payout kinds.
const (
	// Release pays the provider: provider proposes, requester co-signs.
	Release PayoutKind = "release"
	// Refund pays the requester back after the deadline: requester
	// proposes, arbiter co-signs only once the ledger's clock is past it.
	Refund PayoutKind = "refund"
	// AwardProvider and AwardRequester settle a dispute: the arbiter
	// proposes, the winning party co-signs.
	AwardProvider  PayoutKind = "dispute-provider"
	AwardRequester PayoutKind = "dispute-requester"
	// Split pays the provider an exact amount, Payout.Amount, and the rest
	// of the vault back to the requester, in one transaction: the provider
	// proposes, the requester co-signs. It pays a serve job's hosting for
	// the time served.
	Split PayoutKind = "split"
	// ArbiterSplit is a Split that the arbiter co-signs instead of the
	// requester. The arbiter co-signs one only for an amount that a
	// voucher signed by the caller covers; that check is the arbiter's
	// node's, above the ledger, which checks only what Split's co-signer
	// checks.
	ArbiterSplit PayoutKind = "split-arbiter"
)

// IsSplit reports whether payouts of this kind pay Payout.Amount to the
// provider and the rest of the vault to the requester (Split and
// ArbiterSplit), rather than the whole vault to one party.
func (k PayoutKind) IsSplit() bool { return k == Split || k == ArbiterSplit }

// Role is one of the three members of an escrow.
type Role int

// Roles.
const (
	RoleRequester Role = iota
	RoleProvider
	RoleArbiter
)

// Party returns the account of a role in the terms.
func (t Terms) Party(r Role) string {
	switch r {
	case RoleRequester:
		return t.Requester
	case RoleProvider:
		return t.Provider
	}
	return t.Arbiter
}

// Roles returns who proposes a payout of this kind, who co-signs it, and
// who it pays (always one of the two signers; for the split kinds, the
// provider, who is paid Payout.Amount while the rest of the vault goes
// back to the requester). Every implementation follows this table.
func (k PayoutKind) Roles() (proposer, cosigner, payee Role, err error) {
	switch k {
	case Release:
		return RoleProvider, RoleRequester, RoleProvider, nil
	case Refund:
		return RoleRequester, RoleArbiter, RoleRequester, nil
	case AwardProvider:
		return RoleArbiter, RoleProvider, RoleProvider, nil
	case AwardRequester:
		return RoleArbiter, RoleRequester, RoleRequester, nil
	case Split:
		return RoleProvider, RoleRequester, RoleProvider, nil
	case ArbiterSplit:
		return RoleProvider, RoleArbiter, RoleProvider, nil
	}
	return 0, 0, 0, fmt.Errorf("unknown payout kind %q", k)
}

// Recipient returns who a payout of this kind pays.
func (k PayoutKind) Recipient(t Terms) (string, error) {
	_, _, payee, err := k.Roles()
	if err != nil {
		return "", err
	}
	return t.Party(payee), nil
}

// Payout is a transfer out of a vault, partly signed: the proposer signs
// it and sends it to the co-signer over the network, who checks it against
// the terms before signing and submitting it.
type Payout struct {
	Kind PayoutKind
	Ref  Ref
	// Amount is, for the split kinds, what the provider is paid, in base
	// units of the terms' mint: more than 0 and at most the terms' amount.
	// The rest of the vault goes back to the requester. Other kinds ignore
	// it: they pay everything in the vault.
	Amount uint64
	// Tx is the implementation's encoded, partly signed transaction.
	Tx []byte
}

// CheckSplit checks the amount of a split payout of an escrow on terms t:
// more than 0 and at most t.Amount. It returns an error wrapping
// ErrInvalidTerms otherwise.
func CheckSplit(t Terms, amount uint64) error {
	switch {
	case amount == 0:
		return fmt.Errorf("%w: a split of 0 (pay nothing with a refund)", ErrInvalidTerms)
	case amount > t.Amount:
		return fmt.Errorf("%w: a split of %d, more than the escrow's %d", ErrInvalidTerms, amount, t.Amount)
	}
	return nil
}

// State is where an escrow stands.
type State string

// Escrow states.
const (
	Locked   State = "locked"
	Released State = "released"
	Refunded State = "refunded"
)

// Status is an escrow's state on the ledger.
type Status struct {
	State State
	// Amount still in the vault.
	Amount uint64
	// PaidTo is the account paid when the escrow settled. A split
	// settles Released, paid to the provider.
	PaidTo string
	// Returned is, for an escrow settled by a split, what the split paid
	// back to the requester (the vault less what the provider got); 0
	// for every other payout, and for a split of the whole vault.
	Returned uint64
}

// Escrow is one party's view of the ledger: every method acts with that
// party's key.
type Escrow interface {
	// Address returns this party's account address.
	Address() string
	// Lock moves the terms' amount from this party (the requester) into a
	// new vault held by the 2-of-3 multisig of the three parties.
	Lock(ctx context.Context, t Terms) (Ref, error)
	// Verify checks on the ledger that the vault holds the terms: members,
	// threshold, mint, amount. A provider calls it before it starts.
	Verify(ctx context.Context, ref Ref, t Terms) error
	// Propose builds a payout of the whole vault and signs it with this
	// party's key. The split kinds take an amount: ProposeSplit.
	Propose(ctx context.Context, ref Ref, t Terms, kind PayoutKind) (Payout, error)
	// ProposeSplit builds a payout of kind Split or ArbiterSplit that pays
	// amount to the provider and the rest of the vault to the requester,
	// then closes the vault, as one transaction, and signs it with this
	// party's key (the provider's). The amount is more than 0 and at most
	// the terms' amount (else ErrInvalidTerms).
	ProposeSplit(ctx context.Context, ref Ref, t Terms, kind PayoutKind, amount uint64) (Payout, error)
	// CoSign checks a proposed payout against the terms, refusing any
	// difference, signs it and submits it. It returns the transaction ID.
	// A split must pay exactly p.Amount to the provider and the rest of
	// the vault to the requester: a transaction that pays otherwise is
	// refused with ErrTampered, an amount of 0 or over the terms' amount
	// with ErrInvalidTerms.
	CoSign(ctx context.Context, p Payout, t Terms) (string, error)
	// Status reads an escrow's state.
	Status(ctx context.Context, ref Ref) (Status, error)
	// Balance reads an account's balance of a mint.
	Balance(ctx context.Context, owner, mint string) (uint64, error)
}

// LedgerClock is implemented by escrows that can read the ledger's clock,
// which is the clock refund deadlines are judged by.
type LedgerClock interface {
	// LedgerTime returns the ledger's current time.
	LedgerTime(ctx context.Context) (time.Time, error)
}

// NativeBalancer is implemented by escrows whose ledger has a native coin
// that pays fees (SOL on Solana, in lamports).
type NativeBalancer interface {
	NativeBalance(ctx context.Context, owner string) (uint64, error)
}

// RefDeriver is implemented by escrows whose vault address follows from the
// terms alone, so that a lock whose outcome was lost (a crash, a timeout)
// can be looked up on the ledger.
type RefDeriver interface {
	DeriveRef(t Terms) (Ref, error)
}
