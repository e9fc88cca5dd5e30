package market

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Outcomes a receipt records for one attempt of a job.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled"
	// OutcomeMismatch: a replica of a replicated job whose result differs
	// from the majority of the replicas'; its fault is the provider's.
	OutcomeMismatch = "mismatch"
)

// Faults: whose fault a failed or cancelled attempt was.
const (
	// FaultNone: the attempt succeeded.
	FaultNone = "none"
	// FaultProvider: the provider failed the job (no result by the
	// deadline, unreachable, outputs gone, a failure of its own).
	FaultProvider = "provider"
	// FaultRequester: the job itself failed (its program or inputs), or
	// its requester cancelled it.
	FaultRequester = "requester"
)

// Receipt bounds.
const (
	// MaxReceiptAge is how old a receipt may be when it is gossiped; an
	// older one is a replay.
	MaxReceiptAge = 10 * time.Minute
	// MaxReceiptBytes bounds an encoded signed receipt.
	MaxReceiptBytes = 16 << 10
	// MaxReceiptOutputs bounds the outputs a receipt names.
	MaxReceiptOutputs = 16
)

// ReceiptEscrow is where a paid attempt's price went: the escrow's terms
// (the provider's ledger account among them, paid on release), its vault
// and the ledger transaction that settled it, which anyone can look up.
// On a ledger whose vault addresses follow from the terms, the vault
// proves the terms: another job's vault does not pass for this one's.
type ReceiptEscrow struct {
	Terms    settlement.Terms `json:"terms"`
	Multisig string           `json:"multisig"`
	Vault    string           `json:"vault"`
	// State is the escrow's end: released (the provider was paid) or
	// refunded.
	State string `json:"state"`
	// Tx is the settling transaction, "" when the ledger named none (a
	// payout landed while the requester was away).
	Tx string `json:"tx,omitempty"`
}

// Receipt is the requester's signed account of how one attempt of a job
// ended. The provider countersigns it when it agrees.
type Receipt struct {
	JobID     string `json:"job_id"`
	Attempt   int    `json:"attempt"`
	Requester string `json:"requester"`
	Provider  string `json:"provider"`
	Kind      string `json:"kind"`
	Outcome   string `json:"outcome"`
	Fault     string `json:"fault"`
	Reason    string `json:"reason,omitempty"`
	// Price is what the award promised, in base units of Mint.
	Price  uint64         `json:"price"`
	Mint   string         `json:"mint,omitempty"`
	Escrow *ReceiptEscrow `json:"escrow,omitempty"`
	// Outputs are the output CIDs, when the requester chooses to publish
	// them.
	Outputs   []OutputRef `json:"outputs,omitempty"`
	StartedAt time.Time   `json:"started_at"`
	EndedAt   time.Time   `json:"ended_at"`
	IssuedAt  time.Time   `json:"issued_at"`
}

// CheckReceipt validates a receipt against its signer, the requester.
func CheckReceipt(r Receipt, signer peer.ID) error {
	if r.Requester != signer.String() {
		return fmt.Errorf("receipt by %s signed by %s", r.Requester, signer)
	}
	if err := CheckJobID(r.JobID); err != nil {
		return err
	}
	if _, err := peer.Decode(r.Provider); err != nil {
		return fmt.Errorf("receipt provider: %w", err)
	}
	if r.Provider == r.Requester {
		return errors.New("receipt names the requester as its provider")
	}
	switch {
	case r.Attempt < 1 || r.Attempt > maxAttempt:
		return fmt.Errorf("attempt %d is outside 1..%d", r.Attempt, maxAttempt)
	case !validOutcome(r.Outcome, r.Fault):
		return fmt.Errorf("receipt outcome %q with fault %q is not one of succeeded/none, failed/provider, failed/requester, cancelled/requester, mismatch/provider", r.Outcome, r.Fault)
	case len(r.Reason) > maxFailureReasonLen:
		return errors.New("receipt reason too long")
	case len(r.Outputs) > MaxReceiptOutputs:
		return fmt.Errorf("receipt names %d outputs, at most %d", len(r.Outputs), MaxReceiptOutputs)
	case r.EndedAt.Before(r.StartedAt):
		return errors.New("receipt ends before it starts")
	case r.IssuedAt.Before(r.EndedAt):
		return errors.New("receipt is issued before the attempt ended")
	}
	fields := []string{r.Kind, r.Mint}
	if e := r.Escrow; e != nil {
		if e.State != "released" && e.State != "refunded" {
			return fmt.Errorf("receipt escrow state %q is not released or refunded", e.State)
		}
		if e.Vault == "" || e.Multisig == "" {
			return errors.New("receipt escrow names no vault")
		}
		switch t := e.Terms; {
		case !strings.HasPrefix(t.JobID, r.JobID+"/"):
			return fmt.Errorf("receipt escrow %q is not one of job %s", t.JobID, r.JobID)
		case t.Amount != r.Price || t.Mint != r.Mint:
			return fmt.Errorf("receipt escrow holds %d of %s, the receipt says %d of %s", t.Amount, t.Mint, r.Price, r.Mint)
		case t.Requester == "" || t.Provider == "" || t.Arbiter == "":
			return errors.New("receipt escrow terms are incomplete")
		}
		t := e.Terms
		fields = append(fields, e.Multisig, e.Vault, e.Tx, t.JobID, t.Requester, t.Provider, t.Arbiter)
	}
	for _, o := range r.Outputs {
		if err := checkCID(o.CID); err != nil {
			return fmt.Errorf("receipt output %s: %w", o.Name, err)
		}
		fields = append(fields, o.Name)
	}
	return checkFields("receipt", fields...)
}

func validOutcome(outcome, fault string) bool {
	switch outcome {
	case OutcomeSucceeded:
		return fault == FaultNone
	case OutcomeFailed:
		return fault == FaultProvider || fault == FaultRequester
	case OutcomeCancelled:
		return fault == FaultRequester
	case OutcomeMismatch:
		return fault == FaultProvider
	}
	return false
}

// SignedReceipt is a receipt sealed by its requester and, when the
// provider agrees with it, countersigned by the provider: a signature by
// the provider's key over the same payload, under its own type.
type SignedReceipt struct {
	Receipt Envelope `json:"receipt"`
	// Countersignature is the provider's signature, absent when the
	// provider refused or could not be reached.
	Countersignature []byte `json:"countersignature,omitempty"`
	// Ack is the provider's signed ack of the attempt's award, naming the
	// escrow's vault when there is one: proof, which a provider that
	// refuses to countersign cannot take back, that it took the job.
	Ack *Envelope `json:"ack,omitempty"`
}

// TypeReceiptCountersign is what a provider's countersignature covers,
// with the receipt's payload: a signature of one type never passes for
// another.
const TypeReceiptCountersign = "cyxwiz/receipt-countersign/1"

// Countersign signs the receipt's payload with the provider's key sign.
func Countersign(sign func([]byte) ([]byte, error), receipt Envelope) ([]byte, error) {
	sig, err := sign(signedBytes(TypeReceiptCountersign, receipt.Payload))
	if err != nil {
		return nil, fmt.Errorf("countersign receipt: %w", err)
	}
	return sig, nil
}

// ID names a signed receipt: the hex SHA-256 of its encoding (Marshal),
// countersignature included.
func (s SignedReceipt) ID() string {
	data, _ := s.Marshal() // a struct of bytes and strings always encodes
	return hashID(data)
}

// Marshal encodes the signed receipt.
func (s SignedReceipt) Marshal() ([]byte, error) { return json.Marshal(s) }

// ParseSignedReceipt decodes a signed receipt, bounding its size.
func ParseSignedReceipt(data []byte) (SignedReceipt, error) {
	if len(data) > MaxReceiptBytes {
		return SignedReceipt{}, fmt.Errorf("signed receipt of %d bytes exceeds %d", len(data), MaxReceiptBytes)
	}
	var s SignedReceipt
	if err := json.Unmarshal(data, &s); err != nil {
		return SignedReceipt{}, fmt.Errorf("decode signed receipt: %w", err)
	}
	return s, nil
}

// Open checks the requester's signature, the receipt's fields and, when
// present, the provider's countersignature. It returns the receipt and
// whether the provider countersigned it; a countersignature that does not
// verify is an error, not a missing one.
func (s SignedReceipt) Open() (Receipt, bool, error) {
	var r Receipt
	signer, err := s.Receipt.Open(TypeReceipt, &r)
	if err != nil {
		return Receipt{}, false, err
	}
	if err := CheckReceipt(r, signer); err != nil {
		return Receipt{}, false, err
	}
	if s.Ack != nil {
		if err := checkAck(*s.Ack, r); err != nil {
			return Receipt{}, false, err
		}
	}
	if len(s.Countersignature) == 0 {
		return r, false, nil
	}
	prov, _ := peer.Decode(r.Provider) // checked above
	pub, err := prov.ExtractPublicKey()
	if err != nil {
		return Receipt{}, false, fmt.Errorf("%w: provider key: %v", ErrBadSignature, err)
	}
	ok, err := pub.Verify(signedBytes(TypeReceiptCountersign, s.Receipt.Payload), s.Countersignature)
	if err != nil || !ok {
		return Receipt{}, false, fmt.Errorf("%w: countersignature of %s", ErrBadSignature, r.Provider)
	}
	return r, true, nil
}

// checkAck checks that a receipt's ack is its provider's acceptance of
// the receipt's attempt, and of its escrow.
func checkAck(env Envelope, r Receipt) error {
	var ack Ack
	signer, err := env.Open(TypeAck, &ack)
	if err != nil {
		return fmt.Errorf("receipt ack: %w", err)
	}
	vault := ""
	if r.Escrow != nil {
		vault = r.Escrow.Vault
	}
	switch {
	case signer.String() != r.Provider || ack.Provider != r.Provider:
		return fmt.Errorf("%w: receipt ack signed by %s, not its provider %s", ErrBadSignature, signer, r.Provider)
	case ack.JobID != r.JobID || ack.Attempt != r.Attempt || !ack.Accepted:
		return errors.New("receipt ack is not an acceptance of the receipt's attempt")
	case ack.Vault != vault:
		return fmt.Errorf("receipt ack names vault %q, the receipt %q", ack.Vault, vault)
	}
	return nil
}

// CheckFresh refuses a receipt issued too long ago, or in the future, to
// be gossiped now.
func (r Receipt) CheckFresh(now time.Time) error {
	if now.Sub(r.IssuedAt) > MaxReceiptAge {
		return errors.New("receipt is stale")
	}
	if r.IssuedAt.After(now.Add(MaxClockSkew)) {
		return errors.New("receipt is dated in the future")
	}
	return nil
}
