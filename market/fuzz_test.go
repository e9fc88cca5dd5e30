package market

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/settlement"
)

// The fuzzers below feed the decoders of this package bytes as a peer or
// a user could send them. Each runs on its seeds in plain go test; run
// them for longer with scripts/fuzz.sh.

// fuzzNow is the clock every message check of the fuzzers runs at.
var fuzzNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fuzzKey returns a fixed ed25519 key made from seed, so that sealed seeds
// are the same on every run.
func fuzzKey(tb testing.TB, seed byte) (crypto.PrivKey, peer.ID) {
	tb.Helper()
	key, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return key, id
}

// fixtures are valid messages of one job between a requester and a
// provider, each of which passes its check at fuzzNow.
type fixtures struct {
	reqKey, provKey crypto.PrivKey
	req, prov       peer.ID
	wasmSpec        Spec
	trainSpec       Spec
	announcement    Announcement
	trainAnnounce   Announcement
	bid             Bid
	award           Award
	escrowAward     Award
	ack             Ack
	result          Result
	cancel          Cancel
	capacity        Capacity
}

// exampleSpec reads an example spec and puts a real CID where it names a
// local path (as the CLI does before it submits the spec).
func exampleSpec(tb testing.TB, name string) (raw, withCIDs []byte) {
	tb.Helper()
	raw, err := os.ReadFile("../examples/" + name + "/spec.json")
	if err != nil {
		tb.Fatal(err)
	}
	pathCID := regexp.MustCompile(`("(?:cid|module)":\s*)"[^"]*"`)
	return raw, pathCID.ReplaceAll(raw, []byte(`$1"`+testCID+`"`))
}

func newFixtures(tb testing.TB) fixtures {
	tb.Helper()
	var fx fixtures
	fx.reqKey, fx.req = fuzzKey(tb, 1)
	fx.provKey, fx.prov = fuzzKey(tb, 2)
	var err error
	if fx.wasmSpec, err = ParseSpec([]byte(validSpec())); err != nil {
		tb.Fatal(err)
	}
	_, mnist := exampleSpec(tb, "mnist")
	if fx.trainSpec, err = ParseSpec(mnist); err != nil {
		tb.Fatal(err)
	}
	const jobID = "01J0000000000000000000000A"
	fx.announcement = Announcement{JobID: jobID, Requester: fx.req.String(),
		RequesterAddrs: []string{"/ip4/192.0.2.1/tcp/4001", "/ip6/2001:db8::1/udp/4001/quic-v1"},
		Attempt:        1, Spec: fx.wasmSpec, IssuedAt: fuzzNow, BidsUntil: fuzzNow.Add(200 * time.Millisecond)}
	fx.trainAnnounce = fx.announcement
	fx.trainAnnounce.Spec = fx.trainSpec
	fx.bid = Bid{JobID: jobID, Attempt: 1, Provider: fx.prov.String(), Price: 10, Mint: testMint,
		QueueDepth: 1, ExpiresAt: fuzzNow.Add(time.Minute), Payee: testMint}
	fx.award = Award{JobID: jobID, Attempt: 1, Requester: fx.req.String(), Provider: fx.prov.String(), Price: 10,
		Spec: fx.wasmSpec, IssuedAt: fuzzNow, Deadline: fuzzNow.Add(time.Minute)}
	fx.escrowAward = fx.award
	fx.escrowAward.Escrow = &EscrowTerms{
		Terms: settlement.Terms{JobID: jobID + "/1", Requester: testMint, Provider: testMint, Arbiter: testMint,
			Mint: testMint, Amount: 10, Deadline: fuzzNow.Add(time.Hour)},
		Ref:         settlement.Ref{Multisig: testMint, Vault: testMint},
		ArbiterPeer: fx.req.String()}
	fx.ack = Ack{JobID: jobID, Attempt: 1, Provider: fx.prov.String(), Accepted: true}
	fx.result = Result{JobID: jobID, Attempt: 1, Provider: fx.prov.String(), Status: StatusSucceeded,
		Outputs: []OutputRef{{Name: "result", CID: testCID, Size: 5}}, LogCID: testCID, LogTail: "done\n",
		Metrics: map[string]float64{"loss": 0.25}, Payout: []byte{1, 2, 3},
		Usage:     Usage{WallMillis: 1000, InputBytes: 10, OutputBytes: 5},
		StartedAt: fuzzNow, FinishedAt: fuzzNow.Add(time.Second)}
	fx.cancel = Cancel{JobID: jobID, Attempt: 1, Requester: fx.req.String(), Reason: "cancelled by the user"}
	fx.capacity = Capacity{Peer: fx.prov.String(), CPUCores: 4, MemoryMiB: 8192, DiskMiB: 10000,
		GPUs:      []GPU{{Model: "NVIDIA H100", MemoryMiB: 81920, ComputeCapability: "9.0", Driver: "550.54", CUDA: "12.4"}},
		Executors: []string{KindWASM, KindTrain}, Prices: PriceList{PerCPUSecond: 10, Minimum: 100, Mint: testMint},
		BenchScore: 1.5, Seq: 7, IssuedAt: fuzzNow, ExpiresAt: fuzzNow.Add(time.Hour)}
	for name, err := range map[string]error{
		"announcement":       CheckAnnouncement(fx.announcement, fx.req, fuzzNow),
		"train announcement": CheckAnnouncement(fx.trainAnnounce, fx.req, fuzzNow),
		"bid":                CheckBid(fx.bid, fx.prov, fx.announcement, fuzzNow),
		"award":              CheckAward(fx.award, fx.req, fx.prov, fuzzNow),
		"escrow award":       CheckAward(fx.escrowAward, fx.req, fx.prov, fuzzNow),
		"result":             CheckResult(fx.result, fx.prov, fx.award),
		"capacity":           CheckCapacity(fx.capacity, fx.prov, fuzzNow),
	} {
		if err != nil {
			tb.Fatalf("fixture %s: %v", name, err)
		}
	}
	return fx
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzParseSpec: ParseSpec never panics, and a spec it accepts, encoded
// again, parses to the same spec, which Normalize leaves as it is and which
// still validates. The encodings are compared rather than the values
// because omitempty turns an empty list into a missing one.
func FuzzParseSpec(f *testing.F) {
	for _, name := range []string{"mnist", "wordcount"} {
		raw, withCIDs := exampleSpec(f, name)
		f.Add(raw)
		f.Add(withCIDs)
	}
	f.Add([]byte(validSpec()))
	f.Add([]byte(trainBase))
	f.Add([]byte(`{"kind":"wasm","wasm":{"module":"` + testCID + `"}}`))
	// Under MaxSpecBytes as written, six times that with < escaped as \u003c.
	escaped := `"` + strings.Repeat("<", maxArgBytes-96) + `"`
	f.Add([]byte(`{"kind":"wasm","wasm":{"module":"` + testCID + `","args":[` +
		strings.Repeat(escaped+",", 14) + escaped + `]}}`))
	f.Add([]byte(`{"kind":"train","train":{"model":{"input":[2],"layers":[{"type":"dense","units":2}]},
		"loss":"mse","optimizer":{"type":"sgd","learning_rate":0.1},"epochs":1,
		"dataset":{"cid":"` + testCID + `","format":"csv","train_file":"d.csv","label_column":0}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec(data)
		if err != nil {
			return
		}
		once, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("an accepted spec does not encode: %v", err)
		}
		again, err := ParseSpec(once)
		if err != nil {
			t.Fatalf("an accepted spec, encoded, is refused: %v\n%s", err, once)
		}
		if twice := mustJSON(t, again); !bytes.Equal(once, twice) {
			t.Fatalf("a spec changed when parsed again:\n%s\n%s", once, twice)
		}
		renormalized := again
		renormalized.Normalize()
		if err := renormalized.Validate(); err != nil {
			t.Fatalf("a parsed spec, normalized again, is invalid: %v", err)
		}
		if b := mustJSON(t, renormalized); !bytes.Equal(once, b) {
			t.Fatalf("Normalize changed a normalized spec:\n%s\n%s", once, b)
		}
	})
}

// messageTypes lists every envelope type with a constructor of its payload.
var messageTypes = []struct {
	typ string
	new func() any
}{
	{TypeCapacity, func() any { return new(Capacity) }},
	{TypeAnnouncement, func() any { return new(Announcement) }},
	{TypeBid, func() any { return new(Bid) }},
	{TypeAward, func() any { return new(Award) }},
	{TypeAck, func() any { return new(Ack) }},
	{TypeResult, func() any { return new(Result) }},
	{TypeCancel, func() any { return new(Cancel) }},
}

func sealedFixtures(tb testing.TB, fx fixtures) []Envelope {
	tb.Helper()
	var out []Envelope
	for _, m := range []struct {
		key crypto.PrivKey
		typ string
		v   any
	}{
		{fx.provKey, TypeCapacity, fx.capacity},
		{fx.reqKey, TypeAnnouncement, fx.announcement},
		{fx.reqKey, TypeAnnouncement, fx.trainAnnounce},
		{fx.provKey, TypeBid, fx.bid},
		{fx.reqKey, TypeAward, fx.escrowAward},
		{fx.provKey, TypeAck, fx.ack},
		{fx.provKey, TypeResult, fx.result},
		{fx.reqKey, TypeCancel, fx.cancel},
	} {
		env, err := Seal(m.key, m.typ, m.v)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

// FuzzEnvelope: ParseEnvelope and Open, for every message type, never
// panic; an envelope that opens is signed by the key of the signer Open
// returns, opens only as its own type and opens again once re-encoded.
// Flipping any byte of the payload or signature of a valid sealed envelope
// (the one and the byte chosen by pos, flipped by mask) makes Open fail.
func FuzzEnvelope(f *testing.F) {
	fx := newFixtures(f)
	sealed := sealedFixtures(f, fx)
	for i, env := range sealed {
		data, err := env.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint32(i), byte(1))
	}
	f.Add([]byte(`{"type":"cyxwiz/bid/1","signer":"","payload":"","sig":""}`), uint32(0), byte(0x80))
	f.Fuzz(func(t *testing.T, data []byte, pos uint32, mask byte) {
		if env, err := ParseEnvelope(data); err == nil {
			checkOpen(t, env)
		}

		env := sealed[pos%uint32(len(sealed))]
		at := int(pos/uint32(len(sealed))) % (len(env.Payload) + len(env.Signature))
		if mask == 0 {
			mask = 0xff
		}
		flipped := env
		flipped.Payload = bytes.Clone(env.Payload)
		flipped.Signature = bytes.Clone(env.Signature)
		if at < len(flipped.Payload) {
			flipped.Payload[at] ^= mask
		} else {
			flipped.Signature[at-len(flipped.Payload)] ^= mask
		}
		for _, m := range messageTypes {
			if m.typ != env.Type {
				continue
			}
			if _, err := flipped.Open(m.typ, m.new()); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("%s with byte %d flipped by %#x: Open = %v, want a bad signature", env.Type, at, mask, err)
			}
		}
	})
}

// checkOpen opens env as every message type and checks what opens.
func checkOpen(t *testing.T, env Envelope) {
	t.Helper()
	for _, m := range messageTypes {
		signer, err := env.Open(m.typ, m.new())
		if m.typ != env.Type {
			if !errors.Is(err, ErrWrongType) {
				t.Fatalf("a %q envelope opened as %s: %v", env.Type, m.typ, err)
			}
			continue
		}
		if err != nil {
			continue
		}
		pub, err := signer.ExtractPublicKey()
		if err != nil {
			t.Fatalf("opened, but the signer %s has no key: %v", signer, err)
		}
		if ok, err := pub.Verify(append([]byte(env.Type+"\n"), env.Payload...), env.Signature); err != nil || !ok {
			t.Fatalf("opened, but the signer's key does not verify the signature: %v", err)
		}
		data, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseEnvelope(data)
		if err != nil {
			t.Fatalf("an opened envelope, re-encoded, does not parse: %v", err)
		}
		if again, err := back.Open(m.typ, m.new()); err != nil || again != signer {
			t.Fatalf("an opened envelope, re-encoded, opens as %s, %v; want %s", again, err, signer)
		}
	}
}

// sealRoundTrip seals v, parses and opens the envelope, and checks that the
// message that comes out encodes as v did. Messages too big for an
// envelope must be refused by ParseEnvelope.
func sealRoundTrip[T any](t *testing.T, key crypto.PrivKey, typ string, v T) {
	t.Helper()
	env, err := Seal(key, typ, v)
	if err != nil {
		t.Fatalf("seal a decoded %s: %v", typ, err)
	}
	data, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseEnvelope(data)
	if len(data) > MaxEnvelopeBytes {
		if err == nil {
			t.Fatalf("an envelope of %d bytes parsed", len(data))
		}
		return
	}
	if err != nil {
		t.Fatalf("a sealed %s does not parse: %v", typ, err)
	}
	var got T
	if _, err := back.Open(typ, &got); err != nil {
		t.Fatalf("a sealed %s does not open: %v", typ, err)
	}
	if want, have := mustJSON(t, v), mustJSON(t, got); !bytes.Equal(want, have) {
		t.Fatalf("%s changed through an envelope:\n%s\n%s", typ, want, have)
	}
}

// refusesOversized checks that check refuses base grown by each of grow.
// Each grown message is valid but for the one field grown past its bound;
// a grower that does not apply to base (a wasm field of a train spec)
// leaves it as it is and is skipped.
func refusesOversized[T any](t *testing.T, base T, check func(T) error, grow map[string]func(*T)) {
	t.Helper()
	before := mustJSON(t, base)
	for name, g := range grow {
		m := base
		g(&m)
		if bytes.Equal(mustJSON(t, m), before) {
			continue
		}
		if err := check(m); err == nil {
			t.Errorf("accepted with %s", name)
		}
	}
}

// tooLong is one byte longer than a message's free-form strings may be.
var tooLong = strings.Repeat("x", maxFieldBytes+1)

func repeated[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// specGrowers grow one part of a spec past the bounds Validate sets.
func specGrowers() map[string]func(*Spec) {
	wasm := func(s *Spec, edit func(*WASMSpec)) {
		if s.WASM == nil {
			return
		}
		w := *s.WASM
		edit(&w)
		s.WASM = &w
	}
	return map[string]func(*Spec){
		"too many inputs": func(s *Spec) {
			s.Inputs = nil
			for i := range maxInputs + 1 {
				s.Inputs = append(s.Inputs, Input{Name: fmt.Sprint("in", i), CID: testCID})
			}
		},
		"too many outputs": func(s *Spec) {
			s.Outputs = nil
			for i := range maxOutputs + 1 {
				s.Outputs = append(s.Outputs, Output{Name: fmt.Sprint("out", i), Path: fmt.Sprint("/out/", i), MaxBytes: 1})
			}
		},
		"a long input name": func(s *Spec) {
			s.Inputs = []Input{{Name: strings.Repeat("n", 256), CID: testCID}}
		},
		"too many args":   func(s *Spec) { wasm(s, func(w *WASMSpec) { w.Args = repeated("a", maxArgs+1) }) },
		"a long argument": func(s *Spec) { wasm(s, func(w *WASMSpec) { w.Args = []string{strings.Repeat("a", maxArgBytes+1)} }) },
		"too many env vars": func(s *Spec) {
			wasm(s, func(w *WASMSpec) {
				w.Env = map[string]string{}
				for i := range maxEnv + 1 {
					w.Env[fmt.Sprint("V", i)] = "x"
				}
			})
		},
		"a long env value": func(s *Spec) {
			wasm(s, func(w *WASMSpec) { w.Env = map[string]string{"V": strings.Repeat("v", maxArgBytes+1)} })
		},
	}
}

// addPayloads seeds a message fuzzer with the JSON of each message and a
// few malformed payloads.
func addPayloads(f *testing.F, msgs ...any) {
	for _, m := range msgs {
		f.Add(mustJSON(f, m))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"job_id":1}`))
}

// FuzzAnnouncement: decoding a payload and CheckAnnouncement never panic;
// a checked announcement survives an envelope, and its requester
// addresses or spec grown past their bounds are refused.
func FuzzAnnouncement(f *testing.F) {
	fx := newFixtures(f)
	addPayloads(f, fx.announcement, fx.trainAnnounce)
	// A peer's spec is not normalized: a train spec may lack its schedule.
	unscheduled := fx.trainAnnounce
	train := *unscheduled.Spec.Train
	train.Schedule = nil
	unscheduled.Spec.Train = &train
	f.Add(mustJSON(f, unscheduled))
	check := func(a Announcement) error { return CheckAnnouncement(a, fx.req, fuzzNow) }
	grow := map[string]func(*Announcement){
		"too many addresses": func(a *Announcement) {
			a.RequesterAddrs = repeated("/ip4/192.0.2.1/tcp/4001", MaxRequesterAddrs+1)
		},
		"a long address": func(a *Announcement) { a.RequesterAddrs = []string{"/dns4/" + tooLong + "/tcp/1"} },
	}
	for name, g := range specGrowers() {
		grow["spec with "+name] = func(a *Announcement) { g(&a.Spec) }
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var a Announcement
		if json.Unmarshal(payload, &a) != nil {
			return
		}
		if check(a) != nil {
			return
		}
		sealRoundTrip(t, fx.reqKey, TypeAnnouncement, a)
		refusesOversized(t, a, check, grow)
	})
}

// FuzzBid: decoding a payload and CheckBid (against a fixed announcement)
// never panic; a checked bid survives an envelope, and its free-form
// fields grown past their bound are refused.
func FuzzBid(f *testing.F) {
	fx := newFixtures(f)
	unpriced := fx.bid
	unpriced.Mint, unpriced.Payee = "", ""
	addPayloads(f, fx.bid, unpriced)
	check := func(b Bid) error { return CheckBid(b, fx.prov, fx.announcement, fuzzNow) }
	grow := map[string]func(*Bid){
		"a long payee":       func(b *Bid) { b.Payee = tooLong },
		"a long mint":        func(b *Bid) { b.Mint = tooLong },
		"a deep queue":       func(b *Bid) { b.QueueDepth = maxProviderQueue + 1 },
		"a long time to run": func(b *Bid) { b.ExpiresAt = fuzzNow.Add(maxBidTTL + time.Second) },
	}
	unpricedCheck := func(b Bid) error {
		a := fx.announcement
		a.Spec.Price = nil
		return CheckBid(b, fx.prov, a, fuzzNow)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var b Bid
		if json.Unmarshal(payload, &b) != nil {
			return
		}
		if check(b) == nil {
			sealRoundTrip(t, fx.provKey, TypeBid, b)
			refusesOversized(t, b, check, grow)
		}
		if unpricedCheck(b) == nil {
			refusesOversized(t, b, unpricedCheck, grow)
		}
	})
}

// FuzzAward: decoding a payload and CheckAward never panic; a checked
// award survives an envelope, and its escrow terms or spec grown past
// their bounds are refused.
func FuzzAward(f *testing.F) {
	fx := newFixtures(f)
	addPayloads(f, fx.award, fx.escrowAward)
	train := fx.award
	train.Spec = fx.trainSpec
	f.Add(mustJSON(f, train))
	check := func(w Award) error { return CheckAward(w, fx.req, fx.prov, fuzzNow) }
	grow := map[string]func(*Award){
		"long escrow terms": func(w *Award) {
			if w.Escrow != nil {
				e := *w.Escrow
				e.Vault = tooLong
				w.Escrow = &e
			}
		},
	}
	for name, g := range specGrowers() {
		grow["spec with "+name] = func(w *Award) { g(&w.Spec) }
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var w Award
		if json.Unmarshal(payload, &w) != nil {
			return
		}
		if check(w) != nil {
			return
		}
		sealRoundTrip(t, fx.reqKey, TypeAward, w)
		refusesOversized(t, w, check, grow)
	})
}

// FuzzAck: decoding an ack payload never panics and the ack survives an
// envelope. Acks have no check of their own in this package.
func FuzzAck(f *testing.F) {
	fx := newFixtures(f)
	refused := fx.ack
	refused.Accepted, refused.Reason = false, "busy"
	addPayloads(f, fx.ack, refused)
	f.Fuzz(func(t *testing.T, payload []byte) {
		var k Ack
		if json.Unmarshal(payload, &k) != nil {
			return
		}
		sealRoundTrip(t, fx.provKey, TypeAck, k)
	})
}

// FuzzResult: decoding a payload and CheckResult (against a fixed award)
// never panic; a checked result survives an envelope, and each of its
// lists and free-form fields grown past its bound is refused.
func FuzzResult(f *testing.F) {
	fx := newFixtures(f)
	failed := fx.result
	failed.Status, failed.ExitCode, failed.Reason, failed.Outputs = StatusFailed, 2, "exit status 2", nil
	addPayloads(f, fx.result, failed)
	check := func(r Result) error { return CheckResult(r, fx.prov, fx.award) }
	grow := map[string]func(*Result){
		"too many outputs":   func(r *Result) { r.Outputs = repeated(OutputRef{Name: "result", CID: testCID}, maxResultOutputs+1) },
		"a long payout":      func(r *Result) { r.Payout = make([]byte, maxPayoutBytes+1) },
		"a long log tail":    func(r *Result) { r.LogTail = strings.Repeat("l", maxLogTailBytes+1) },
		"a long reason":      func(r *Result) { r.Reason = strings.Repeat("r", maxFailureReasonLen+1) },
		"a long log CID":     func(r *Result) { r.LogCID = tooLong },
		"a long metrics CID": func(r *Result) { r.MetricsCID = tooLong },
		"a long model CID":   func(r *Result) { r.ModelCID = tooLong },
		"a long output name": func(r *Result) { r.Outputs = []OutputRef{{Name: tooLong, CID: testCID}} },
		"a long output CID":  func(r *Result) { r.Outputs = []OutputRef{{Name: "result", CID: tooLong}} },
		"a long metric name": func(r *Result) { r.Metrics = map[string]float64{tooLong: 1} },
		"too many metrics": func(r *Result) {
			r.Metrics = map[string]float64{}
			for i := range maxResultMetrics + 1 {
				r.Metrics[fmt.Sprint("m", i)] = 1
			}
		},
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var r Result
		if json.Unmarshal(payload, &r) != nil {
			return
		}
		if check(r) != nil {
			return
		}
		sealRoundTrip(t, fx.provKey, TypeResult, r)
		refusesOversized(t, r, check, grow)
	})
}

// FuzzCancel: decoding a cancel payload never panics and the cancel
// survives an envelope. Cancels have no check of their own in this
// package.
func FuzzCancel(f *testing.F) {
	fx := newFixtures(f)
	addPayloads(f, fx.cancel)
	f.Fuzz(func(t *testing.T, payload []byte) {
		var c Cancel
		if json.Unmarshal(payload, &c) != nil {
			return
		}
		sealRoundTrip(t, fx.reqKey, TypeCancel, c)
	})
}

// FuzzCapacity: decoding a payload and CheckCapacity never panic; a
// checked record survives an envelope, and its lists and free-form fields
// grown past their bounds are refused.
func FuzzCapacity(f *testing.F) {
	fx := newFixtures(f)
	cpuOnly := fx.capacity
	cpuOnly.GPUs, cpuOnly.Executors, cpuOnly.Prices.Mint = nil, []string{KindWASM}, ""
	addPayloads(f, fx.capacity, cpuOnly)
	check := func(c Capacity) error { return CheckCapacity(c, fx.prov, fuzzNow) }
	gpu := fx.capacity.GPUs[0]
	longGPU := func(edit func(*GPU)) func(*Capacity) {
		return func(c *Capacity) {
			g := gpu
			edit(&g)
			c.GPUs = []GPU{g}
		}
	}
	grow := map[string]func(*Capacity){
		"too many GPUs":       func(c *Capacity) { c.GPUs = repeated(gpu, maxCapacityGPUs+1) },
		"too many executors":  func(c *Capacity) { c.Executors = repeated(KindWASM, maxExecutors+1) },
		"a long executor":     func(c *Capacity) { c.Executors = []string{tooLong} },
		"a long mint":         func(c *Capacity) { c.Prices.Mint = tooLong },
		"a long GPU model":    longGPU(func(g *GPU) { g.Model = tooLong }),
		"a long capability":   longGPU(func(g *GPU) { g.ComputeCapability = tooLong }),
		"a long driver":       longGPU(func(g *GPU) { g.Driver = tooLong }),
		"a long CUDA version": longGPU(func(g *GPU) { g.CUDA = tooLong }),
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var c Capacity
		if json.Unmarshal(payload, &c) != nil {
			return
		}
		if check(c) != nil {
			return
		}
		sealRoundTrip(t, fx.provKey, TypeCapacity, c)
		refusesOversized(t, c, check, grow)
	})
}

// FuzzCanonicalEnvelope holds the fast path of ParseEnvelope to
// encoding/json: whatever it takes, encoding/json takes too and reads the
// same envelope.
func FuzzCanonicalEnvelope(f *testing.F) {
	key, _ := fuzzKey(f, 9)
	env, err := Seal(key, TypeCancel, Cancel{JobID: "01J0000000000000000000000A"})
	if err != nil {
		f.Fatal(err)
	}
	data, _ := env.Marshal()
	f.Add(data)
	f.Add([]byte(strings.Replace(string(data), `"sig"`, `"Sig"`, 1)))
	f.Add([]byte(strings.Replace(string(data), `{"type"`, `{ "type"`, 1)))
	f.Add([]byte(`{"type":"a","signer":"b","payload":"AAAA","sig":"AA=="}`))
	f.Add([]byte(`{"type":"a\u0041","signer":"b","payload":"AAAA","sig":"AA=="}`))
	f.Add([]byte(`{"type":"a","signer":"b","payload":"AA\nAA","sig":"AA=="}`))
	f.Add([]byte(`{"type":"a","signer":"b","payload":"AAAA","sig":"AA=="}x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := parseCanonical(data)
		if !ok {
			return
		}
		var slow Envelope
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("the fast path took %q, encoding/json refuses it: %v", data, err)
		}
		if fast.Type != slow.Type || fast.Signer != slow.Signer || !bytes.Equal(fast.Payload, slow.Payload) || !bytes.Equal(fast.Signature, slow.Signature) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", data, fast, slow)
		}
	})
}
