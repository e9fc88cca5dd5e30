package market

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ServiceRecord is a provider's signed offer of a service it serves: the
// model behind it, what a call costs, the bounds of a call and where to
// reach the provider. Providers keep one in the DHT for each service they
// serve, and publish it again before it expires.
type ServiceRecord struct {
	Service  string `json:"service"`
	Model    string `json:"model"` // the weights' CID
	Provider string `json:"provider"`
	// Addrs is where the provider listens.
	Addrs []string `json:"addrs,omitempty"`
	// PricePerCall is what one call costs, in base units of Mint; 0 is
	// free. A priced call carries a voucher of a budget locked with Payee.
	PricePerCall uint64 `json:"price_per_call,omitempty"`
	Mint         string `json:"mint,omitempty"`
	// Payee is the provider's ledger account; ArbiterPeer the arbiter it
	// takes budgets with. Both are set when PricePerCall is.
	Payee       string `json:"payee,omitempty"`
	ArbiterPeer string `json:"arbiter_peer,omitempty"`
	// InputSize is the values of one example; OutputSize of one answer row.
	InputSize  int `json:"input_size"`
	OutputSize int `json:"output_size"`
	// MaxExamples and MaxRequestBytes bound one call; MaxPerCaller the
	// calls one caller may have open at once.
	MaxExamples     int       `json:"max_examples"`
	MaxRequestBytes int       `json:"max_request_bytes"`
	MaxPerCaller    int       `json:"max_per_caller"`
	Seq             uint64    `json:"seq"`
	IssuedAt        time.Time `json:"issued_at"`
	ExpiresAt       time.Time `json:"expires_at"`
}

// MaxServiceTTL bounds how long a service record lives.
const MaxServiceTTL = 24 * time.Hour

// maxServiceAddrs bounds the addresses a service record lists.
const maxServiceAddrs = 16

// CheckServiceRecord checks a service record against its signer and the
// clock.
func CheckServiceRecord(r ServiceRecord, signer peer.ID, now time.Time) error {
	switch {
	case r.Provider != signer.String():
		return fmt.Errorf("service record for %s signed by %s", r.Provider, signer)
	case !serviceName.MatchString(r.Service):
		return fmt.Errorf("service record: bad service name %q", r.Service)
	case !r.ExpiresAt.After(now):
		return errors.New("service record has expired")
	case r.IssuedAt.After(now.Add(time.Minute)):
		return errors.New("service record is issued in the future")
	case r.ExpiresAt.Sub(r.IssuedAt) > MaxServiceTTL:
		return fmt.Errorf("service record lives longer than %s", MaxServiceTTL)
	case r.InputSize < 1 || r.OutputSize < 1 || r.MaxExamples < 1 || r.MaxRequestBytes < 1 || r.MaxPerCaller < 1:
		return errors.New("service record: sizes and bounds must be at least 1")
	case len(r.Addrs) > maxServiceAddrs:
		return fmt.Errorf("service record lists %d addresses, at most %d", len(r.Addrs), maxServiceAddrs)
	case r.PricePerCall > 0 && (r.Mint == "" || r.Payee == "" || r.ArbiterPeer == ""):
		return errors.New("service record: a priced service names its mint, payee and arbiter")
	}
	if _, err := cid.Decode(r.Model); err != nil {
		return fmt.Errorf("service record: model: %w", err)
	}
	if r.ArbiterPeer != "" {
		if _, err := peer.Decode(r.ArbiterPeer); err != nil {
			return fmt.Errorf("service record: arbiter: %w", err)
		}
	}
	return checkFields("service record", append([]string{r.Mint, r.Payee}, r.Addrs...)...)
}

// BudgetPrefix begins the escrow ID of every call budget; the caller's
// peer ID follows it, then a slash and a unique suffix. The lock binds the
// ID, so only vouchers signed by that peer spend the budget.
const BudgetPrefix = "budget/"

// BudgetID returns the escrow ID of a caller's budget with a unique
// suffix.
func BudgetID(caller peer.ID, suffix string) string {
	return BudgetPrefix + caller.String() + "/" + suffix
}

// BudgetCaller returns the peer a budget's escrow ID names: the only
// signer of its vouchers.
func BudgetCaller(escrowID string) (peer.ID, error) {
	rest, ok := strings.CutPrefix(escrowID, BudgetPrefix)
	if !ok {
		return "", fmt.Errorf("escrow %q is not a call budget", escrowID)
	}
	id, suffix, ok := strings.Cut(rest, "/")
	if !ok || suffix == "" {
		return "", fmt.Errorf("budget %q names no caller and suffix", escrowID)
	}
	p, err := peer.Decode(id)
	if err != nil {
		return "", fmt.Errorf("budget %q: caller: %w", escrowID, err)
	}
	return p, nil
}

// Budget opens a caller's budget with a provider: the terms of the escrow
// the caller locked, for calls to one service at a price per call. The
// caller signs it.
type Budget struct {
	Escrow       EscrowTerms `json:"escrow"`
	Service      string      `json:"service"`
	PricePerCall uint64      `json:"price_per_call"`
}

// Check validates a budget's form against the provider's offer.
func (b Budget) Check(caller peer.ID, offer ServiceRecord) error {
	owner, err := BudgetCaller(b.Escrow.JobID)
	if err != nil {
		return err
	}
	switch {
	case owner != caller:
		return fmt.Errorf("budget %s belongs to %s, not to the caller %s", b.Escrow.JobID, owner, caller)
	case b.Service != offer.Service:
		return fmt.Errorf("budget for service %q, not %q", b.Service, offer.Service)
	case b.PricePerCall != offer.PricePerCall:
		return fmt.Errorf("budget at %d a call; the price is %d", b.PricePerCall, offer.PricePerCall)
	case b.Escrow.Amount < offer.PricePerCall:
		return fmt.Errorf("budget of %d pays for no call at %d", b.Escrow.Amount, offer.PricePerCall)
	case b.Escrow.Provider != offer.Payee:
		return fmt.Errorf("budget pays %s, not this provider (%s)", b.Escrow.Provider, offer.Payee)
	case b.Escrow.ArbiterPeer != offer.ArbiterPeer:
		return fmt.Errorf("budget names arbiter %s; this provider takes budgets with %s", b.Escrow.ArbiterPeer, offer.ArbiterPeer)
	}
	return b.Escrow.Check(b.Escrow.Amount, offer.Mint)
}

// Voucher is a caller's promise for the calls made so far on a budget:
// Amount is the cumulative total due, and each call raises it by the
// price. The provider settles once, with the latest voucher.
type Voucher struct {
	Budget string `json:"budget"` // the escrow ID
	Amount uint64 `json:"amount"`
}

// Errors of vouchers.
var (
	ErrVoucherReused   = errors.New("voucher reused")
	ErrVoucherLowered  = errors.New("voucher lowered")
	ErrVoucherInflated = errors.New("voucher inflated")
	ErrVoucherSigner   = errors.New("voucher signed by someone else")
)

// OpenVoucher checks that env is a voucher of the budget escrowID signed
// by the peer the budget names, for at most limit.
func OpenVoucher(env Envelope, escrowID string, limit uint64) (Voucher, error) {
	owner, err := BudgetCaller(escrowID)
	if err != nil {
		return Voucher{}, err
	}
	var v Voucher
	signer, err := env.Open(TypeVoucher, &v)
	if err != nil {
		return Voucher{}, err
	}
	switch {
	case signer != owner:
		return Voucher{}, fmt.Errorf("%w: %s signed it, the budget is %s's", ErrVoucherSigner, signer, owner)
	case v.Budget != escrowID:
		return Voucher{}, fmt.Errorf("voucher for budget %s, not %s", v.Budget, escrowID)
	case v.Amount > limit:
		return Voucher{}, fmt.Errorf("%w: %d exceeds the budget's %d", ErrVoucherInflated, v.Amount, limit)
	}
	return v, nil
}

// NextVoucher checks that a voucher pays for one more call on top of what
// was paid: exactly paid + price. Reused, lowered and inflated vouchers
// each get their own error.
func NextVoucher(v Voucher, paid, price uint64) error {
	switch {
	case v.Amount == paid:
		return fmt.Errorf("%w: %d is already paid", ErrVoucherReused, paid)
	case v.Amount < paid:
		return fmt.Errorf("%w: %d is below the %d already paid", ErrVoucherLowered, v.Amount, paid)
	case v.Amount != paid+price:
		return fmt.Errorf("%w: %d, one call from %d is %d", ErrVoucherInflated, v.Amount, paid, paid+price)
	}
	return nil
}
