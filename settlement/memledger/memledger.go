// Package memledger implements settlement.Escrow on an in-memory ledger
// with the rules of the Solana design: a 2-of-3 multisig of requester,
// provider and arbiter owns one vault per job, payouts need two member
// signatures (a split pays the provider its amount and the requester the
// rest), the arbiter co-signs a refund only after the deadline by the
// ledger's clock, a settled vault cannot pay twice, and every transaction
// costs a fee per signature in the native mint. Other packages use it in
// their tests; it passes the same conformance suite as the real ledger.
package memledger

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/mr-tron/base58"
)

// NativeMint is the wrapped-SOL mint, in which fees are paid.
const NativeMint = "So11111111111111111111111111111111111111112"

// FeePerSignature is the fee of a transaction per signature, in lamports.
const FeePerSignature = 5000

type vault struct {
	multisig string
	members  [3]string
	mint     string
	amount   uint64
	// The memo of the lock: the job and who is who.
	jobID    string
	roles    [3]string // requester, provider, arbiter
	deadline time.Time
	state    settlement.State
	paidTo   string
	returned uint64 // what a split paid back to the requester
}

// Ledger is the shared state of every party.
type Ledger struct {
	mu       sync.Mutex
	offset   time.Duration
	balances map[string]map[string]uint64 // owner -> mint -> amount
	vaults   map[string]*vault
	used     map[[32]byte]bool // settled payouts, against replays
	fees     uint64
}

// New returns an empty ledger.
func New() *Ledger {
	return &Ledger{balances: map[string]map[string]uint64{}, vaults: map[string]*vault{}, used: map[[32]byte]bool{}}
}

// Fund credits an account, as an airdrop or a mint authority would.
func (l *Ledger) Fund(owner, mint string, amount uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.credit(owner, mint, amount)
}

// Warp moves the ledger's clock.
func (l *Ledger) Warp(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.offset += d
}

// Now is the ledger's clock.
func (l *Ledger) Now() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Add(l.offset)
}

// Fees returns the fees collected so far, in lamports.
func (l *Ledger) Fees() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fees
}

func (l *Ledger) credit(owner, mint string, amount uint64) {
	if l.balances[owner] == nil {
		l.balances[owner] = map[string]uint64{}
	}
	l.balances[owner][mint] += amount
}

func (l *Ledger) debit(owner, mint string, amount uint64) error {
	if l.balances[owner][mint] < amount {
		return fmt.Errorf("%w: %s has %d of %s, needs %d", settlement.ErrFunds, owner, l.balances[owner][mint], mint, amount)
	}
	l.balances[owner][mint] -= amount
	return nil
}

// charge takes the fee of a transaction with n signatures from its payer.
func (l *Ledger) charge(payer string, n int) error {
	fee := uint64(n) * FeePerSignature
	if err := l.debit(payer, NativeMint, fee); err != nil {
		return err
	}
	l.fees += fee
	return nil
}

// Party returns the escrow as seen by the holder of key.
func (l *Ledger) Party(key ed25519.PrivateKey) *Party {
	return &Party{l: l, key: key, addr: Address(key.Public().(ed25519.PublicKey))}
}

// Address is the base58 form of a public key, as Solana writes accounts.
func Address(pub ed25519.PublicKey) string { return base58.Encode(pub) }

// Party is one member's view of the ledger. It implements settlement.Escrow.
type Party struct {
	l    *Ledger
	key  ed25519.PrivateKey
	addr string
}

var _ settlement.Escrow = (*Party)(nil)

// Address returns the party's account.
func (p *Party) Address() string { return p.addr }

func members(t settlement.Terms) [3]string {
	m := []string{t.Requester, t.Provider, t.Arbiter}
	sort.Strings(m)
	return [3]string{m[0], m[1], m[2]}
}

func derive(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return base58.Encode(sum[:])
}

// DeriveRef implements settlement.RefDeriver: as on Solana, the vault's
// address follows from the terms, all of them.
func (p *Party) DeriveRef(t settlement.Terms) (settlement.Ref, error) {
	m := members(t)
	return settlement.Ref{
		Multisig: derive(m[0], m[1], m[2]),
		Vault: derive("vault", t.JobID, t.Requester, t.Provider, t.Arbiter, t.Mint,
			strconv.FormatUint(t.Amount, 10), strconv.FormatInt(t.Deadline.UnixNano(), 10)),
	}, nil
}

// Lock moves the amount into a new vault owned by the triple's multisig.
// One transaction, signed by the requester.
func (p *Party) Lock(_ context.Context, t settlement.Terms) (settlement.Ref, error) {
	if err := t.Validate(); err != nil {
		return settlement.Ref{}, err
	}
	if t.Requester != p.addr {
		return settlement.Ref{}, fmt.Errorf("lock: %w: only the requester locks funds", settlement.ErrNotMember)
	}
	m := members(t)
	ref, _ := p.DeriveRef(t)
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.vaults[ref.Vault]; ok {
		return settlement.Ref{}, fmt.Errorf("lock: %w: these terms are locked already", settlement.ErrClosed)
	}
	need := t.Amount
	if t.Mint == NativeMint {
		need += FeePerSignature
	}
	if l.balances[p.addr][t.Mint] < need {
		return settlement.Ref{}, fmt.Errorf("lock: %w", settlement.ErrFunds)
	}
	if err := l.charge(p.addr, 1); err != nil {
		return settlement.Ref{}, fmt.Errorf("lock: %w", err)
	}
	if err := l.debit(p.addr, t.Mint, t.Amount); err != nil {
		return settlement.Ref{}, fmt.Errorf("lock: %w", err)
	}
	l.vaults[ref.Vault] = &vault{multisig: ref.Multisig, members: m, mint: t.Mint, amount: t.Amount,
		jobID: t.JobID, roles: [3]string{t.Requester, t.Provider, t.Arbiter}, deadline: t.Deadline, state: settlement.Locked}
	return ref, nil
}

// Verify checks the vault against the terms.
func (p *Party) Verify(_ context.Context, ref settlement.Ref, t settlement.Terms) error {
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.vaults[ref.Vault]
	switch {
	case !ok:
		return fmt.Errorf("%w: no vault %s", settlement.ErrVaultMismatch, ref.Vault)
	case v.multisig != ref.Multisig || v.members != members(t):
		return fmt.Errorf("%w: other members", settlement.ErrVaultMismatch)
	case v.mint != t.Mint:
		return fmt.Errorf("%w: mint %s, want %s", settlement.ErrVaultMismatch, v.mint, t.Mint)
	case v.amount < t.Amount:
		return fmt.Errorf("%w: holds %d, want %d", settlement.ErrVaultMismatch, v.amount, t.Amount)
	case v.jobID != t.JobID || !v.deadline.Equal(t.Deadline) || v.roles != [3]string{t.Requester, t.Provider, t.Arbiter}:
		return fmt.Errorf("%w: terms memo differs", settlement.ErrVaultMismatch)
	case v.state != settlement.Locked:
		return fmt.Errorf("%w: %s", settlement.ErrClosed, v.state)
	}
	return nil
}

// payload is what the members sign: Amount of Mint to To, and for a split
// Rest to RestTo (the requester), which together empty the vault.
type payload struct {
	Kind     settlement.PayoutKind `json:"kind"`
	Vault    string                `json:"vault"`
	Multisig string                `json:"multisig"`
	To       string                `json:"to"`
	Mint     string                `json:"mint"`
	Amount   uint64                `json:"amount"`
	Rest     uint64                `json:"rest,omitempty"`
	RestTo   string                `json:"rest_to,omitempty"`
	Nonce    string                `json:"nonce"`
}

type tx struct {
	Payload    []byte            `json:"payload"`
	Signatures map[string][]byte `json:"signatures"`
}

// roles returns who proposes and who co-signs a payout of kind.
func roles(kind settlement.PayoutKind, t settlement.Terms) (proposer, cosigner string, err error) {
	p, c, _, err := kind.Roles()
	return t.Party(p), t.Party(c), err
}

// Propose builds and signs a payout of the whole vault.
func (p *Party) Propose(_ context.Context, ref settlement.Ref, t settlement.Terms, kind settlement.PayoutKind) (settlement.Payout, error) {
	if kind.IsSplit() {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w: a split takes an amount (ProposeSplit)", kind, settlement.ErrInvalidTerms)
	}
	proposer, _, err := roles(kind, t)
	if err != nil {
		return settlement.Payout{}, err
	}
	if proposer != p.addr {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w: this party does not propose it", kind, settlement.ErrNotMember)
	}
	to, err := kind.Recipient(t)
	if err != nil {
		return settlement.Payout{}, err
	}
	return p.sign(settlement.Payout{Kind: kind, Ref: ref}, payload{Kind: kind, Vault: ref.Vault, Multisig: ref.Multisig, To: to, Mint: t.Mint, Amount: t.Amount})
}

// ProposeSplit builds and signs a split: amount to the provider, the rest
// of the vault to the requester. Like the Solana ledger it reads the vault
// first: a settled one fails with settlement.ErrClosed.
func (p *Party) ProposeSplit(_ context.Context, ref settlement.Ref, t settlement.Terms, kind settlement.PayoutKind, amount uint64) (settlement.Payout, error) {
	if !kind.IsSplit() {
		return settlement.Payout{}, fmt.Errorf("propose split: %w: %q is not a split kind", settlement.ErrInvalidTerms, kind)
	}
	if err := t.Validate(); err != nil {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w", kind, err)
	}
	if err := settlement.CheckSplit(t, amount); err != nil {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w", kind, err)
	}
	proposer, _, err := roles(kind, t)
	if err != nil {
		return settlement.Payout{}, err
	}
	if proposer != p.addr {
		return settlement.Payout{}, fmt.Errorf("propose %s: %w: this party does not propose it", kind, settlement.ErrNotMember)
	}
	p.l.mu.Lock()
	v, ok := p.l.vaults[ref.Vault]
	var state settlement.State
	if ok {
		state = v.state
	}
	p.l.mu.Unlock()
	switch {
	case !ok:
		return settlement.Payout{}, fmt.Errorf("propose %s: %w: no vault %s", kind, settlement.ErrVaultMismatch, ref.Vault)
	case state != settlement.Locked:
		return settlement.Payout{}, fmt.Errorf("propose %s: %w: %s", kind, settlement.ErrClosed, state)
	}
	return p.sign(settlement.Payout{Kind: kind, Ref: ref, Amount: amount}, payload{Kind: kind, Vault: ref.Vault, Multisig: ref.Multisig,
		To: t.Provider, Mint: t.Mint, Amount: amount, Rest: t.Amount - amount, RestTo: t.Requester})
}

// sign adds a fresh nonce to body, signs it and returns po with the
// signed transaction.
func (p *Party) sign(po settlement.Payout, body payload) (settlement.Payout, error) {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	body.Nonce = hex.EncodeToString(nonce)
	raw, err := json.Marshal(body)
	if err != nil {
		return settlement.Payout{}, err
	}
	if po.Tx, err = json.Marshal(tx{Payload: raw, Signatures: map[string][]byte{p.addr: ed25519.Sign(p.key, raw)}}); err != nil {
		return settlement.Payout{}, err
	}
	return po, nil
}

// CoSign checks the payout against the terms, signs and submits it.
func (p *Party) CoSign(_ context.Context, po settlement.Payout, t settlement.Terms) (string, error) {
	proposer, cosigner, err := roles(po.Kind, t)
	if err != nil {
		return "", err
	}
	if cosigner != p.addr {
		return "", fmt.Errorf("co-sign %s: %w: this party does not co-sign it", po.Kind, settlement.ErrNotMember)
	}
	var x tx
	if err := json.Unmarshal(po.Tx, &x); err != nil {
		return "", fmt.Errorf("%w: %w", settlement.ErrTampered, err)
	}
	var body payload
	if err := json.Unmarshal(x.Payload, &body); err != nil {
		return "", fmt.Errorf("%w: %w", settlement.ErrTampered, err)
	}
	to, _ := po.Kind.Recipient(t)
	switch {
	case body.Kind != po.Kind, body.Vault != po.Ref.Vault, body.Multisig != po.Ref.Multisig:
		return "", fmt.Errorf("%w: the transaction is not the payout described", settlement.ErrTampered)
	case po.Kind.IsSplit():
		if err := checkSplit(body, po, t); err != nil {
			return "", fmt.Errorf("co-sign %s: %w", po.Kind, err)
		}
	case body.To != to, body.Mint != t.Mint, body.Amount != t.Amount, body.Rest != 0, body.RestTo != "":
		return "", fmt.Errorf("%w: pays %d of %s to %s, the terms say %d of %s to %s",
			settlement.ErrTampered, body.Amount, body.Mint, body.To, t.Amount, t.Mint, to)
	}
	pub, err := publicKey(proposer)
	if err != nil || !ed25519.Verify(pub, x.Payload, x.Signatures[proposer]) {
		return "", fmt.Errorf("%w: no valid signature of the proposer", settlement.ErrTampered)
	}
	if po.Kind == settlement.Refund && !p.l.Now().After(t.Deadline) {
		return "", fmt.Errorf("co-sign refund: %w (%s)", settlement.ErrTooEarly, t.Deadline.Format(time.RFC3339))
	}
	x.Signatures[p.addr] = ed25519.Sign(p.key, x.Payload)
	return p.l.submit(x, body, p.addr)
}

// checkSplit checks a split's payload: po.Amount to the provider, the
// rest of the terms' amount (all a vault here holds) to the requester.
func checkSplit(body payload, po settlement.Payout, t settlement.Terms) error {
	if err := settlement.CheckSplit(t, po.Amount); err != nil {
		return err
	}
	if body.To != t.Provider || body.Mint != t.Mint || body.Amount != po.Amount || body.RestTo != t.Requester || body.Rest != t.Amount-po.Amount {
		return fmt.Errorf("%w: pays %d of %s to %s and %d to %s, the split is %d to %s and %d to %s",
			settlement.ErrTampered, body.Amount, body.Mint, body.To, body.Rest, body.RestTo,
			po.Amount, t.Provider, t.Amount-po.Amount, t.Requester)
	}
	return nil
}

func publicKey(addr string) (ed25519.PublicKey, error) {
	b, err := base58.Decode(addr)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%q is not an account address", addr)
	}
	return ed25519.PublicKey(b), nil
}

// submit applies a signed payout: two distinct member signatures, a
// locked vault, no replay.
func (l *Ledger) submit(x tx, body payload, payer string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.vaults[body.Vault]
	if !ok || v.multisig != body.Multisig {
		return "", fmt.Errorf("submit: %w: no such vault", settlement.ErrVaultMismatch)
	}
	digest := sha256.Sum256(x.Payload)
	if l.used[digest] || v.state != settlement.Locked {
		return "", fmt.Errorf("submit: %w", settlement.ErrClosed)
	}
	valid := 0
	for _, m := range v.members {
		pub, err := publicKey(m)
		if err == nil && ed25519.Verify(pub, x.Payload, x.Signatures[m]) {
			valid++
		}
	}
	if valid < 2 {
		return "", fmt.Errorf("submit: %w: %d of the 2 member signatures needed", settlement.ErrSignatures, valid)
	}
	if body.Mint != v.mint || body.Amount > v.amount || body.Rest != v.amount-body.Amount || (body.Rest > 0 && body.RestTo != v.roles[0]) {
		return "", fmt.Errorf("submit: %w", settlement.ErrVaultMismatch)
	}
	if err := l.charge(payer, len(x.Signatures)); err != nil {
		return "", fmt.Errorf("submit: %w", err)
	}
	l.used[digest] = true
	l.credit(body.To, v.mint, body.Amount)
	if body.Rest > 0 {
		l.credit(body.RestTo, v.mint, body.Rest)
	}
	v.amount, v.paidTo, v.returned = 0, body.To, body.Rest
	v.state = settlement.Released
	if body.Kind == settlement.Refund || body.Kind == settlement.AwardRequester {
		v.state = settlement.Refunded
	}
	return hex.EncodeToString(digest[:8]), nil
}

// Status reads a vault.
func (p *Party) Status(_ context.Context, ref settlement.Ref) (settlement.Status, error) {
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.vaults[ref.Vault]
	if !ok {
		return settlement.Status{}, fmt.Errorf("%w: no vault %s", settlement.ErrVaultMismatch, ref.Vault)
	}
	return settlement.Status{State: v.state, Amount: v.amount, PaidTo: v.paidTo, Returned: v.returned}, nil
}

// Balance reads an account's balance of a mint.
func (p *Party) Balance(_ context.Context, owner, mint string) (uint64, error) {
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.balances[owner][mint], nil
}

// LedgerTime implements settlement.LedgerClock.
func (p *Party) LedgerTime(context.Context) (time.Time, error) { return p.l.Now(), nil }

// NativeBalance implements settlement.NativeBalancer: the owner's balance
// of NativeMint, which pays the fees here.
func (p *Party) NativeBalance(ctx context.Context, owner string) (uint64, error) {
	return p.Balance(ctx, owner, NativeMint)
}
