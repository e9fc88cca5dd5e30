package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Settlement connects the engine to a ledger, so that priced jobs are paid
// through a 2-of-3 escrow per award: the requester locks the price before
// it awards, the provider checks the vault before it acks and proposes the
// release with its result, the requester co-signs the release once it has
// the outputs, and a job that fails is refunded with the arbiter after the
// escrow's deadline.
type Settlement struct {
	// Escrow acts with this node's ledger account.
	Escrow settlement.Escrow
	// Mint is the token escrows pay in: the node's market mint.
	Mint string
	// Arbiter is the node that co-signs refunds of this node's escrows;
	// without one this node awards no priced job in Mint.
	Arbiter peer.ID
	// Serve makes this node an arbiter: it answers wire.ArbiterProtocol.
	Serve bool
	// Every is how often escrows still open are looked at (default 2 s).
	Every time.Duration
	// Margin is added to an award's deadline for its escrow's (default 1 min).
	Margin time.Duration
	// Sign signs with this node's ledger key (Ed25519, whose public key is
	// its ledger address): a dispute proves its side with it.
	Sign func(msg []byte) []byte
}

// settler is the escrow flow of the engine: the requester's locks and
// their records, the provider's checks and release proposals, the loop
// that settles escrows still open, the arbiter protocol and disputes.
type settler struct {
	*core

	mu          sync.Mutex
	arbiterAddr string          // the arbiter's ledger account, once known
	kick        chan struct{}   // wakes the settlement loop
	lockingJobs map[string]int  // requester jobs with a lock in flight
	escrowJobs  map[string]bool // requester jobs with an escrow to settle
}

func newSettler(c *core) *settler {
	return &settler{core: c, kick: make(chan struct{}, 1), lockingJobs: map[string]int{}, escrowJobs: map[string]bool{}}
}

// EscrowState is where an escrow record stands.
type EscrowState string

// Escrow states of a requester's escrow record.
const (
	EscrowLocking  EscrowState = "locking"  // recorded before the lock was sent
	EscrowLocked   EscrowState = "locked"   // the vault holds the price
	EscrowReleased EscrowState = "released" // paid to the provider
	EscrowRefunded EscrowState = "refunded" // paid back to the requester
	EscrowFailed   EscrowState = "failed"   // the lock failed: nothing was locked
)

// EscrowRecord is one escrow of a job: one per award.
type EscrowRecord struct {
	Attempt      int                `json:"attempt"`
	ProviderPeer string             `json:"provider_peer"`
	Terms        market.EscrowTerms `json:"terms"`
	State        EscrowState        `json:"state"`
	// Tx is the settling transaction.
	Tx string `json:"tx,omitempty"`
	// Paid is, for an escrow released by a split (a serve job stopped
	// early, paid for the time served), what the provider got; the rest
	// of the terms' amount went back to the requester. 0 for a release of
	// the whole vault.
	Paid uint64 `json:"paid,omitempty"`
	// Disputed: the arbiter decides this escrow; it is no longer released
	// or refunded automatically, only watched until it closes.
	Disputed bool `json:"disputed,omitempty"`
	// Error is the last settlement failure, retried until it settles.
	Error     string    `json:"error,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// settles reports whether this node pays the job through an escrow.
func (pay *settler) settles(j *Job) bool {
	s := pay.p.Settlement
	return s != nil && j.Spec.Price != nil && j.Spec.Price.Mint == s.Mint && s.Arbiter != ""
}

// errLockFailed: an escrow could not be locked; the award is not sent.
var errLockFailed = errors.New("escrow not locked")

// lockEscrow locks the bid's price in a new vault for the award, recording
// the escrow in the job before and after, so that no lock is lost.
func (pay *settler) lockEscrow(ctx context.Context, j *Job, bid market.Bid, deadline time.Time) (*market.EscrowTerms, error) {
	s := pay.p.Settlement
	if bid.Payee == "" {
		return nil, fmt.Errorf("%w: the bid names no payee", errLockFailed)
	}
	arbiter, err := pay.arbiterAddress(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: arbiter: %w", errLockFailed, err)
	}
	t := market.EscrowTerms{Terms: settlement.Terms{Requester: s.Escrow.Address(), Provider: bid.Payee, Arbiter: arbiter,
		Mint: s.Mint, Amount: bid.Price, Deadline: deadline.Add(pay.margin()).Truncate(time.Second)},
		ArbiterPeer: s.Arbiter.String()}
	pay.mu.Lock()
	pay.lockingJobs[j.ID]++
	pay.mu.Unlock()
	defer func() {
		pay.mu.Lock()
		if pay.lockingJobs[j.ID]--; pay.lockingJobs[j.ID] <= 0 {
			delete(pay.lockingJobs, j.ID)
		}
		pay.mu.Unlock()
	}()
	if _, err := pay.update(j.ID, func(j *Job) error {
		// Every escrow of a job gets its own ID: one per award, in order.
		t.JobID = fmt.Sprintf("%s/%d", j.ID, len(j.Escrows)+1)
		j.Escrows = append(j.Escrows, EscrowRecord{Attempt: j.Attempt, ProviderPeer: bid.Provider, Terms: t,
			State: EscrowLocking, UpdatedAt: time.Now().UTC()})
		return nil
	}); err != nil {
		return nil, err
	}
	// After the record is stored: settleAll drops a job from the set only
	// when, under pay.mu, its stored record has nothing open.
	pay.mu.Lock()
	pay.escrowJobs[j.ID] = true
	pay.mu.Unlock()
	r, err := s.Escrow.Lock(ctx, t.Terms)
	pay.update(j.ID, func(j *Job) error {
		i := slices.IndexFunc(j.Escrows, func(r EscrowRecord) bool { return r.Terms.JobID == t.JobID })
		if i < 0 {
			return nil
		}
		x := &j.Escrows[i]
		x.UpdatedAt = time.Now().UTC()
		switch {
		case errors.Is(err, settlement.ErrFunds) || errors.Is(err, settlement.ErrInvalidTerms):
			x.State, x.Error = EscrowFailed, err.Error()
		case err != nil:
			// The lock may still land (a lost confirmation): the record
			// stays locking, and the settlement loop looks it up.
			x.Error = err.Error()
		default:
			x.State, x.Terms.Multisig, x.Terms.Vault = EscrowLocked, r.Multisig, r.Vault
		}
		return nil
	})

	if err != nil {
		return nil, fmt.Errorf("%w: %w", errLockFailed, err)
	}
	t.Multisig, t.Vault = r.Multisig, r.Vault
	pay.log.Info("escrow locked", "job", j.ID, "amount", t.Amount, "mint", t.Mint, "vault", t.Vault)
	return &t, nil
}

func (pay *settler) margin() time.Duration {
	if m := pay.p.Settlement.Margin; m > 0 {
		return m
	}
	return time.Minute
}

// arbiterAddress asks the arbiter node for its ledger account, once.
func (pay *settler) arbiterAddress(ctx context.Context) (string, error) {
	pay.mu.Lock()
	addr := pay.arbiterAddr
	pay.mu.Unlock()
	if addr != "" {
		return addr, nil
	}
	var res arbiterResponse
	if err := pay.askArbiter(ctx, arbiterRequest{Op: opAddress}, &res); err != nil {
		return "", err
	}
	if err := res.Err(); err != nil {
		return "", fmt.Errorf("arbiter: %w", err)
	}
	if res.Address == "" {
		return "", errors.New("the arbiter named no address")
	}
	pay.mu.Lock()
	pay.arbiterAddr = res.Address
	pay.mu.Unlock()
	return res.Address, nil
}

// verifyEscrow is the provider's check of an award's escrow, on the
// ledger, before it acks: the vault must hold the price for this provider.
// Its error is the reason the ack gives.
func (pay *settler) verifyEscrow(award market.Award) error {
	s := pay.p.Settlement
	priced := award.Spec.Price != nil && award.Price > 0
	switch {
	case award.Escrow == nil && priced && s != nil && award.Spec.Price.Mint == s.Mint:
		return errors.New("this provider is paid through an escrow, and the award has none")
	case award.Escrow == nil:
		return nil
	case s == nil:
		return errors.New("this provider settles no escrows")
	case award.Escrow.Provider != s.Escrow.Address():
		return fmt.Errorf("the escrow pays %s, not this provider", award.Escrow.Provider)
	case award.Escrow.Mint != s.Mint:
		return fmt.Errorf("the escrow is in mint %s, this provider is paid in %s", award.Escrow.Mint, s.Mint)
	case !strings.HasPrefix(award.Escrow.JobID, award.JobID+"/"):
		return errors.New("the escrow is for another job")
	case s.Arbiter == "":
		return errors.New("this provider names no arbiter it trusts (settlement.arbiter)")
	case award.Escrow.ArbiterPeer != s.Arbiter.String():
		// A requester that chose the arbiter could hold two of the three keys.
		return errors.New("the escrow's arbiter is not the one this provider trusts")
	}
	ctx, cancel := context.WithTimeout(pay.ctx, pay.cfg.AckTimeout*3/4)
	defer cancel()
	if addr, err := pay.arbiterAddress(ctx); err != nil {
		return fmt.Errorf("cannot reach the trusted arbiter: %w", err)
	} else if addr != award.Escrow.Arbiter {
		return errors.New("the escrow's arbiter account is not the trusted arbiter's")
	}
	if err := s.Escrow.Verify(ctx, award.Escrow.Ref, award.Escrow.Terms); err != nil {
		return fmt.Errorf("escrow: %w", err)
	}
	return nil
}

// proposeRelease signs the provider's half of the release of a finished
// job's escrow, for the result.
func (pay *settler) proposeRelease(ctx context.Context, j *Job) []byte {
	s := pay.p.Settlement
	if s == nil || len(j.Escrows) == 0 {
		return nil
	}
	t := j.Escrows[0].Terms
	po, err := s.Escrow.Propose(ctx, t.Ref, t.Terms, settlement.Release)
	if err != nil {
		pay.log.Warn("release not proposed", "job", j.ID, "error", err)
		return nil
	}
	return po.Tx
}
