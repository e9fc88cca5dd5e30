package market

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func testKey(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

func testReceipt(req, prov peer.ID, now time.Time) Receipt {
	return Receipt{
		JobID: "01JABCDEFGHJKMNPQRSTVWXYZ0", Attempt: 1,
		Requester: req.String(), Provider: prov.String(), Kind: KindTrain,
		Outcome: OutcomeSucceeded, Fault: FaultNone, Price: 500, Mint: testMint,
		Escrow: &ReceiptEscrow{Multisig: "M", Vault: "V", State: "released", Tx: "T",
			Terms: settlement.Terms{JobID: "01JABCDEFGHJKMNPQRSTVWXYZ0/1", Requester: "R", Provider: "P", Arbiter: "A", Mint: testMint, Amount: 500}},
		Outputs:   []OutputRef{{Name: OutputModel, CID: testCID}},
		StartedAt: now.Add(-time.Minute), EndedAt: now.Add(-time.Second), IssuedAt: now,
	}
}

func sealReceipt(t *testing.T, key crypto.PrivKey, r Receipt) SignedReceipt {
	t.Helper()
	env, err := Seal(key, TypeReceipt, r)
	if err != nil {
		t.Fatal(err)
	}
	return SignedReceipt{Receipt: env}
}

func TestSignedReceipt(t *testing.T) {
	reqKey, req := testKey(t)
	provKey, prov := testKey(t)
	otherKey, _ := testKey(t)
	now := time.Now().UTC()
	sr := sealReceipt(t, reqKey, testReceipt(req, prov, now))

	r, counter, err := sr.Open()
	if err != nil || counter || r.JobID != "01JABCDEFGHJKMNPQRSTVWXYZ0" {
		t.Fatalf("Open() = %+v, %v, %v; want the receipt, not countersigned", r, counter, err)
	}
	id := sr.ID()
	sr.Countersignature, err = Countersign(provKey.Sign, sr.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	if _, counter, err := sr.Open(); err != nil || !counter {
		t.Fatalf("countersigned Open() = %v, %v; want countersigned", counter, err)
	}
	if sr.ID() == id {
		t.Fatal("the countersignature left the receipt's ID as it was")
	}
	id = sr.ID()
	data, _ := sr.Marshal()
	back, err := ParseSignedReceipt(data)
	if err != nil || back.ID() != id {
		t.Fatalf("round trip: %v", err)
	}

	// A countersignature by anyone but the provider is forged.
	forged := sr
	forged.Countersignature, _ = Countersign(otherKey.Sign, sr.Receipt)
	if _, _, err := forged.Open(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("foreign countersignature: %v, want ErrBadSignature", err)
	}
	// A signature of the requester's envelope does not pass as a
	// countersignature: the types differ.
	reused := sr
	reused.Countersignature = sr.Receipt.Signature
	if _, _, err := reused.Open(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("reused signature: %v, want ErrBadSignature", err)
	}
	// A receipt signed by the provider about itself is not the requester's.
	byProvider := sealReceipt(t, provKey, testReceipt(req, prov, now))
	if _, _, err := byProvider.Open(); err == nil || !strings.Contains(err.Error(), "signed by") {
		t.Fatalf("receipt signed by its provider: %v", err)
	}
	// An altered payload breaks the requester's signature.
	tampered := sr
	tampered.Receipt.Payload = []byte(strings.Replace(string(sr.Receipt.Payload), `"price":500`, `"price":5`, 1))
	if _, _, err := tampered.Open(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered payload: %v, want ErrBadSignature", err)
	}
	if _, err := ParseSignedReceipt(make([]byte, MaxReceiptBytes+1)); err == nil {
		t.Fatal("oversized receipt decoded")
	}
}

func TestCheckReceipt(t *testing.T) {
	_, req := testKey(t)
	_, prov := testKey(t)
	now := time.Now().UTC()
	tests := []struct {
		name   string
		change func(*Receipt)
		want   string
	}{
		{"good", func(*Receipt) {}, ""},
		{"failed by provider", func(r *Receipt) { r.Outcome, r.Fault, r.Escrow.State = OutcomeFailed, FaultProvider, "refunded" }, ""},
		{"no escrow", func(r *Receipt) { r.Escrow = nil }, ""},
		{"success blamed on someone", func(r *Receipt) { r.Fault = FaultProvider }, "outcome"},
		{"cancel blamed on the provider", func(r *Receipt) { r.Outcome, r.Fault = OutcomeCancelled, FaultProvider }, "outcome"},
		{"unknown outcome", func(r *Receipt) { r.Outcome = "great" }, "outcome"},
		{"bad job", func(r *Receipt) { r.JobID = "x" }, "job id"},
		{"bad provider", func(r *Receipt) { r.Provider = "nobody" }, "provider"},
		{"self-dealing", func(r *Receipt) { r.Provider = r.Requester }, "requester as its provider"},
		{"attempt 0", func(r *Receipt) { r.Attempt = 0 }, "attempt"},
		{"ends before start", func(r *Receipt) { r.EndedAt = r.StartedAt.Add(-time.Second) }, "ends before"},
		{"issued before end", func(r *Receipt) { r.IssuedAt = r.EndedAt.Add(-time.Second) }, "issued before"},
		{"escrow still locked", func(r *Receipt) { r.Escrow.State = "locked" }, "escrow state"},
		{"escrow without vault", func(r *Receipt) { r.Escrow.Vault = "" }, "no vault"},
		{"another job's escrow", func(r *Receipt) { r.Escrow.Terms.JobID = "01JABCDEFGHJKMNPQRSTVWXYZ1/1" }, "not one of job"},
		{"escrow of another amount", func(r *Receipt) { r.Escrow.Terms.Amount = 5 }, "holds 5"},
		{"escrow without arbiter", func(r *Receipt) { r.Escrow.Terms.Arbiter = "" }, "incomplete"},
		{"bad output", func(r *Receipt) { r.Outputs[0].CID = "nope" }, "output"},
		{"long field", func(r *Receipt) { r.Kind = strings.Repeat("x", 2000) }, "field"},
		{"long reason", func(r *Receipt) { r.Reason = strings.Repeat("x", 2000) }, "reason"},
	}
	for _, tt := range tests {
		r := testReceipt(req, prov, now)
		tt.change(&r)
		err := CheckReceipt(r, req)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: CheckReceipt() = %v, want %q", tt.name, err, tt.want)
		}
	}
	r := testReceipt(req, prov, now)
	if err := r.CheckFresh(now.Add(MaxReceiptAge + time.Second)); err == nil {
		t.Error("a stale receipt is fresh")
	}
	if err := r.CheckFresh(now.Add(-time.Hour)); err == nil {
		t.Error("a receipt from the future is fresh")
	}
	if err := r.CheckFresh(now.Add(time.Minute)); err != nil {
		t.Errorf("a minute-old receipt: %v", err)
	}
}

func TestCheckModel(t *testing.T) {
	reqKey, req := testKey(t)
	_, prov := testKey(t)
	otherKey, other := testKey(t)
	now := time.Now().UTC()
	spec, err := ParseSpec([]byte(trainBase))
	if err != nil {
		t.Fatal(err)
	}
	receipt := sealReceipt(t, reqKey, testReceipt(req, prov, now))
	good := func() ModelRecord {
		return ModelRecord{
			Publisher: req.String(), Name: "mnist-mlp", Description: "a perceptron", License: "MIT",
			WeightsCID: testCID, Spec: *spec.Train, Metrics: map[string]float64{"accuracy": 0.97},
			JobID: "01JABCDEFGHJKMNPQRSTVWXYZ0", Receipt: &receipt, PublishedAt: now,
		}
	}
	otherReceipt := sealReceipt(t, otherKey, testReceipt(other, prov, now))
	failed := testReceipt(req, prov, now)
	failed.Outcome, failed.Fault = OutcomeFailed, FaultProvider
	failedReceipt := sealReceipt(t, reqKey, failed)
	bare := testReceipt(req, prov, now)
	bare.Outputs = nil
	bareReceipt := sealReceipt(t, reqKey, bare)
	tests := []struct {
		name   string
		change func(*ModelRecord)
		signer peer.ID
		want   string
	}{
		{"good", func(*ModelRecord) {}, req, ""},
		{"no receipt", func(m *ModelRecord) { m.Receipt = nil }, req, ""},
		{"wrong signer", func(*ModelRecord) {}, other, "signed by"},
		{"no name", func(m *ModelRecord) { m.Name = "" }, req, "name"},
		{"bad weights", func(m *ModelRecord) { m.WeightsCID = "x" }, req, "weights_cid"},
		{"bad spec", func(m *ModelRecord) { m.Spec.Loss = "" }, req, "spec"},
		{"future", func(m *ModelRecord) { m.PublishedAt = now.Add(time.Hour) }, req, "future"},
		{"receipt of another job", func(m *ModelRecord) { m.JobID = "01JABCDEFGHJKMNPQRSTVWXYZ1" }, req, "for job"},
		{"someone else's receipt", func(m *ModelRecord) { m.Receipt = &otherReceipt }, req, "another requester"},
		{"failed job", func(m *ModelRecord) { m.Receipt = &failedReceipt }, req, "failed"},
		{"receipt naming no weights", func(m *ModelRecord) { m.Receipt = &bareReceipt }, req, "or none"},
		{"other weights", func(m *ModelRecord) { m.WeightsCID = "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba" }, req, "other weights"},
	}
	for _, tt := range tests {
		m := good()
		tt.change(&m)
		err := CheckModel(m, tt.signer, now)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: CheckModel() = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestReceiptAck: a receipt's ack must be its provider's acceptance of
// the receipt's attempt, naming the receipt's vault.
func TestReceiptAck(t *testing.T) {
	reqKey, req := testKey(t)
	provKey, prov := testKey(t)
	otherKey, other := testKey(t)
	r := testReceipt(req, prov, time.Now().UTC())
	good := Ack{JobID: r.JobID, Attempt: r.Attempt, Provider: prov.String(), Accepted: true, Vault: r.Escrow.Vault}
	for _, tc := range []struct {
		name string
		key  crypto.PrivKey
		edit func(*Ack)
		ok   bool
	}{
		{"the provider's", provKey, func(*Ack) {}, true},
		{"signed by another", otherKey, func(a *Ack) { a.Provider = other.String() }, false},
		{"naming another provider", provKey, func(a *Ack) { a.Provider = other.String() }, false},
		{"of another attempt", provKey, func(a *Ack) { a.Attempt = 2 }, false},
		{"of another job", provKey, func(a *Ack) { a.JobID = "01JABCDEFGHJKMNPQRSTVWXYZ1" }, false},
		{"a refusal", provKey, func(a *Ack) { a.Accepted = false }, false},
		{"of another vault", provKey, func(a *Ack) { a.Vault = "W" }, false},
		{"naming no vault", provKey, func(a *Ack) { a.Vault = "" }, false},
	} {
		a := good
		tc.edit(&a)
		env, err := Seal(tc.key, TypeAck, a)
		if err != nil {
			t.Fatal(err)
		}
		sr := sealReceipt(t, reqKey, r)
		sr.Ack = &env
		if _, _, err := sr.Open(); (err == nil) != tc.ok {
			t.Errorf("receipt with an ack %s: Open() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
