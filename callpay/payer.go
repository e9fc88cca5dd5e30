package callpay

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/settlement"
)

// Defaults of PayerParams.
const (
	DefaultBudgetCalls = 1000
	DefaultBudgetLife  = time.Hour
)

// PayerParams configure a Payer.
type PayerParams struct {
	Host   host.Host
	Key    crypto.PrivKey // the node's peer key: it signs budgets and vouchers
	Escrow settlement.Escrow
	DB     *bolt.DB
	Logger *slog.Logger
	// Arbiter is the arbiter this node trusts; a provider that takes
	// budgets with another is not paid. ArbiterAddress returns its ledger
	// account.
	Arbiter        peer.ID
	ArbiterAddress func(ctx context.Context) (string, error)
	// Refund has the arbiter co-sign the refund of a budget past its
	// deadline, and returns the transaction.
	Refund func(ctx context.Context, terms market.EscrowTerms, p settlement.Payout) (string, error)
	// Calls is how many calls one budget pays for (default
	// DefaultBudgetCalls); Life how long it lasts (default
	// DefaultBudgetLife).
	Calls int
	Life  time.Duration
}

// PayerBudget is the caller's record of one budget.
type PayerBudget struct {
	Escrow   market.EscrowTerms `json:"escrow"`
	Provider string             `json:"provider"`
	Service  string             `json:"service"`
	Price    uint64             `json:"price"`
	// Signed is the cumulative amount of the latest voucher signed.
	Signed uint64 `json:"signed"`
	// Taken is set once the provider took the budget: only then are
	// vouchers signed on it.
	Taken bool `json:"taken,omitempty"`
	// Answered counts the calls paid from it that were answered.
	Answered uint64 `json:"answered,omitempty"`
	// Retired budgets sign no more vouchers: spent, refused by the
	// provider, or open when this node last stopped (the vouchers it
	// signed since its last save may be lost, and signing again from an
	// older amount would be refused).
	Retired bool `json:"retired,omitempty"`
	// Done is set once the budget needs no more care: spent and settled by
	// the provider, or refunded (RefundTx).
	Done     bool   `json:"done,omitempty"`
	RefundTx string `json:"refund_tx,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Payer is the caller's side of call budgets. Start runs the loop that
// refunds the budgets past their deadline; Close stops it.
type Payer struct {
	p   PayerParams
	log *slog.Logger

	mu      sync.Mutex
	budgets map[string]*PayerBudget // by escrow ID
	dirty   map[string]bool
	opening map[string]*sync.Mutex // by provider and service: one budget opened at a time

	quit chan struct{}
	wg   sync.WaitGroup
}

// NewPayer loads the budgets kept in p.DB.
func NewPayer(p PayerParams) (*Payer, error) {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Calls <= 0 {
		p.Calls = DefaultBudgetCalls
	}
	if p.Life <= 0 {
		p.Life = DefaultBudgetLife
	}
	all, err := loadAll[PayerBudget](p.DB, payerBucket)
	if err != nil {
		return nil, fmt.Errorf("load call budgets: %w", err)
	}
	for _, b := range all {
		b.Retired = true
	}
	return &Payer{p: p, log: p.Logger, budgets: all, dirty: map[string]bool{}, opening: map[string]*sync.Mutex{},
		quit: make(chan struct{})}, nil
}

// Start starts the loop that saves the budgets and refunds those past
// their deadline.
func (p *Payer) Start() {
	p.wg.Add(1)
	go p.loop()
}

// Close stops the loop and saves the budgets.
func (p *Payer) Close() error {
	select {
	case <-p.quit:
		return nil
	default:
	}
	close(p.quit)
	p.wg.Wait()
	return p.save()
}

// Budgets returns a copy of every budget's record.
func (p *Payer) Budgets() []PayerBudget {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PayerBudget, 0, len(p.budgets))
	for _, b := range p.budgets {
		out = append(out, *b)
	}
	return out
}

// Voucher returns a signed voucher (an encoded envelope) for one call to
// the service rec offers, and the budget it draws on, opening a budget
// with its provider first when none has room for the call. A free
// service needs none: nil.
func (p *Payer) Voucher(ctx context.Context, rec market.ServiceRecord) (voucher []byte, budget string, err error) {
	if rec.PricePerCall == 0 {
		return nil, "", nil
	}
	if rec.ArbiterPeer != p.p.Arbiter.String() {
		return nil, "", fmt.Errorf("%s on %s takes budgets with arbiter %s; this node trusts %s (settlement.arbiter)", rec.Service, rec.Provider, rec.ArbiterPeer, p.p.Arbiter)
	}
	if env, id, err := p.sign(rec); id != "" || err != nil {
		return env, id, err
	}
	lock := p.openLock(rec.Provider + "/" + rec.Service)
	lock.Lock()
	defer lock.Unlock()
	if env, id, err := p.sign(rec); id != "" || err != nil {
		return env, id, err // another call opened one meanwhile
	}
	if err := p.open(ctx, rec); err != nil {
		return nil, "", err
	}
	env, id, err := p.sign(rec)
	if id == "" && err == nil {
		err = errors.New("the budget just opened has no room")
	}
	return env, id, err
}

func (p *Payer) openLock(key string) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.opening[key]
	if !ok {
		m = new(sync.Mutex)
		p.opening[key] = m
	}
	return m
}

// sign signs a voucher on an open budget with room for one more call to
// rec's service, if there is one, and returns it with the budget's ID.
func (p *Payer) sign(rec market.ServiceRecord) ([]byte, string, error) {
	p.mu.Lock()
	var b *PayerBudget
	for _, c := range p.budgets {
		if c.Taken && !c.Done && !c.Retired && c.Provider == rec.Provider && c.Service == rec.Service && c.Price == rec.PricePerCall &&
			c.Signed+c.Price <= c.Escrow.Amount && time.Until(c.Escrow.Deadline) > DefaultSettleMargin+time.Minute {
			b = c
			break
		}
	}
	if b == nil {
		p.mu.Unlock()
		return nil, "", nil
	}
	b.Signed += b.Price
	v := market.Voucher{Budget: b.Escrow.JobID, Amount: b.Signed}
	p.dirty[b.Escrow.JobID] = true
	p.mu.Unlock()
	env, err := market.Seal(p.p.Key, market.TypeVoucher, v)
	if err != nil {
		return nil, "", err
	}
	data, err := env.Marshal()
	if err != nil {
		return nil, "", err
	}
	return data, v.Budget, nil
}

// Answered counts a call paid from budget that was answered. The
// provider's own figure of what was paid is not taken: a voucher never
// promises more than this node signed.
func (p *Payer) Answered(budget string, paid uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.budgets[budget]
	if !ok {
		return
	}
	b.Answered++
	p.dirty[budget] = true
	if paid > b.Signed {
		p.log.Warn("a provider says a budget promised more than was signed", "budget", budget, "provider", b.Provider, "says", paid, "signed", b.Signed)
	}
}

// Spent retires a budget the provider no longer takes: the next call
// opens another.
func (p *Payer) Spent(budget string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.budgets[budget]; ok {
		b.Retired = true
		p.dirty[budget] = true
	}
}

// maxBarren is how many budgets with one provider that served no call
// may be open at once: a provider that takes budgets and refuses their
// calls gets no more.
const maxBarren = 2

// open locks a budget with rec's provider and tells the provider of it.
func (p *Payer) open(ctx context.Context, rec market.ServiceRecord) error {
	p.mu.Lock()
	barren := 0
	for _, b := range p.budgets {
		if !b.Done && b.Provider == rec.Provider && b.Answered == 0 {
			barren++
		}
	}
	p.mu.Unlock()
	if barren >= maxBarren {
		return fmt.Errorf("%d budgets with %s are open and none paid for an answered call: no more are locked with it until they are refunded", barren, rec.Provider)
	}
	self := p.p.Host.ID()
	provider, err := peer.Decode(rec.Provider)
	if err != nil {
		return fmt.Errorf("service record: provider: %w", err)
	}
	arbiter, err := p.p.ArbiterAddress(ctx)
	if err != nil {
		return fmt.Errorf("open a budget: the arbiter's address: %w", err)
	}
	suffix := make([]byte, 8)
	if _, err := rand.Read(suffix); err != nil {
		return err
	}
	amount := rec.PricePerCall * uint64(p.p.Calls)
	if amount/uint64(p.p.Calls) != rec.PricePerCall {
		return fmt.Errorf("a budget of %d calls at %d overflows", p.p.Calls, rec.PricePerCall)
	}
	t := settlement.Terms{JobID: market.BudgetID(self, hex.EncodeToString(suffix)), Requester: p.p.Escrow.Address(),
		Provider: rec.Payee, Arbiter: arbiter, Mint: rec.Mint, Amount: amount,
		Deadline: time.Now().Add(p.p.Life).UTC().Truncate(time.Second)}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("open a budget: %w", err)
	}
	ref, err := p.p.Escrow.Lock(ctx, t)
	if err != nil {
		return fmt.Errorf("lock a budget of %d: %w", amount, err)
	}
	b := &PayerBudget{Escrow: market.EscrowTerms{Terms: t, Ref: ref, ArbiterPeer: p.p.Arbiter.String()},
		Provider: rec.Provider, Service: rec.Service, Price: rec.PricePerCall}
	// Kept before the provider hears of it: a budget it refuses is
	// refunded after its deadline.
	p.mu.Lock()
	p.budgets[t.JobID] = b
	p.dirty[t.JobID] = true
	p.mu.Unlock()
	if err := p.save(); err != nil {
		return err
	}
	p.log.Info("call budget locked", "budget", t.JobID, "provider", provider, "service", rec.Service, "amount", amount)
	if err := p.tell(ctx, provider, market.Budget{Escrow: b.Escrow, Service: rec.Service, PricePerCall: rec.PricePerCall}); err != nil {
		p.mu.Lock()
		b.Retired, b.Error = true, "refused by the provider: "+err.Error()
		p.dirty[t.JobID] = true
		p.mu.Unlock()
		return fmt.Errorf("open a budget with %s: %w (the budget is refunded after its deadline)", provider, err)
	}
	p.mu.Lock()
	b.Taken = true
	p.dirty[t.JobID] = true
	p.mu.Unlock()
	return p.save()
}

// tell sends the signed budget to its provider.
func (p *Payer) tell(ctx context.Context, provider peer.ID, b market.Budget) error {
	env, err := market.Seal(p.p.Key, market.TypeBudget, b)
	if err != nil {
		return err
	}
	data, err := env.Marshal()
	if err != nil {
		return err
	}
	s, err := p.p.Host.NewStream(ctx, provider, wire.BudgetProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(30 * time.Second))
	w := bufio.NewWriter(s)
	if err := wire.WriteFrame(w, data); err != nil {
		_ = s.Reset()
		return err
	}
	var reply wire.Reply
	if err := wire.ReadJSON(bufio.NewReader(s), wire.MaxReplyBytes, &reply); err != nil {
		_ = s.Reset()
		return err
	}
	return reply.Err()
}

func (p *Payer) save() error {
	p.mu.Lock()
	recs := make(map[string]PayerBudget, len(p.dirty))
	for id := range p.dirty {
		if b, ok := p.budgets[id]; ok {
			recs[id] = *b
		}
	}
	p.dirty = map[string]bool{}
	p.mu.Unlock()
	if err := putAll(p.p.DB, payerBucket, recs); err != nil {
		p.mu.Lock()
		for id := range recs {
			p.dirty[id] = true
		}
		p.mu.Unlock()
		return fmt.Errorf("save call budgets: %w", err)
	}
	return nil
}

func (p *Payer) loop() {
	defer p.wg.Done()
	tick := time.NewTicker(DefaultTick)
	defer tick.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-tick.C:
		}
		if err := p.save(); err != nil {
			p.log.Warn("save call budgets", "error", err)
		}
		p.closeEnded()
		p.prune()
	}
}

// prune forgets the budgets done more than KeepSettled ago.
func (p *Payer) prune() {
	p.mu.Lock()
	var old []string
	for id, b := range p.budgets {
		if b.Done && time.Since(b.Escrow.Deadline) > KeepSettled {
			old = append(old, id)
		}
	}
	p.mu.Unlock()
	if err := deleteAll(p.p.DB, payerBucket, old); err != nil {
		p.log.Warn("delete old call budgets", "error", err)
		return
	}
	p.mu.Lock()
	for _, id := range old {
		delete(p.budgets, id)
	}
	p.mu.Unlock()
}

// closeEnded looks at the budgets past their deadline: one the provider
// settled is done; one still locked is refunded, with the arbiter.
func (p *Payer) closeEnded() {
	now := time.Now()
	p.mu.Lock()
	var ended []PayerBudget
	for _, b := range p.budgets {
		if !b.Done && now.After(b.Escrow.Deadline) {
			ended = append(ended, *b)
		}
	}
	p.mu.Unlock()
	for _, b := range ended {
		select {
		case <-p.quit:
			return
		default:
		}
		p.refund(b)
	}
}

func (p *Payer) refund(b PayerBudget) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := b.Escrow.JobID
	done := func(tx, why string) {
		p.mu.Lock()
		if r, ok := p.budgets[id]; ok {
			r.Done, r.RefundTx, r.Error = why == "", tx, why
			p.dirty[id] = true
		}
		p.mu.Unlock()
	}
	st, err := p.p.Escrow.Status(ctx, b.Escrow.Ref)
	if err == nil && st.State != settlement.Locked {
		done("", "")
		return
	}
	po, err := p.p.Escrow.Propose(ctx, b.Escrow.Ref, b.Escrow.Terms, settlement.Refund)
	if errors.Is(err, settlement.ErrClosed) {
		done("", "")
		return
	}
	var tx string
	if err == nil {
		tx, err = p.p.Refund(ctx, b.Escrow, po)
	}
	if err != nil {
		done("", "refund: "+err.Error()) // tried again
		return
	}
	done(tx, "")
	p.log.Info("call budget refunded", "budget", id, "amount", b.Escrow.Amount, "tx", tx)
}
