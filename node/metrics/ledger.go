package metrics

import (
	"context"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
)

// Ledger operations, the values of the op label.
const (
	opLock          = "lock"
	opVerify        = "verify"
	opPropose       = "propose"
	opCoSign        = "cosign"
	opStatus        = "status"
	opBalance       = "balance"
	opNativeBalance = "native_balance"
	opLedgerTime    = "ledger_time"
)

// fullLedger is what the Solana ledger (and the in-memory one) offer.
type fullLedger interface {
	settlement.Escrow
	settlement.LedgerClock
	settlement.NativeBalancer
	settlement.RefDeriver
}

// Ledger returns e with its calls and their errors counted. An escrow
// that lacks one of the optional interfaces (settlement.LedgerClock,
// NativeBalancer, RefDeriver) is returned as it is, uncounted, so that
// what callers find by type assertion does not change.
func (m *Metrics) Ledger(e settlement.Escrow) settlement.Escrow {
	full, ok := e.(fullLedger)
	if !ok {
		return e
	}
	for _, op := range []string{opLock, opVerify, opPropose, opCoSign, opStatus, opBalance, opNativeBalance, opLedgerTime} {
		m.ledgerCalls.WithLabelValues(op)
		m.ledgerErrors.WithLabelValues(op)
	}
	return &countedLedger{inner: full, m: m}
}

// countedLedger counts the calls of a ledger account.
type countedLedger struct {
	inner fullLedger
	m     *Metrics
}

func (l *countedLedger) count(op string, err error) {
	l.m.ledgerCalls.WithLabelValues(op).Inc()
	if err != nil {
		l.m.ledgerErrors.WithLabelValues(op).Inc()
	}
}

// Address returns the account's address; it calls no ledger.
func (l *countedLedger) Address() string { return l.inner.Address() }

// Lock locks an escrow, counted.
func (l *countedLedger) Lock(ctx context.Context, t settlement.Terms) (settlement.Ref, error) {
	r, err := l.inner.Lock(ctx, t)
	l.count(opLock, err)
	return r, err
}

// Verify checks a vault, counted.
func (l *countedLedger) Verify(ctx context.Context, ref settlement.Ref, t settlement.Terms) error {
	err := l.inner.Verify(ctx, ref, t)
	l.count(opVerify, err)
	return err
}

// Propose builds and signs a payout, counted.
func (l *countedLedger) Propose(ctx context.Context, ref settlement.Ref, t settlement.Terms, kind settlement.PayoutKind) (settlement.Payout, error) {
	p, err := l.inner.Propose(ctx, ref, t, kind)
	l.count(opPropose, err)
	return p, err
}

// ProposeSplit builds and signs a split payout, counted as a propose.
func (l *countedLedger) ProposeSplit(ctx context.Context, ref settlement.Ref, t settlement.Terms, kind settlement.PayoutKind, amount uint64) (settlement.Payout, error) {
	p, err := l.inner.ProposeSplit(ctx, ref, t, kind, amount)
	l.count(opPropose, err)
	return p, err
}

// CoSign signs and submits a payout, counted.
func (l *countedLedger) CoSign(ctx context.Context, p settlement.Payout, t settlement.Terms) (string, error) {
	tx, err := l.inner.CoSign(ctx, p, t)
	l.count(opCoSign, err)
	return tx, err
}

// Status reads an escrow's state, counted.
func (l *countedLedger) Status(ctx context.Context, ref settlement.Ref) (settlement.Status, error) {
	st, err := l.inner.Status(ctx, ref)
	l.count(opStatus, err)
	return st, err
}

// Balance reads a token balance, counted.
func (l *countedLedger) Balance(ctx context.Context, owner, mint string) (uint64, error) {
	n, err := l.inner.Balance(ctx, owner, mint)
	l.count(opBalance, err)
	return n, err
}

// NativeBalance reads a native balance, counted.
func (l *countedLedger) NativeBalance(ctx context.Context, owner string) (uint64, error) {
	n, err := l.inner.NativeBalance(ctx, owner)
	l.count(opNativeBalance, err)
	return n, err
}

// LedgerTime reads the ledger's clock, counted.
func (l *countedLedger) LedgerTime(ctx context.Context) (time.Time, error) {
	t, err := l.inner.LedgerTime(ctx)
	l.count(opLedgerTime, err)
	return t, err
}

// DeriveRef computes a vault's address; it calls no ledger.
func (l *countedLedger) DeriveRef(t settlement.Terms) (settlement.Ref, error) {
	return l.inner.DeriveRef(t)
}
