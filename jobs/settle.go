package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/libp2p/go-libp2p/core/network"
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

// Escrow states of a requester's escrow record.
const (
	EscrowLocking  = "locking"  // recorded before the lock was sent
	EscrowLocked   = "locked"   // the vault holds the price
	EscrowReleased = "released" // paid to the provider
	EscrowRefunded = "refunded" // paid back to the requester
	EscrowNone     = "failed"   // the lock failed: nothing was locked
)

// EscrowRecord is one escrow of a job: one per award.
type EscrowRecord struct {
	Attempt      int                `json:"attempt"`
	ProviderPeer string             `json:"provider_peer"`
	Terms        market.EscrowTerms `json:"terms"`
	State        string             `json:"state"`
	// Tx is the settling transaction.
	Tx string `json:"tx,omitempty"`
	// Disputed: the arbiter decides this escrow; it is no longer released
	// or refunded automatically, only watched until it closes.
	Disputed bool `json:"disputed,omitempty"`
	// Error is the last settlement failure, retried until it settles.
	Error     string    `json:"error,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

func terms(t market.EscrowTerms) settlement.Terms {
	return settlement.Terms{JobID: t.ID, Requester: t.Requester, Provider: t.Provider, Arbiter: t.Arbiter,
		Mint: t.Mint, Amount: t.Amount, Deadline: t.Deadline}
}

func ref(t market.EscrowTerms) settlement.Ref {
	return settlement.Ref{Multisig: t.Multisig, Vault: t.Vault}
}

// settles reports whether this node pays the job through an escrow.
func (pay *settler) settles(j *Job) bool {
	s := pay.p.Settlement
	return s != nil && j.Spec.Price != nil && j.Spec.Price.Mint == s.Mint && s.Arbiter != ""
}

// errNoEscrow: an escrow could not be locked; the award is not sent.
var errNoEscrow = errors.New("escrow not locked")

// lockEscrow locks the bid's price in a new vault for the award, recording
// the escrow in the job before and after, so that no lock is lost.
func (pay *settler) lockEscrow(ctx context.Context, j *Job, bid market.Bid, deadline time.Time) (*market.EscrowTerms, error) {
	s := pay.p.Settlement
	if bid.Payee == "" {
		return nil, fmt.Errorf("%w: the bid names no payee", errNoEscrow)
	}
	arbiter, err := pay.arbiterAddress(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: arbiter: %v", errNoEscrow, err)
	}
	t := market.EscrowTerms{Requester: s.Escrow.Address(), Provider: bid.Payee, Arbiter: arbiter,
		ArbiterPeer: s.Arbiter.String(), Mint: s.Mint, Amount: bid.Price, Deadline: deadline.Add(pay.margin()).Truncate(time.Second)}
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
		t.ID = fmt.Sprintf("%s/%d", j.ID, len(j.Escrows)+1)
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
	r, err := s.Escrow.Lock(ctx, terms(t))
	pay.update(j.ID, func(j *Job) error {
		i := slices.IndexFunc(j.Escrows, func(r EscrowRecord) bool { return r.Terms.ID == t.ID })
		if i < 0 {
			return nil
		}
		x := &j.Escrows[i]
		x.UpdatedAt = time.Now().UTC()
		switch {
		case errors.Is(err, settlement.ErrFunds) || errors.Is(err, settlement.ErrInvalidTerms):
			x.State, x.Error = EscrowNone, err.Error()
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
		return nil, fmt.Errorf("%w: %w", errNoEscrow, err)
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

// kickSettle asks the settlement loop to look at the escrows now.
func (pay *settler) kickSettle() {
	select {
	case pay.kick <- struct{}{}:
	default:
	}
}

// settleLoop settles the requester's open escrows: it releases the ones
// whose job succeeded and refunds the others once their deadline passed.
// Failures are recorded and retried; a restart picks up where it stopped.
func (pay *settler) settleLoop() {
	every := pay.p.Settlement.Every
	if every <= 0 {
		every = 2 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	// Once, the jobs with open escrows; from then on the set is kept as
	// escrows are locked and settled, so that a pass reads only those.
	if jobs, err := pay.store.list(RoleRequester); err == nil {
		pay.mu.Lock()
		for _, j := range jobs {
			if hasOpenEscrow(j) {
				pay.escrowJobs[j.ID] = true
			}
		}
		pay.mu.Unlock()
	}
	for {
		pay.settleAll()
		select {
		case <-pay.ctx.Done():
			return
		case <-tick.C:
		case <-pay.kick:
		}
	}
}

func (pay *settler) settleAll() {
	pay.mu.Lock()
	ids := slices.Collect(maps.Keys(pay.escrowJobs))
	pay.mu.Unlock()
	// The ledger's clock, read at most once a pass.
	var now time.Time
	clock := func() time.Time {
		if now.IsZero() {
			now = pay.ledgerTime()
		}
		return now
	}
	for _, id := range ids {
		j, err := pay.Get(id)
		if err != nil {
			continue
		}
		for i, rec := range j.Escrows {
			if rec.State == EscrowLocked || rec.State == EscrowLocking {
				pay.settleOne(j, i, clock)
			}
		}
		pay.mu.Lock()
		if j, err := pay.Get(id); err == nil && !hasOpenEscrow(j) {
			delete(pay.escrowJobs, id)
		}
		pay.mu.Unlock()
	}
}

// hasOpenEscrow reports whether a job has an escrow still to settle.
func hasOpenEscrow(j *Job) bool {
	return slices.ContainsFunc(j.Escrows, func(r EscrowRecord) bool {
		return r.State == EscrowLocked || r.State == EscrowLocking
	})
}

// settleOne moves escrow i of job j on when it can; clock is the ledger's.
func (pay *settler) settleOne(j *Job, i int, clock func() time.Time) {
	rec := j.Escrows[i]
	if rec.State == EscrowLocking {
		pay.findLock(j, i)
		return
	}
	current := rec.Attempt == j.Attempt && rec.ProviderPeer == j.Provider
	ctx, cancel := context.WithTimeout(pay.ctx, 30*time.Second)
	defer cancel()
	s := pay.p.Settlement
	switch {
	case rec.Disputed:
		pay.settledElsewhere(j, i)
	case current && j.State == market.StateSucceeded:
		r := j.Result
		if r == nil || len(r.Payout) == 0 {
			pay.refundLater(j, i, "the provider sent no payout", clock)
			return
		}
		tx, err := s.Escrow.CoSign(ctx, settlement.Payout{Kind: settlement.Release, Ref: ref(rec.Terms), Tx: r.Payout}, terms(rec.Terms))
		if errors.Is(err, settlement.ErrTampered) || errors.Is(err, settlement.ErrSignatures) || errors.Is(err, settlement.ErrNotMember) {
			pay.log.Warn("payout refused", "job", j.ID, "provider", j.Provider, "error", err)
			pay.refundLater(j, i, "payout refused: "+err.Error(), clock)
			return
		}
		if errors.Is(err, settlement.ErrClosed) {
			// Landed already (a lost confirmation), or decided by the arbiter.
			if tx != "" {
				pay.setEscrow(j.ID, i, EscrowReleased, tx, "")
			} else if !pay.settledElsewhere(j, i) {
				pay.setEscrow(j.ID, i, EscrowLocked, "", "release: "+err.Error())
			}
			return
		}
		if err != nil {
			pay.setEscrow(j.ID, i, EscrowLocked, "", "release: "+err.Error())
			return
		}
		pay.setEscrow(j.ID, i, EscrowReleased, tx, "")
		pay.log.Info("escrow released", "job", j.ID, "provider", j.Provider, "amount", rec.Terms.Amount, "tx", tx)
		pay.notify(j, fmt.Sprintf("escrow released: %d to the provider", rec.Terms.Amount))
	case current && !j.State.Final():
		// The job is still running on this award.
	default:
		pay.refundLater(j, i, "", clock)
	}
}

// refundLater refunds escrow i once its deadline has passed.
func (pay *settler) refundLater(j *Job, i int, why string, clock func() time.Time) {
	rec := j.Escrows[i]
	if pay.settledElsewhere(j, i) {
		return
	}
	if clock().Before(rec.Terms.Deadline) {
		if why != "" && rec.Error != why {
			pay.setEscrow(j.ID, i, EscrowLocked, "", why)
		}
		return
	}
	ctx, cancel := context.WithTimeout(pay.ctx, 30*time.Second)
	defer cancel()
	s := pay.p.Settlement
	po, err := s.Escrow.Propose(ctx, ref(rec.Terms), terms(rec.Terms), settlement.Refund)
	if errors.Is(err, settlement.ErrClosed) {
		pay.settledElsewhere(j, i)
		return
	}
	if err != nil {
		pay.setEscrow(j.ID, i, EscrowLocked, "", "refund: "+err.Error())
		return
	}
	var res arbiterResponse
	err = pay.askArbiterPeer(ctx, rec.Terms.ArbiterPeer, arbiterRequest{Op: opRefund, Terms: &rec.Terms, Tx: po.Tx}, &res)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		// Too early by the ledger's clock, the arbiter unreachable: retried.
		pay.setEscrow(j.ID, i, EscrowLocked, "", "refund: "+err.Error())
		return
	}
	pay.setEscrow(j.ID, i, EscrowRefunded, res.Tx, "")
	pay.log.Info("escrow refunded", "job", j.ID, "amount", rec.Terms.Amount, "tx", res.Tx)
	pay.notify(j, fmt.Sprintf("escrow refunded: %d back to the requester", rec.Terms.Amount))
}

// lockExpiry is how long a sent lock may still land: past its blockhash's
// lifetime (about 150 slots, a minute or so), with a margin.
const lockExpiry = 3 * time.Minute

// findLock settles the fate of a lock whose outcome was lost (the node
// stopped, or its confirmation timed out): the ledger says whether the
// vault exists, where the escrow can derive its address from the terms.
func (pay *settler) findLock(j *Job, i int) {
	rec := j.Escrows[i]
	pay.mu.Lock()
	inFlight := pay.lockingJobs[j.ID] > 0
	pay.mu.Unlock()
	if inFlight {
		return
	}
	d, ok := pay.p.Settlement.Escrow.(settlement.RefDeriver)
	if !ok {
		pay.setEscrow(j.ID, i, EscrowNone, "", "the lock's outcome was lost, and this ledger cannot look it up")
		return
	}
	r, err := d.DeriveRef(terms(rec.Terms))
	if err != nil {
		pay.setEscrow(j.ID, i, EscrowNone, "", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(pay.ctx, 10*time.Second)
	defer cancel()
	st, err := pay.p.Settlement.Escrow.Status(ctx, r)
	switch {
	case errors.Is(err, settlement.ErrVaultMismatch) && time.Since(rec.UpdatedAt) > lockExpiry:
		pay.setEscrow(j.ID, i, EscrowNone, "", "the lock did not land")
	case errors.Is(err, settlement.ErrVaultMismatch):
		// Not there yet: a sent lock can land until its blockhash expires.
	case err != nil:
		// Unknown yet: asked again next round.
	default:
		pay.update(j.ID, func(j *Job) error {
			x := &j.Escrows[i]
			x.Terms.Multisig, x.Terms.Vault, x.UpdatedAt = r.Multisig, r.Vault, time.Now().UTC()
			x.State, x.Error = EscrowLocked, ""
			if st.State != settlement.Locked {
				x.State = map[settlement.State]string{settlement.Released: EscrowReleased, settlement.Refunded: EscrowRefunded}[st.State]
			}
			return nil
		})
	}
}

// settledElsewhere records an escrow that was settled without this node's
// loop: a dispute decided by the arbiter, or a payout a restart
// interrupted after it landed.
func (pay *settler) settledElsewhere(j *Job, i int) bool {
	ctx, cancel := context.WithTimeout(pay.ctx, 10*time.Second)
	defer cancel()
	st, err := pay.p.Settlement.Escrow.Status(ctx, ref(j.Escrows[i].Terms))
	switch {
	case errors.Is(err, settlement.ErrVaultMismatch):
		// The ledger does not know the vault (a devnet's ledger is new on
		// each start): nothing is left to settle.
		pay.setEscrow(j.ID, i, EscrowNone, "", "the ledger knows no such vault")
		return true
	case err != nil || st.State == settlement.Locked:
		return false
	case st.State == settlement.Released:
		pay.setEscrow(j.ID, i, EscrowReleased, "", "")
	default:
		pay.setEscrow(j.ID, i, EscrowRefunded, "", "")
	}
	return true
}

// ledgerTime is the ledger's clock when the escrow can read it, else this
// machine's.
func (pay *settler) ledgerTime() time.Time {
	if c, ok := pay.p.Settlement.Escrow.(settlement.LedgerClock); ok {
		ctx, cancel := context.WithTimeout(pay.ctx, 10*time.Second)
		defer cancel()
		if t, err := c.LedgerTime(ctx); err == nil {
			return t
		}
	}
	return time.Now()
}

func (pay *settler) setEscrow(id string, i int, state, tx, errText string) {
	pay.update(id, func(j *Job) error {
		if i >= len(j.Escrows) {
			return nil
		}
		x := &j.Escrows[i]
		x.State, x.Error, x.UpdatedAt = state, errText, time.Now().UTC()
		if tx != "" {
			x.Tx = tx
		}
		return nil
	})
}

// verifyEscrow is the provider's check of an award's escrow, on the
// ledger, before it acks: the vault must hold the price for this provider.
func (pay *settler) verifyEscrow(award market.Award) string {
	s := pay.p.Settlement
	priced := award.Spec.Price != nil && award.Price > 0
	switch {
	case award.Escrow == nil && priced && s != nil && award.Spec.Price.Mint == s.Mint:
		return "this provider is paid through an escrow, and the award has none"
	case award.Escrow == nil:
		return ""
	case s == nil:
		return "this provider settles no escrows"
	case award.Escrow.Provider != s.Escrow.Address():
		return "the escrow pays " + award.Escrow.Provider + ", not this provider"
	case award.Escrow.Mint != s.Mint:
		return "the escrow is in mint " + award.Escrow.Mint + ", this provider is paid in " + s.Mint
	case !strings.HasPrefix(award.Escrow.ID, award.JobID+"/"):
		return "the escrow is for another job"
	case s.Arbiter == "":
		return "this provider names no arbiter it trusts (settlement.arbiter)"
	case award.Escrow.ArbiterPeer != s.Arbiter.String():
		// A requester that chose the arbiter could hold two of the three keys.
		return "the escrow's arbiter is not the one this provider trusts"
	}
	ctx, cancel := context.WithTimeout(pay.ctx, pay.cfg.AckTimeout*3/4)
	defer cancel()
	if addr, err := pay.arbiterAddress(ctx); err != nil {
		return "cannot reach the trusted arbiter: " + err.Error()
	} else if addr != award.Escrow.Arbiter {
		return "the escrow's arbiter account is not the trusted arbiter's"
	}
	if err := s.Escrow.Verify(ctx, ref(*award.Escrow), terms(*award.Escrow)); err != nil {
		return "escrow: " + err.Error()
	}
	return ""
}

// proposeRelease signs the provider's half of the release of a finished
// job's escrow, for the result.
func (pay *settler) proposeRelease(ctx context.Context, j *Job) []byte {
	s := pay.p.Settlement
	if s == nil || len(j.Escrows) == 0 {
		return nil
	}
	t := j.Escrows[0].Terms
	po, err := s.Escrow.Propose(ctx, ref(t), terms(t), settlement.Release)
	if err != nil {
		pay.log.Warn("release not proposed", "job", j.ID, "error", err)
		return nil
	}
	return po.Tx
}

// arbiterOp names what an arbiterRequest asks.
type arbiterOp string

// Operations of wire.ArbiterProtocol.
const (
	// opAddress asks an arbiter for its ledger address.
	opAddress arbiterOp = "address"
	// opRefund asks an arbiter to co-sign a refund after the deadline.
	opRefund arbiterOp = "refund"
	// opDispute opens a dispute with an arbiter.
	opDispute arbiterOp = "dispute"
	// opAward, from an arbiter to the side a dispute was decided for,
	// asks it to co-sign the payout.
	opAward arbiterOp = "award"
)

// arbiterRequest is one request of wire.ArbiterProtocol.
type arbiterRequest struct {
	Op      arbiterOp           `json:"op"`
	Terms   *market.EscrowTerms `json:"terms,omitempty"`
	Kind    string              `json:"kind,omitempty"`
	Tx      []byte              `json:"tx,omitempty"`
	Dispute *Dispute            `json:"dispute,omitempty"`
}

// arbiterResponse answers an arbiterRequest: a reply, and what the
// request asked for when the reply is wire.CodeOK.
type arbiterResponse struct {
	wire.Reply
	Address string `json:"address,omitempty"`
	Tx      string `json:"tx,omitempty"`
}

const maxArbiterMessage = 128 << 10

func (pay *settler) askArbiter(ctx context.Context, req arbiterRequest, res *arbiterResponse) error {
	return pay.askArbiterPeer(ctx, pay.p.Settlement.Arbiter.String(), req, res)
}

func (pay *settler) askArbiterPeer(ctx context.Context, arbiter string, req arbiterRequest, res *arbiterResponse) error {
	p, err := peer.Decode(arbiter)
	if err != nil {
		return fmt.Errorf("arbiter %q: %w", arbiter, err)
	}
	if len(pay.p.Host.Network().ConnsToPeer(p)) == 0 {
		if err := pay.p.Host.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
			return fmt.Errorf("arbiter %s: %w", p, err)
		}
	}
	// Long enough for the other side to co-sign and wait for the ledger.
	s, r, w, err := pay.newStream(ctx, p, wire.ArbiterProtocol, 90*time.Second)
	if err != nil {
		return fmt.Errorf("arbiter %s: %w", p, err)
	}
	defer s.Close()
	if err := wire.WriteJSON(w, req); err != nil {
		s.Reset()
		return err
	}
	if err := wire.ReadJSON(r, maxArbiterMessage, res); err != nil {
		s.Reset()
		return fmt.Errorf("arbiter %s: %w", p, err)
	}
	return nil
}

// handleArbiter serves wire.ArbiterProtocol. A refund is co-signed only when
// the vault on the ledger holds the terms given and the ledger's clock is
// past their deadline (the escrow enforces both), so the arbiter can
// answer anyone: a refund pays the vault's requester and no one else.
func (pay *settler) handleArbiter(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(45 * time.Second))
	r, w := bufReader(s), bufWriter(s)
	data, err := wire.ReadFrame(r, maxArbiterMessage)
	if err != nil {
		s.Reset()
		return
	}
	var req arbiterRequest
	res := arbiterResponse{Reply: wire.OK}
	refuse := func(reason string) { res.Reply = wire.Reply{Code: wire.CodeRejected, Reason: reason} }
	failed := func(err error) { res.Reply = wire.Reply{Code: wire.CodeFailed, Reason: err.Error()} }
	esc := pay.p.Settlement.Escrow
	ctx, cancel := context.WithTimeout(pay.ctx, 40*time.Second)
	defer cancel()
	serve := pay.p.Settlement.Serve
	switch err := json.Unmarshal(data, &req); {
	case err != nil:
		refuse("bad request: " + err.Error())
	case req.Op == opAward:
		// Any node with an escrow may be the side a dispute is decided for.
		res.Tx, err = pay.coSignAward(ctx, s.Conn().RemotePeer(), req)
		if err != nil {
			failed(err)
		}
	case !serve:
		refuse("this node is not an arbiter")
	case req.Op == opAddress:
		res.Address = esc.Address()
	case req.Op == opDispute && req.Dispute != nil:
		if err := pay.openDispute(ctx, s.Conn().RemotePeer(), *req.Dispute); err != nil {
			failed(err)
		}
	case req.Op == opRefund && req.Terms != nil:
		t := *req.Terms
		if t.Arbiter != esc.Address() {
			refuse("this arbiter is not a member of the escrow")
			break
		}
		if pay.inDispute(t.Vault) {
			refuse("the escrow is in dispute")
			break
		}
		if err := esc.Verify(ctx, ref(t), terms(t)); err != nil {
			failed(err)
			break
		}
		tx, err := esc.CoSign(ctx, settlement.Payout{Kind: settlement.Refund, Ref: ref(t), Tx: req.Tx}, terms(t))
		if err != nil {
			failed(err)
			break
		}
		res.Tx = tx
		pay.log.Info("refund co-signed", "escrow", t.ID, "amount", t.Amount, "requester", t.Requester, "tx", tx)
	default:
		refuse(fmt.Sprintf("unknown request %q", req.Op))
	}
	res.Reason = wire.Truncate(res.Reason, wire.MaxReasonBytes)
	if err := wire.WriteJSON(w, res); err != nil {
		s.Reset()
	}
}
