package market

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Message types carried in envelopes. The version is part of what is
// signed, so a message of one version can never pass as another.
const (
	TypeCapacity     = "cyxwiz/capacity/1"
	TypeAnnouncement = "cyxwiz/announce/1"
	TypeBid          = "cyxwiz/bid/1"
	TypeAward        = "cyxwiz/award/1"
	TypeAck          = "cyxwiz/ack/1"
	TypeResult       = "cyxwiz/result/1"
	TypeCancel       = "cyxwiz/cancel/1"
	TypeReceipt      = "cyxwiz/receipt/1"
	TypeModel        = "cyxwiz/model/1"
	TypeInferBatch   = "cyxwiz/infer-batch/1"
	TypeService      = "cyxwiz/service/1"
	TypeBudget       = "cyxwiz/budget/1"
	TypeVoucher      = "cyxwiz/voucher/1"
	TypeAttestation  = "cyxwiz/attestation/1"
)

// MaxEnvelopeBytes bounds an encoded envelope.
const MaxEnvelopeBytes = 128 << 10

// Errors of envelopes.
var (
	ErrBadSignature = errors.New("bad signature")
	ErrWrongType    = errors.New("wrong message type")
)

// Envelope is a message signed by its author's peer key. The signature
// covers the type and the payload bytes exactly as sent.
type Envelope struct {
	Type      string `json:"type"`
	Signer    string `json:"signer"`
	Payload   []byte `json:"payload"`
	Signature []byte `json:"sig"`
}

func signedBytes(typ string, payload []byte) []byte {
	return append([]byte(typ+"\n"), payload...)
}

// Seal encodes v as JSON and signs it with key.
func Seal(key crypto.PrivKey, typ string, v any) (Envelope, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return Envelope{}, fmt.Errorf("seal %s: %w", typ, err)
	}
	sig, err := key.Sign(signedBytes(typ, payload))
	if err != nil {
		return Envelope{}, fmt.Errorf("seal %s: %w", typ, err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return Envelope{}, fmt.Errorf("seal %s: %w", typ, err)
	}
	return Envelope{Type: typ, Signer: id.String(), Payload: payload, Signature: sig}, nil
}

// Marshal encodes the envelope.
func (e Envelope) Marshal() ([]byte, error) { return json.Marshal(e) }

// ParseEnvelope decodes an envelope, bounding its size.
func ParseEnvelope(data []byte) (Envelope, error) {
	if len(data) > MaxEnvelopeBytes {
		return Envelope{}, fmt.Errorf("envelope of %d bytes exceeds %d", len(data), MaxEnvelopeBytes)
	}
	if e, ok := parseCanonical(data); ok {
		return e, nil
	}
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", err)
	}
	return e, nil
}

// Open checks the envelope's type and signature and decodes the payload
// into v. It returns the signer.
func (e Envelope) Open(typ string, v any) (peer.ID, error) {
	if e.Type != typ {
		return "", fmt.Errorf("%w: got %q, want %q", ErrWrongType, e.Type, typ)
	}
	signer, pub, err := signerKey(e.Signer)
	if err != nil {
		return "", fmt.Errorf("%w: signer: %v", ErrBadSignature, err)
	}
	ok, err := pub.Verify(signedBytes(e.Type, e.Payload), e.Signature)
	if err != nil || !ok {
		return "", fmt.Errorf("%w: %s by %s", ErrBadSignature, typ, signer)
	}
	if err := json.Unmarshal(e.Payload, v); err != nil {
		return "", fmt.Errorf("decode %s: %w", typ, err)
	}
	return signer, nil
}
