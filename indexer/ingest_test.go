package indexer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/market"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tamper flips one byte of the envelope's payload and re-encodes it: the
// signature no longer covers what it carries.
func tamper(t *testing.T, data []byte, old, new string) []byte {
	t.Helper()
	env, err := market.ParseEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(env.Payload, []byte(old)) {
		t.Fatalf("payload %s lacks %q", env.Payload, old)
	}
	env.Payload = bytes.Replace(env.Payload, []byte(old), []byte(new), 1)
	out, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pad makes data longer than n bytes by appending JSON whitespace, which
// leaves its meaning (and its signatures) intact.
func pad(data []byte, n int) []byte {
	return append(append([]byte{}, data...), bytes.Repeat([]byte(" "), n+1-len(data))...)
}

// TestCapacityRowAttacks attacks CapacityRow: a record whose payload was
// changed after signing, one signed by a key other than the provider's it
// names, another message type, a record dated in the future, one living
// longer than a day, an oversized envelope and garbage must all be
// refused; a good record gives a row with every field of the record.
func TestCapacityRowAttacks(t *testing.T) {
	provKey, prov := newKey(t)
	attackerKey, _ := newKey(t)
	seen := time.Now().Truncate(time.Second)
	good := goodCapacity(prov, 7, seen.Add(-time.Minute))
	data := seal(t, provKey, market.TypeCapacity, good)

	row, err := CapacityRow(data, seen)
	if err != nil {
		t.Fatalf("good record refused: %v", err)
	}
	want := indexdb.Capacity{Peer: prov.String(), Seq: 7, IssuedAt: good.IssuedAt.UTC(), ExpiresAt: good.ExpiresAt.UTC(),
		SeenAt: seen.UTC(), CPUCores: 8, MemoryMiB: 16384, DiskMiB: 100000,
		GPUs:      []indexdb.GPU{{Model: "NVIDIA H100", MemoryMiB: 81920}, {Model: "NVIDIA A100", MemoryMiB: 40960}},
		Executors: []string{market.KindWASM, market.KindTrain}, PricePerCPUSecond: 7, PriceMinimum: 100, Mint: testMint,
		BenchScore: 2.5, Record: data}
	if !reflect.DeepEqual(row, want) {
		t.Errorf("row:\n got %+v\nwant %+v", row, want)
	}
	if err := row.Check(); err != nil {
		t.Errorf("the row of a good record fails the store's check: %v", err)
	}

	// A record seen after it expired still counts for the time it covered.
	if _, err := CapacityRow(data, good.ExpiresAt.Add(time.Hour)); err != nil {
		t.Errorf("a record seen after it expired: %v", err)
	}
	// Within the clock skew, a record from a little ahead is fine.
	ahead := goodCapacity(prov, 8, seen.Add(market.MaxClockSkew/2))
	if _, err := CapacityRow(seal(t, provKey, market.TypeCapacity, ahead), seen); err != nil {
		t.Errorf("a record %v ahead: %v", market.MaxClockSkew/2, err)
	}

	future := goodCapacity(prov, 9, seen.Add(time.Minute))
	longLived := goodCapacity(prov, 10, seen)
	longLived.ExpiresAt = seen.Add(25 * time.Hour)
	empty := goodCapacity(prov, 11, seen)
	empty.Executors = nil
	forVictim := goodCapacity(prov, 12, seen) // names prov, signed by the attacker
	otherSigner := seal(t, attackerKey, market.TypeCapacity, forVictim)
	swapped, _ := market.ParseEnvelope(otherSigner)
	swapped.Signer = prov.String() // claims prov as signer, with the attacker's signature
	swappedData, _ := swapped.Marshal()

	for name, tc := range map[string]struct {
		data []byte
		is   error
		want string
	}{
		"tampered payload":        {data: tamper(t, data, `"seq":7`, `"seq":9`), is: market.ErrBadSignature},
		"signed by another key":   {data: otherSigner, want: "signed by"},
		"signer swapped":          {data: swappedData, is: market.ErrBadSignature},
		"announcement envelope":   {data: seal(t, provKey, market.TypeAnnouncement, good), is: market.ErrWrongType},
		"receipt envelope":        {data: seal(t, provKey, market.TypeReceipt, good), is: market.ErrWrongType},
		"dated in the future":     {data: seal(t, provKey, market.TypeCapacity, future), want: "future"},
		"lives longer than a day": {data: seal(t, provKey, market.TypeCapacity, longLived), want: "longer than a day"},
		"offers nothing":          {data: seal(t, provKey, market.TypeCapacity, empty), want: "offers nothing"},
		"oversized":               {data: pad(data, market.MaxEnvelopeBytes), want: "exceeds"},
		"garbage":                 {data: []byte("\x00not json"), want: "decode"},
		"empty":                   {data: nil, want: "decode"},
	} {
		_, err := CapacityRow(tc.data, seen)
		switch {
		case err == nil:
			t.Errorf("%s: accepted", name)
		case tc.is != nil && !errors.Is(err, tc.is):
			t.Errorf("%s: %v, want %v", name, err, tc.is)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v, want it to say %q", name, err, tc.want)
		}
	}
}

// TestAnnouncementRowAttacks attacks AnnouncementRow: a tampered payload,
// an announcement in another requester's name, another message type and a
// stale (replayed) announcement are refused; a good one gives its row.
func TestAnnouncementRowAttacks(t *testing.T) {
	reqKey, req := newKey(t)
	attackerKey, _ := newKey(t)
	seen := time.Now().Truncate(time.Second)
	a := goodAnnouncement(t, req, testJob, seen.Add(-time.Second))
	data := seal(t, reqKey, market.TypeAnnouncement, a)

	row, err := AnnouncementRow(data, seen)
	if err != nil {
		t.Fatalf("good announcement refused: %v", err)
	}
	want := indexdb.Announcement{JobID: testJob, Attempt: 1, Requester: req.String(), Kind: market.KindWASM, CPU: 2,
		MemoryMiB: 256, WallSeconds: 60, MaxPrice: 1000000, Mint: testMint, IssuedAt: a.IssuedAt.UTC(), SeenAt: seen.UTC(),
		Record: data}
	if !reflect.DeepEqual(row, want) {
		t.Errorf("row:\n got %+v\nwant %+v", row, want)
	}

	for name, tc := range map[string]struct {
		data []byte
		is   error
		want string
	}{
		"tampered payload":     {data: tamper(t, data, `"attempt":1`, `"attempt":2`), is: market.ErrBadSignature},
		"in another's name":    {data: seal(t, attackerKey, market.TypeAnnouncement, a), want: "signed by"},
		"capacity envelope":    {data: seal(t, reqKey, market.TypeCapacity, a), is: market.ErrWrongType},
		"replayed (stale)":     {data: seal(t, reqKey, market.TypeAnnouncement, goodAnnouncement(t, req, testJob, seen.Add(-market.MaxAnnouncementAge-time.Second))), want: "stale"},
		"dated in the future":  {data: seal(t, reqKey, market.TypeAnnouncement, goodAnnouncement(t, req, testJob, seen.Add(time.Hour))), want: "future"},
		"oversized":            {data: pad(data, market.MaxEnvelopeBytes), want: "exceeds"},
		"bad job id":           {data: seal(t, reqKey, market.TypeAnnouncement, goodAnnouncement(t, req, "x'; DROP TABLE jobs; --", seen)), want: "job id"},
		"not an envelope (js)": {data: []byte(`[1,2,3]`), want: "decode"},
	} {
		_, err := AnnouncementRow(tc.data, seen)
		switch {
		case err == nil:
			t.Errorf("%s: accepted", name)
		case tc.is != nil && !errors.Is(err, tc.is):
			t.Errorf("%s: %v, want %v", name, err, tc.is)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v, want it to say %q", name, err, tc.want)
		}
	}
}

// TestReceiptRowAttacks attacks ReceiptRow: a tampered receipt, one
// signed by its provider instead of its requester, a forged or reused
// countersignature, another message type, an oversized one and, when
// fresh, a stale (replayed) or future-dated one are refused. A stale one
// is kept when fresh is false (history). A good one gives a row whose ID
// is the SHA-256 of its Record, with the countersigned flag and the
// escrow as the receipt states them; another encoding of the same receipt
// gets the same ID.
func TestReceiptRowAttacks(t *testing.T) {
	reqKey, req := newKey(t)
	provKey, prov := newKey(t)
	otherKey, _ := newKey(t)
	seen := time.Now().Truncate(time.Second)
	r := goodReceipt(req, prov, testJob, seen.Add(-time.Second))
	counter := signReceipt(t, reqKey, provKey, r)
	data := marshalReceipt(t, counter)

	row, err := ReceiptRow(data, seen, true)
	if err != nil {
		t.Fatalf("good receipt refused: %v", err)
	}
	if row.ID != sha(row.Record) || row.ID != counter.ID() {
		t.Errorf("ID %s is not the SHA-256 of the record (%s) nor the receipt's ID (%s)", row.ID, sha(row.Record), counter.ID())
	}
	want := indexdb.Receipt{ID: counter.ID(), JobID: testJob, Attempt: 1, Requester: req.String(), Provider: prov.String(),
		Kind: market.KindTrain, Outcome: market.OutcomeSucceeded, Fault: market.FaultNone, Price: 500, Mint: testMint,
		EscrowState: "released", EscrowTx: "T", Outputs: []string{testCID},
		StartedAt: r.StartedAt.UTC(), EndedAt: r.EndedAt.UTC(), IssuedAt: r.IssuedAt.UTC(), SeenAt: seen.UTC(),
		Countersigned: true, Record: data}
	if !reflect.DeepEqual(row, want) {
		t.Errorf("row:\n got %+v\nwant %+v", row, want)
	}
	if err := row.Check(); err != nil {
		t.Errorf("the row of a good receipt fails the store's check: %v", err)
	}

	// Without the countersignature: another receipt, not countersigned.
	alone := signReceipt(t, reqKey, nil, r)
	arow, err := ReceiptRow(marshalReceipt(t, alone), seen, true)
	if err != nil || arow.Countersigned || arow.ID == row.ID || arow.ID != sha(arow.Record) {
		t.Errorf("requester-only receipt: countersigned %v, id %s (countersigned one %s), %v", arow.Countersigned, arow.ID, row.ID, err)
	}
	// No escrow: no escrow fields.
	unpaid := r
	unpaid.Escrow = nil
	urow, err := ReceiptRow(marshalReceipt(t, signReceipt(t, reqKey, provKey, unpaid)), seen, true)
	if err != nil || urow.EscrowState != "" || urow.EscrowTx != "" {
		t.Errorf("unpaid receipt: escrow %q tx %q, %v", urow.EscrowState, urow.EscrowTx, err)
	}
	// Another encoding of the same receipt (indented, fields reordered by
	// a relay) is the same receipt: same ID, same record.
	var generic map[string]any
	if err := json.Unmarshal(data, &generic); err != nil {
		t.Fatal(err)
	}
	reencoded, _ := json.MarshalIndent(generic, "", "   ")
	if bytes.Equal(reencoded, data) {
		t.Fatal("the re-encoding did not change the bytes")
	}
	if rrow, err := ReceiptRow(reencoded, seen, true); err != nil || rrow.ID != row.ID || !bytes.Equal(rrow.Record, row.Record) {
		t.Errorf("re-encoded receipt: id %s, want %s; %v", rrow.ID, row.ID, err)
	}

	// A stale receipt is a replay when fresh, history when not.
	stale := marshalReceipt(t, signReceipt(t, reqKey, provKey, goodReceipt(req, prov, testJob, seen.Add(-market.MaxReceiptAge-time.Minute))))
	if _, err := ReceiptRow(stale, seen, true); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Errorf("stale receipt when fresh: %v, want refused as stale", err)
	}
	if srow, err := ReceiptRow(stale, seen, false); err != nil || !srow.Countersigned {
		t.Errorf("stale receipt when not fresh: %v, want kept", err)
	}

	byProvider := marshalReceipt(t, signReceipt(t, provKey, nil, r))
	forged := counter
	forged.Countersignature, _ = market.Countersign(otherKey.Sign, counter.Receipt)
	reused := counter
	reused.Countersignature = counter.Receipt.Signature
	garbled := counter
	garbled.Countersignature = append([]byte{}, counter.Countersignature...)
	garbled.Countersignature[0] ^= 1
	tampered := counter
	tampered.Receipt.Payload = bytes.Replace(counter.Receipt.Payload, []byte(`"price":500`), []byte(`"price":5000`), 1)
	wrongType := signReceipt(t, reqKey, nil, r)
	wrongType.Receipt, _ = market.Seal(reqKey, market.TypeModel, r)
	selfDeal := r
	selfDeal.Provider = req.String()
	for name, tc := range map[string]struct {
		data []byte
		is   error
		want string
	}{
		"signed by its provider":      {data: byProvider, want: "signed by"},
		"forged countersignature":     {data: marshalReceipt(t, forged), is: market.ErrBadSignature},
		"reused signature as counter": {data: marshalReceipt(t, reused), is: market.ErrBadSignature},
		"garbled countersignature":    {data: marshalReceipt(t, garbled), is: market.ErrBadSignature},
		"tampered price":              {data: marshalReceipt(t, tampered), is: market.ErrBadSignature},
		"model envelope as receipt":   {data: marshalReceipt(t, wrongType), is: market.ErrWrongType},
		"a bare envelope":             {data: seal(t, reqKey, market.TypeReceipt, r), is: market.ErrWrongType},
		"requester is its provider":   {data: marshalReceipt(t, signReceipt(t, reqKey, nil, selfDeal)), want: "requester as its provider"},
		"dated in the future":         {data: marshalReceipt(t, signReceipt(t, reqKey, provKey, goodReceipt(req, prov, testJob, seen.Add(time.Hour)))), want: "future"},
		"oversized":                   {data: pad(data, market.MaxReceiptBytes), want: "exceeds"},
		"garbage":                     {data: []byte("{"), want: "decode"},
	} {
		_, err := ReceiptRow(tc.data, seen, true)
		switch {
		case err == nil:
			t.Errorf("%s: accepted", name)
		case tc.is != nil && !errors.Is(err, tc.is):
			t.Errorf("%s: %v, want %v", name, err, tc.is)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v, want it to say %q", name, err, tc.want)
		}
	}
}

// TestModelRowAttacks attacks ModelRow: a receipt envelope or a signed
// receipt passed as a model, a tampered record, one in another
// publisher's name, one dated in the future, one that cites another
// requester's receipt and an oversized one are refused; a good one gives
// a row whose ID is the SHA-256 of its Record and which names its
// receipt.
func TestModelRowAttacks(t *testing.T) {
	reqKey, req := newKey(t)
	provKey, prov := newKey(t)
	otherKey, other := newKey(t)
	seen := time.Now().Truncate(time.Second)
	sr := signReceipt(t, reqKey, provKey, goodReceipt(req, prov, testJob, seen.Add(-time.Minute)))
	m := goodModel(t, req, &sr, seen.Add(-time.Second))
	data := seal(t, reqKey, market.TypeModel, m)

	row, err := ModelRow(data, seen)
	if err != nil {
		t.Fatalf("good model refused: %v", err)
	}
	env, _ := market.ParseEnvelope(data)
	if row.ID != sha(row.Record) || row.ID != market.EnvelopeID(env) {
		t.Errorf("ID %s is not the SHA-256 of the record (%s)", row.ID, sha(row.Record))
	}
	spec, _ := json.Marshal(m.Spec)
	if row.Publisher != req.String() || row.Name != "iris-mlp" || row.Description != "a small perceptron" || row.License != "MIT" ||
		row.WeightsCID != testCID || row.JobID != testJob || row.ReceiptID != sr.ID() || !bytes.Equal(row.Spec, spec) ||
		row.Metrics["accuracy"] != 0.97 || !row.PublishedAt.Equal(m.PublishedAt) || !row.SeenAt.Equal(seen) {
		t.Errorf("row %+v does not carry the record's fields", row)
	}
	if err := row.Check(); err != nil {
		t.Errorf("the row of a good model fails the store's check: %v", err)
	}
	noReceipt, err := ModelRow(seal(t, reqKey, market.TypeModel, goodModel(t, req, nil, seen)), seen)
	if err != nil || noReceipt.ReceiptID != "" {
		t.Errorf("model without receipt: receipt id %q, %v", noReceipt.ReceiptID, err)
	}

	theirs := signReceipt(t, otherKey, provKey, goodReceipt(other, prov, testJob, seen.Add(-time.Minute)))
	big := goodModel(t, req, nil, seen)
	big.Description = strings.Repeat("x", market.MaxModelDescriptionLen+1)
	for name, tc := range map[string]struct {
		data []byte
		is   error
		want string
	}{
		"receipt envelope as model": {data: seal(t, reqKey, market.TypeReceipt, m), is: market.ErrWrongType},
		"signed receipt as model":   {data: marshalReceipt(t, sr), is: market.ErrWrongType},
		"tampered name":             {data: tamper(t, data, `iris-mlp`, `iris-MLP`), is: market.ErrBadSignature},
		"in another's name":         {data: seal(t, otherKey, market.TypeModel, m), want: "signed by"},
		"dated in the future":       {data: seal(t, reqKey, market.TypeModel, goodModel(t, req, &sr, seen.Add(time.Hour))), want: "future"},
		"another requester's receipt": {data: seal(t, reqKey, market.TypeModel, func() market.ModelRecord {
			x := goodModel(t, req, &theirs, seen)
			return x
		}()), want: "another requester"},
		"description too long": {data: seal(t, reqKey, market.TypeModel, big), want: "description"},
		"oversized":            {data: pad(data, market.MaxEnvelopeBytes), want: "exceeds"},
	} {
		_, err := ModelRow(tc.data, seen)
		switch {
		case err == nil:
			t.Errorf("%s: accepted", name)
		case tc.is != nil && !errors.Is(err, tc.is):
			t.Errorf("%s: %v, want %v", name, err, tc.is)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v, want it to say %q", name, err, tc.want)
		}
	}
}

// TestIngestRefusesRowsTheStoreCannotHold attacks the gap between the
// message checks and the store's: a signed message whose numbers or times
// the store cannot hold (a price over 2^63-1, a start time before 1678)
// passes market's checks. Each row function must refuse it, since the
// writer would otherwise carry a row that fails every batch it is in (see
// TestWriterPoisonRow).
func TestIngestRefusesRowsTheStoreCannotHold(t *testing.T) {
	reqKey, req := newKey(t)
	provKey, prov := newKey(t)
	seen := time.Now().Truncate(time.Second)

	pricey := goodReceipt(req, prov, testJob, seen)
	pricey.Price, pricey.Escrow = math.MaxInt64+1, nil
	ancient := goodReceipt(req, prov, testJob, seen)
	ancient.StartedAt = time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, r := range map[string]market.Receipt{"price over 2^63-1": pricey, "started in 1500": ancient} {
		data := marshalReceipt(t, signReceipt(t, reqKey, provKey, r))
		if row, err := ReceiptRow(data, seen, true); err == nil {
			t.Errorf("receipt with %s accepted; the store refuses its row: %v", name, row.Check())
		}
	}
	c := goodCapacity(prov, math.MaxInt64+1, seen)
	if row, err := CapacityRow(seal(t, provKey, market.TypeCapacity, c), seen); err == nil {
		t.Errorf("capacity record with seq over 2^63-1 accepted; the store refuses its row: %v", row.Check())
	}
}
