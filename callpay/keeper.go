package callpay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/settlement"
)

// ErrPayment is what a call refused for its payment wraps.
var ErrPayment = errors.New("payment")

// Defaults of KeeperParams.
const (
	DefaultSettleMargin = 2 * time.Minute
	DefaultIdleSettle   = 10 * time.Minute
	DefaultTick         = 5 * time.Second
	// DefaultMaxPerCaller bounds the open budgets of one caller;
	// DefaultMaxBudgets those of all callers.
	DefaultMaxPerCaller = 16
	DefaultMaxBudgets   = 4096
)

// MaxBudgetLife bounds how far away a budget's deadline may be: a
// provider keeps what it takes until then.
const MaxBudgetLife = 24 * time.Hour

// maxBudgetMessage bounds a budget frame: a signed envelope.
const maxBudgetMessage = 16 << 10

// KeeperParams configure a Keeper.
type KeeperParams struct {
	Host   host.Host
	Escrow settlement.Escrow // this provider's account
	DB     *bolt.DB
	Logger *slog.Logger
	// Offer returns this provider's service record of a service it
	// serves now.
	Offer func(service string) (market.ServiceRecord, bool)
	// AskArbiter has the escrow's arbiter co-sign an ArbiterSplit on the
	// strength of the caller's voucher, and returns the transaction.
	AskArbiter func(ctx context.Context, terms market.EscrowTerms, p settlement.Payout, voucher market.Envelope) (string, error)
	// SettleMargin: a budget is settled this long before its deadline,
	// after which the caller may take it back (default
	// DefaultSettleMargin). A budget must live past it, and a minute more.
	SettleMargin time.Duration
	// IdleSettle: a budget with no call for this long is settled (default
	// DefaultIdleSettle).
	IdleSettle time.Duration
	// Tick is how often budgets are looked at (default DefaultTick): the
	// counts are saved, and the due ones settled.
	Tick time.Duration
	// MaxPerCaller and MaxBudgets bound the open budgets.
	MaxPerCaller, MaxBudgets int
	// Settled, when set, is told what each settled budget paid.
	Settled func(earned uint64)
}

// BudgetState is the provider's record of one budget.
type BudgetState struct {
	Budget market.Budget `json:"budget"`
	Caller string        `json:"caller"`
	// Paid is the largest amount a voucher of the caller's promised;
	// Latest is that voucher.
	Paid   uint64           `json:"paid"`
	Latest *market.Envelope `json:"latest,omitempty"`
	// Served counts the calls answered on the budget; the provider is owed
	// Served times the price, never more than Paid.
	Served   uint64    `json:"served"`
	Opened   time.Time `json:"opened"`
	LastCall time.Time `json:"last_call,omitzero"`
	// Settled is set once the split landed (SettleTx) or the budget was
	// given up with nothing to settle; Error says why the last try failed.
	Settled   bool      `json:"settled,omitempty"`
	SettledAt time.Time `json:"settled_at,omitzero"`
	SettleTx  string    `json:"settle_tx,omitempty"`
	Earned    uint64    `json:"earned,omitempty"`
	Error     string    `json:"error,omitempty"`
	// ended: the service is no longer served here, so the budget is due.
	ended bool
	// settling: the budget is being settled; it takes no call, and waits
	// for the calls charged on it to be answered or given back (inflight).
	settling bool
	inflight int
}

// due is what the provider is owed: never more than the budget, since a
// call is charged only when the budget has room for it.
func (b *BudgetState) due() uint64 { return b.Served * b.Budget.PricePerCall }

// room reports whether the amount promised pays for one more call on top
// of those served, computed without overflow.
func room(served, promised, price uint64) bool { return served < promised/price }

// Keeper is the provider's side of call budgets. Start serves
// wire.BudgetProtocol and settles; Close stops it.
type Keeper struct {
	p   KeeperParams
	log *slog.Logger

	mu      sync.Mutex
	budgets map[string]*BudgetState // by escrow ID
	dirty   map[string]bool
	opening map[peer.ID]bool // a caller's budget being checked on the ledger

	kick chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup
}

// NewKeeper loads the budgets kept in p.DB.
func NewKeeper(p KeeperParams) (*Keeper, error) {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.SettleMargin <= 0 {
		p.SettleMargin = DefaultSettleMargin
	}
	if p.IdleSettle <= 0 {
		p.IdleSettle = DefaultIdleSettle
	}
	if p.Tick <= 0 {
		p.Tick = DefaultTick
	}
	if p.MaxPerCaller <= 0 {
		p.MaxPerCaller = DefaultMaxPerCaller
	}
	if p.MaxBudgets <= 0 {
		p.MaxBudgets = DefaultMaxBudgets
	}
	all, err := loadAll[BudgetState](p.DB, keeperBucket)
	if err != nil {
		return nil, fmt.Errorf("load call budgets: %w", err)
	}
	return &Keeper{p: p, log: p.Logger, budgets: all, dirty: map[string]bool{}, opening: map[peer.ID]bool{},
		kick: make(chan struct{}, 1), quit: make(chan struct{})}, nil
}

// Start serves wire.BudgetProtocol and starts the loop that saves and
// settles the budgets.
func (k *Keeper) Start() {
	k.p.Host.SetStreamHandler(wire.BudgetProtocol, k.handle)
	k.wg.Add(1)
	go k.loop()
}

// Close stops taking budgets and settling, and saves the counts.
func (k *Keeper) Close() error {
	k.p.Host.RemoveStreamHandler(wire.BudgetProtocol)
	select {
	case <-k.quit:
		return nil
	default:
	}
	close(k.quit)
	k.wg.Wait()
	return k.save()
}

// Budgets returns a copy of every budget's record.
func (k *Keeper) Budgets() []BudgetState {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]BudgetState, 0, len(k.budgets))
	for _, b := range k.budgets {
		out = append(out, *b)
	}
	return out
}

func (k *Keeper) handle(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(30 * time.Second))
	w := bufio.NewWriter(s)
	data, err := wire.ReadFrame(bufio.NewReader(s), maxBudgetMessage)
	if err != nil {
		_ = s.Reset()
		return
	}
	reply := wire.OK
	if err := k.open(s.Conn().RemotePeer(), data); err != nil {
		reply = wire.Refuse(err)
		if errors.Is(err, errBusy) {
			reply.Code = wire.CodeFull
		}
	}
	reply.Reason = wire.Truncate(reply.Reason, wire.MaxReasonBytes)
	if err := wire.WriteJSON(w, reply); err != nil {
		_ = s.Reset()
	}
}

// errBusy: a budget refused for now, not for good.
var errBusy = errors.New("busy")

// open takes a budget from caller: signed by it, for a service served
// here at its price, to this provider with its arbiter, and locked on the
// ledger as the terms say.
func (k *Keeper) open(caller peer.ID, data []byte) error {
	env, err := market.ParseEnvelope(data)
	if err != nil {
		return err
	}
	var b market.Budget
	signer, err := env.Open(market.TypeBudget, &b)
	if err != nil {
		return err
	}
	if signer != caller {
		return fmt.Errorf("a budget signed by %s, sent by %s", signer, caller)
	}
	offer, ok := k.p.Offer(b.Service)
	switch {
	case !ok:
		return fmt.Errorf("no service %q here", b.Service)
	case offer.PricePerCall == 0:
		return fmt.Errorf("calls to %s are free: no budget is needed", b.Service)
	}
	if err := b.Check(caller, offer); err != nil {
		return err
	}
	until := time.Until(b.Escrow.Deadline)
	switch {
	case until < k.p.SettleMargin+time.Minute:
		return fmt.Errorf("the budget's deadline is %s away; this provider needs at least %s to settle it", until.Round(time.Second), k.p.SettleMargin+time.Minute)
	case until > MaxBudgetLife:
		return fmt.Errorf("the budget's deadline is %s away; this provider takes budgets of at most %s", until.Round(time.Second), MaxBudgetLife)
	}
	known, err := k.reserveOpening(caller, b.Escrow.JobID)
	if err != nil || known {
		return err // a budget taken already is taken again, unchecked
	}
	defer k.doneOpening(caller)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := k.p.Escrow.Verify(ctx, b.Escrow.Ref, b.Escrow.Terms); err != nil {
		return fmt.Errorf("the budget's escrow: %w", err)
	}
	k.mu.Lock()
	if _, dup := k.budgets[b.Escrow.JobID]; !dup {
		k.budgets[b.Escrow.JobID] = &BudgetState{Budget: b, Caller: caller.String(), Opened: time.Now().UTC()}
		k.dirty[b.Escrow.JobID] = true
	}
	k.mu.Unlock()
	k.log.Info("call budget opened", "budget", b.Escrow.JobID, "caller", caller, "service", b.Service, "amount", b.Escrow.Amount)
	return k.save()
}

// reserveOpening lets one budget of caller at a time be checked on the
// ledger, within the bounds of open budgets; known reports a budget taken
// already, which needs no check and takes no slot.
func (k *Keeper) reserveOpening(caller peer.ID, id string) (known bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b, ok := k.budgets[id]; ok {
		if b.Settled || b.settling {
			return true, fmt.Errorf("budget %s is settled", id)
		}
		return true, nil
	}
	if k.opening[caller] {
		return false, fmt.Errorf("%w: another budget of this caller is being checked", errBusy)
	}
	open, mine := 0, 0
	for _, b := range k.budgets {
		if !b.Settled {
			open++
			if b.Caller == caller.String() {
				mine++
			}
		}
	}
	switch {
	case mine >= k.p.MaxPerCaller:
		return false, fmt.Errorf("%w: this caller has %d open budgets here, at most %d", errBusy, mine, k.p.MaxPerCaller)
	case open >= k.p.MaxBudgets || len(k.budgets) >= 2*k.p.MaxBudgets:
		return false, fmt.Errorf("%w: %d budgets are open here, at most %d", errBusy, open, k.p.MaxBudgets)
	}
	k.opening[caller] = true
	return false, nil
}

func (k *Keeper) doneOpening(caller peer.ID) {
	k.mu.Lock()
	delete(k.opening, caller)
	k.mu.Unlock()
}

// Charge is one call's payment, taken from a voucher. Done says the call
// was answered; Undo gives the payment back when it was not. The first of
// them counts, once.
type Charge struct {
	k      *Keeper
	budget string
	paid   uint64
	once   sync.Once
}

// Paid is the cumulative amount the budget's vouchers promised, as the
// answer tells the caller.
func (c *Charge) Paid() uint64 {
	if c == nil {
		return 0
	}
	return c.paid
}

// Done marks the call answered.
func (c *Charge) Done() {
	if c == nil {
		return
	}
	c.once.Do(func() { c.k.finishCall(c.budget, false) })
}

// Undo uncounts the call: it was not answered.
func (c *Charge) Undo() {
	if c == nil {
		return
	}
	c.once.Do(func() { c.k.finishCall(c.budget, true) })
}

// finishCall ends a charged call: answered, or given back (undo).
func (k *Keeper) finishCall(id string, undo bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.budgets[id]
	if !ok {
		return
	}
	if b.inflight > 0 {
		b.inflight--
	}
	if undo && b.Served > 0 && !b.Settled {
		b.Served--
		k.dirty[id] = true
	}
}

// Charge takes the payment of one call by caller to service: nothing for
// a free service; for a priced one, a voucher (an encoded envelope) of an
// open budget of the caller's for that service, that promises at least
// the calls served on it and this one. An error wraps ErrPayment and says
// why.
func (k *Keeper) Charge(caller peer.ID, service string, voucher []byte) (*Charge, error) {
	offer, ok := k.p.Offer(service)
	if !ok || offer.PricePerCall == 0 {
		return nil, nil
	}
	if len(voucher) == 0 {
		return nil, fmt.Errorf("%w: a call to %s costs %d of %s: it carries a voucher of a budget locked with this provider (payee %s, arbiter %s)",
			ErrPayment, service, offer.PricePerCall, offer.Mint, offer.Payee, offer.ArbiterPeer)
	}
	env, err := market.ParseEnvelope(voucher)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayment, err)
	}
	// The budget the voucher names, read before its signature is checked.
	var claim market.Voucher
	if err := json.Unmarshal(env.Payload, &claim); err != nil {
		return nil, fmt.Errorf("%w: voucher: %v", ErrPayment, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.budgets[claim.Budget]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: no budget %q here", ErrPayment, claim.Budget)
	case b.Caller != caller.String():
		return nil, fmt.Errorf("%w: %v: budget %s is not the caller's", ErrPayment, market.ErrVoucherSigner, claim.Budget)
	case b.Settled || b.settling:
		return nil, fmt.Errorf("%w: budget %s is settled", ErrPayment, claim.Budget)
	case b.Budget.Service != service:
		return nil, fmt.Errorf("%w: budget %s pays for %s, not %s", ErrPayment, claim.Budget, b.Budget.Service, service)
	}
	v, err := market.OpenVoucher(env, claim.Budget, b.Budget.Escrow.Amount)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayment, err)
	}
	price := b.Budget.PricePerCall
	paid := max(b.Paid, v.Amount)
	if !room(b.Served, paid, price) {
		var why error
		switch {
		case v.Amount == b.Paid:
			why = market.ErrVoucherReused
		case v.Amount < b.Paid:
			why = market.ErrVoucherLowered
		default:
			why = errors.New("voucher short")
		}
		if !room(b.Served, b.Budget.Escrow.Amount, price) {
			return nil, fmt.Errorf("%w: budget %s is spent: %d calls served", ErrPayment, claim.Budget, b.Served)
		}
		return nil, fmt.Errorf("%w: %v: %d promises no call beyond the %d served (%d paid)", ErrPayment, why, v.Amount, b.Served, b.Paid)
	}
	if v.Amount > b.Paid {
		b.Paid, b.Latest = v.Amount, &env
	}
	b.Served++
	b.inflight++
	b.LastCall = time.Now().UTC()
	k.dirty[claim.Budget] = true
	if !room(b.Served, b.Budget.Escrow.Amount, price) {
		select {
		case k.kick <- struct{}{}: // spent: settle it now
		default:
		}
	}
	return &Charge{k: k, budget: claim.Budget, paid: b.Paid}, nil
}

// Ended settles, now, the open budgets of a service this provider no
// longer serves.
func (k *Keeper) Ended(service string) {
	k.mu.Lock()
	for _, b := range k.budgets {
		if !b.Settled && b.Budget.Service == service {
			b.ended = true
		}
	}
	k.mu.Unlock()
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// save writes the budgets changed since the last save.
func (k *Keeper) save() error {
	k.mu.Lock()
	recs := make(map[string]BudgetState, len(k.dirty))
	for id := range k.dirty {
		if b, ok := k.budgets[id]; ok {
			recs[id] = *b
		}
	}
	k.dirty = map[string]bool{}
	k.mu.Unlock()
	if err := putAll(k.p.DB, keeperBucket, recs); err != nil {
		k.mu.Lock()
		for id := range recs {
			k.dirty[id] = true
		}
		k.mu.Unlock()
		return fmt.Errorf("save call budgets: %w", err)
	}
	return nil
}

func (k *Keeper) loop() {
	defer k.wg.Done()
	tick := time.NewTicker(k.p.Tick)
	defer tick.Stop()
	for {
		select {
		case <-k.quit:
			return
		case <-tick.C:
		case <-k.kick:
		}
		if err := k.save(); err != nil {
			k.log.Warn("save call budgets", "error", err)
		}
		k.settleDue()
		k.prune()
	}
}

// prune forgets the budgets settled more than KeepSettled ago.
func (k *Keeper) prune() {
	k.mu.Lock()
	var old []string
	for id, b := range k.budgets {
		if b.Settled && (time.Since(b.SettledAt) > KeepSettled || b.Served == 0) {
			old = append(old, id)
		}
	}
	k.mu.Unlock()
	if err := deleteAll(k.p.DB, keeperBucket, old); err != nil {
		k.log.Warn("delete old call budgets", "error", err)
		return
	}
	k.mu.Lock()
	for _, id := range old {
		delete(k.budgets, id)
	}
	k.mu.Unlock()
}

// settleDue settles the budgets that are spent, idle, or near their
// deadline, one at a time.
func (k *Keeper) settleDue() {
	now := time.Now()
	k.mu.Lock()
	var due []string
	for id, b := range k.budgets {
		if b.Settled {
			continue
		}
		spent := !room(b.Served, b.Budget.Escrow.Amount, b.Budget.PricePerCall)
		last := b.LastCall
		if last.IsZero() {
			last = b.Opened
		}
		late := now.After(b.Budget.Escrow.Deadline.Add(-k.p.SettleMargin))
		if spent || late || b.ended || now.Sub(last) > k.p.IdleSettle {
			due = append(due, id)
		}
	}
	k.mu.Unlock()
	for _, id := range due {
		select {
		case <-k.quit:
			return
		default:
		}
		k.settle(id)
	}
}

// settle settles one budget: an ArbiterSplit of the calls served, on the
// latest voucher; a budget with no call served is left to its caller's
// refund. It takes no call from its start, and waits (to the next look)
// for the calls charged on it to be answered or given back.
func (k *Keeper) settle(id string) {
	k.mu.Lock()
	b, ok := k.budgets[id]
	if !ok || b.Settled {
		k.mu.Unlock()
		return
	}
	b.settling = true
	if b.inflight > 0 {
		k.mu.Unlock()
		return
	}
	snap := *b
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if snap.due() == 0 || snap.Latest == nil {
		k.finish(id, "", 0, "")
		k.log.Info("call budget closed with no call served", "budget", id)
		return
	}
	terms := snap.Budget.Escrow
	po, err := k.p.Escrow.ProposeSplit(ctx, terms.Ref, terms.Terms, settlement.ArbiterSplit, snap.due())
	var tx string
	if err == nil {
		tx, err = k.p.AskArbiter(ctx, terms, po, *snap.Latest)
	}
	if errors.Is(err, settlement.ErrClosed) {
		// Settled already: by this split, before a restart lost its
		// outcome, or refunded.
		if st, serr := k.p.Escrow.Status(ctx, terms.Ref); serr == nil && st.PaidTo == terms.Provider {
			k.finish(id, "", terms.Amount-st.Returned, "")
			return
		}
	}
	if err != nil {
		if errors.Is(err, settlement.ErrClosed) || time.Now().After(terms.Deadline) {
			k.finish(id, "", 0, "not settled: "+err.Error())
			k.log.Warn("call budget lost", "budget", id, "due", snap.due(), "error", err)
			return
		}
		k.mu.Lock()
		b.Error = err.Error()
		k.dirty[id] = true
		k.mu.Unlock()
		k.log.Warn("settle call budget", "budget", id, "due", snap.due(), "error", err)
		return
	}
	k.finish(id, tx, snap.due(), "")
	if k.p.Settled != nil {
		k.p.Settled(snap.due())
	}
	k.log.Info("call budget settled", "budget", id, "calls", snap.Served, "earned", snap.due(), "refunded", terms.Amount-snap.due(), "tx", tx)
}

func (k *Keeper) finish(id, tx string, earned uint64, why string) {
	k.mu.Lock()
	if b, ok := k.budgets[id]; ok {
		b.Settled, b.SettledAt, b.SettleTx, b.Earned, b.Error = true, time.Now().UTC(), tx, earned, why
		k.dirty[id] = true
	}
	k.mu.Unlock()
	if err := k.save(); err != nil {
		k.log.Warn("save call budgets", "error", err)
	}
}
