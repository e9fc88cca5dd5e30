// Package reputation keeps one node's scores of providers, computed from
// the signed receipts it has seen: its own and those it heard from other
// requesters. A receipt heard from another requester counts only when the
// escrow it names is confirmed on the ledger by this node, weighted by
// what the escrow held; a receipt with no escrow counts only for this
// node's own jobs, so that peers praising each other for free count for
// nothing. Weights decay with age (HalfLife); after MaxMismatches
// mismatches a provider is refused (Book.Banned).
package reputation

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
)

// Scoring and bounds.
const (
	// HalfLife halves a receipt's weight: a receipt a week old counts
	// half as much as a fresh one.
	HalfLife = 7 * 24 * time.Hour
	// MaxAge is the age past which a receipt is ignored.
	MaxAge = 90 * 24 * time.Hour
	// MaxMismatches is how many mismatches, from this node's own receipts
	// or from paid receipts it confirmed, make a provider banned: its
	// bids are refused by this node.
	MaxMismatches = 2
	// RefPaid is the escrow, in base units of its mint, that weighs as
	// much as one of this node's own receipts (1 for a mint of 6
	// decimals). The weight grows with the logarithm of the amount, up to
	// MaxWeight, so that one large escrow does not drown many honest ones.
	RefPaid = 1_000_000
	// MaxWeight bounds one receipt's weight.
	MaxWeight = 2.0
	// MaxProviders bounds the providers a book keeps from heard receipts;
	// once full, receipts heard about new providers are ignored (this
	// node's own still count).
	MaxProviders = 4096
	// MaxSeen bounds the receipts a book remembers as counted; once full,
	// the oldest are forgotten and receipts issued before them are ignored
	// from then on, so that a forgotten receipt cannot be replayed.
	MaxSeen = 1 << 16
	// mismatchPenalty is how many failures a mismatch weighs.
	mismatchPenalty = 2.0
)

// Errors for receipts that do not count.
var (
	ErrSeen        = errors.New("receipt already counted")
	ErrUnpaid      = errors.New("receipt of another requester names no escrow")
	ErrNotSigned   = errors.New("receipt is not countersigned by its provider")
	ErrNotAcked    = errors.New("receipt of a failure carries no ack of its award by the provider")
	ErrUnconfirmed = errors.New("the ledger does not confirm the receipt's escrow")
	ErrTooOld      = errors.New("receipt is too old")
	ErrFull        = errors.New("reputation book is full")
)

// Summary is what a book knows of one provider.
type Summary struct {
	// Score is the expected success rate in 0..1: 0.5 for a stranger.
	Score float64 `json:"score"`
	// Succeeded, Failed and Mismatched are the decayed weights of the
	// receipts counted, by outcome (failures by the provider's fault).
	Succeeded  float64 `json:"succeeded"`
	Failed     float64 `json:"failed"`
	Mismatched float64 `json:"mismatched"`
	// Receipts counts the receipts counted; Own this node's own jobs with
	// the provider that ended, from its tally.
	Receipts int `json:"receipts"`
	Own      int `json:"own"`
	// Paid is what the ledger confirmed the heard receipts' escrows paid
	// the provider, in base units of their mints.
	Paid uint64 `json:"paid"`
	// Mismatches counts the mismatches that count towards a ban.
	Mismatches int  `json:"mismatches"`
	Banned     bool `json:"banned"`
}

type entry struct {
	succ, fail, mism float64 // decayed to at
	at               time.Time
	receipts         int
	paid             uint64
	mismatches       int
}

// Book is one node's reputation of providers. It is safe for concurrent
// use.
type Book struct {
	escrow settlement.Escrow // nil: heard receipts never count
	now    func() time.Time

	mu        sync.Mutex
	providers map[string]*entry
	seen      map[string]time.Time // receipt key -> issued at
	floor     time.Time            // receipts issued before are ignored
}

// New returns an empty book that confirms heard receipts' escrows with
// escrow; nil counts only this node's own receipts.
func New(escrow settlement.Escrow) *Book {
	return &Book{escrow: escrow, now: time.Now, providers: map[string]*entry{}, seen: map[string]time.Time{}}
}

// Weight is what a heard receipt whose escrow held amount weighs.
func Weight(amount uint64) float64 {
	if amount == 0 {
		return 0
	}
	return math.Min(MaxWeight, math.Log1p(float64(amount))/math.Log1p(RefPaid))
}

// key names the attempt a receipt is about: one receipt per attempt
// counts, whatever its countersignature or re-signing.
func key(r market.Receipt) string { return fmt.Sprintf("%s/%d", r.JobID, r.Attempt) }

// decay returns the factor for a weight d old.
func decay(d time.Duration) float64 {
	if d <= 0 {
		return 1
	}
	return math.Exp2(-d.Hours() / HalfLife.Hours())
}

// AddOwn counts a receipt this node issued about one of its jobs: it
// needs no escrow. Only a mismatch weighs (1): this node's other outcomes
// are in its own tally, which Summarize takes. r must have been checked.
func (b *Book) AddOwn(r market.Receipt) error {
	if r.Outcome != market.OutcomeMismatch {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count(r, 1, 0, true)
}

// Add counts a signed receipt heard from another requester, on the
// receipts topic or from an indexer. It counts only when its signatures
// verify, it was not counted before, and the ledger confirms its escrow:
// settled as the receipt says, a release paid to the escrow's provider
// account. A success must be countersigned by its provider, which
// vouches for the escrow; a failure or mismatch, which its provider does
// not sign, must carry the provider's signed ack of the award naming the
// escrow's vault: a requester blames a provider only for a job the
// provider took, with an escrow the provider checked was locked. It
// returns why a receipt does not count.
func (b *Book) Add(ctx context.Context, sr market.SignedReceipt, self string) error {
	r, counter, err := sr.Open()
	if err != nil {
		return fmt.Errorf("open receipt: %w", err)
	}
	if r.Requester == self {
		return b.AddOwn(r)
	}
	now := b.now()
	if now.Sub(r.IssuedAt) > MaxAge {
		return ErrTooOld
	}
	e := r.Escrow
	switch {
	case e == nil || b.escrow == nil:
		return ErrUnpaid
	case r.Outcome == market.OutcomeCancelled || r.Outcome == market.OutcomeFailed && r.Fault == market.FaultRequester:
		return nil // says nothing of the provider
	case r.Outcome == market.OutcomeSucceeded && !counter:
		return ErrNotSigned
	case r.Outcome != market.OutcomeSucceeded && sr.Ack == nil:
		return ErrNotAcked
	}
	b.mu.Lock()
	if _, dup := b.seen[key(r)]; dup || r.IssuedAt.Before(b.floor) {
		b.mu.Unlock()
		return ErrSeen
	}
	if b.providers[r.Provider] == nil && len(b.providers) >= MaxProviders {
		b.mu.Unlock()
		return ErrFull // before asking the ledger
	}
	b.mu.Unlock()
	paid, err := b.confirm(ctx, *e)
	if err != nil {
		return err
	}
	// A success weighs what it paid the provider; a failure or mismatch
	// what its requester locked for the job.
	w := Weight(e.Terms.Amount)
	if r.Outcome == market.OutcomeSucceeded {
		if paid == 0 {
			return fmt.Errorf("%w: a success whose escrow paid the provider nothing", ErrUnconfirmed)
		}
		w = Weight(paid)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count(r, w, paid, false)
}

// confirm asks the ledger about a receipt's escrow; it returns what the
// escrow paid its provider.
func (b *Book) confirm(ctx context.Context, e market.ReceiptEscrow) (uint64, error) {
	if d, ok := b.escrow.(settlement.RefDeriver); ok {
		ref, err := d.DeriveRef(e.Terms)
		if err != nil || ref.Vault != e.Vault || ref.Multisig != e.Multisig {
			return 0, fmt.Errorf("%w: the vault is not the one its terms lock into", ErrUnconfirmed)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := b.escrow.Status(ctx, settlement.Ref{Multisig: e.Multisig, Vault: e.Vault})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnconfirmed, err)
	}
	switch {
	case string(st.State) != e.State:
		return 0, fmt.Errorf("%w: the receipt says %s, the ledger %s", ErrUnconfirmed, e.State, st.State)
	case st.State == settlement.Released && st.PaidTo != e.Terms.Provider:
		return 0, fmt.Errorf("%w: released to %s, not the provider's %s", ErrUnconfirmed, st.PaidTo, e.Terms.Provider)
	case st.State == settlement.Refunded && st.PaidTo != "" && st.PaidTo != e.Terms.Requester:
		return 0, fmt.Errorf("%w: refunded to %s, not the requester's %s", ErrUnconfirmed, st.PaidTo, e.Terms.Requester)
	case st.State == settlement.Released:
		return e.Terms.Amount - min(st.Returned, e.Terms.Amount), nil
	}
	return 0, nil
}

// entry returns the provider's entry, making one for this node's own
// receipt, or for a heard one when the book has room: receipts heard
// about many providers do not crowd out what this node saw itself.
func (b *Book) entry(provider string, own bool) *entry {
	e := b.providers[provider]
	if e == nil && (own || len(b.providers) < MaxProviders) {
		e = &entry{at: b.now()}
		b.providers[provider] = e
	}
	return e
}

// count adds a receipt of weight w; b.mu is held.
func (b *Book) count(r market.Receipt, w float64, paid uint64, own bool) error {
	k := key(r)
	if _, dup := b.seen[k]; dup || !own && r.IssuedAt.Before(b.floor) {
		return ErrSeen
	}
	e := b.entry(r.Provider, own)
	if e == nil {
		return ErrFull
	}
	b.remember(k, r.IssuedAt)
	now := b.now()
	f := decay(now.Sub(e.at))
	e.succ, e.fail, e.mism, e.at = e.succ*f, e.fail*f, e.mism*f, now
	w *= decay(now.Sub(r.EndedAt))
	switch {
	case r.Outcome == market.OutcomeSucceeded:
		e.succ += w
	case r.Outcome == market.OutcomeMismatch:
		e.mism += w
		e.mismatches++
	case r.Fault == market.FaultProvider:
		e.fail += w
	default:
		return nil // cancelled, or the job's own failure: not the provider's
	}
	e.receipts++
	e.paid += paid
	return nil
}

// remember marks a receipt counted, forgetting the oldest when full.
func (b *Book) remember(k string, issued time.Time) {
	if len(b.seen) >= MaxSeen {
		oldest, at := "", time.Time{}
		for s, t := range b.seen {
			if oldest == "" || t.Before(at) {
				oldest, at = s, t
			}
		}
		delete(b.seen, oldest)
		if at.After(b.floor) {
			b.floor = at
		}
	}
	b.seen[k] = issued
}

// Summarize returns what the book knows of a provider, with own, this
// node's tally of its jobs with it (each weighing 1, not decayed). The
// score is the expected success rate under a uniform prior:
// (1+S)/(2+S+F+2M), S, F and M the weights of successes, failures by the
// provider's fault and mismatches.
func (b *Book) Summarize(provider string, own market.Outcomes) Summary {
	b.mu.Lock()
	var s Summary
	if e := b.providers[provider]; e != nil {
		f := decay(b.now().Sub(e.at))
		s = Summary{Succeeded: e.succ * f, Failed: e.fail * f, Mismatched: e.mism * f,
			Receipts: e.receipts, Paid: e.paid, Mismatches: e.mismatches}
	}
	b.mu.Unlock()
	s.Succeeded += float64(own.Succeeded)
	s.Failed += float64(own.Failed)
	s.Own = own.Succeeded + own.Failed
	s.Banned = s.Mismatches >= MaxMismatches
	s.Score = (1 + s.Succeeded) / (2 + s.Succeeded + s.Failed + mismatchPenalty*s.Mismatched)
	return s
}
