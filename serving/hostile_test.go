package serving

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
)

// rawRequest is a request frame as a caller would write it.
func rawRequest(t *testing.T, id uint64, service string, xs [][]float32) []byte {
	t.Helper()
	cols := 0
	if len(xs) > 0 {
		cols = len(xs[0])
	}
	f, err := appendFrame(nil, id, requestHeader{Service: service, Rows: len(xs), Cols: cols}, xs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// readAnswer reads one answer frame off r.
func readAnswer(t *testing.T, r *bufio.Reader) (uint64, answerHeader) {
	t.Helper()
	body, err := wire.ReadFrame(r, maxAnswerBytes)
	if err != nil {
		t.Fatalf("read an answer: %v", err)
	}
	id, hb, _, err := splitBody(body)
	if err != nil {
		t.Fatal(err)
	}
	var h answerHeader
	if err := decodeJSON(hb, &h); err != nil {
		t.Fatal(err)
	}
	return id, h
}

func hostileServer(t *testing.T, p Params) (prov, caller hostPair) {
	t.Helper()
	hosts := mockHosts(t)
	p.Host, p.Key = hosts[0], key(t, hosts[0])
	srv := NewServer(p)
	t.Cleanup(func() { srv.Close() })
	if err := srv.Serve("digits", "digits", testModel(t, 4)); err != nil {
		t.Fatal(err)
	}
	return hostPair{hosts[0]}, hostPair{hosts[1]}
}

func openRaw(t *testing.T, from, to hostPair) network.Stream {
	t.Helper()
	st, err := from.NewStream(context.Background(), to.ID(), wire.InferProtocol)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { st.Reset() })
	return st
}

// TestGarbageMidStream: a good call is answered, the garbage after it
// ends the stream with a refusal on id 0, and the provider goes on serving.
func TestGarbageMidStream(t *testing.T) {
	prov, caller := hostileServer(t, Params{})
	st := openRaw(t, caller, prov)
	good := rawRequest(t, 1, "digits", [][]float32{example(1)})
	garbage := binary.AppendUvarint(nil, 5)
	garbage = append(garbage, 7, 200, 1, 2, 3) // id 7, a header longer than the frame
	if _, err := st.Write(append(good, garbage...)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(st)
	if id, h := readAnswer(t, r); id != 1 || h.Reply.Code != wire.CodeOK || h.Rows != 1 {
		t.Errorf("the good call: id %d, %+v", id, h)
	}
	if id, h := readAnswer(t, r); id != 0 || h.Reply.Code != wire.CodeRejected || !strings.Contains(h.Reply.Reason, "bad frame") {
		t.Errorf("the garbage: id %d, %+v", id, h.Reply)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Error("the stream went on after the garbage")
	}
	if _, err := clientOf(t, caller.Host).Call(context.Background(), prov.ID(), "digits", [][]float32{example(2)}); err != nil {
		t.Errorf("a call after the garbage: %v", err)
	}
}

// TestOversizedFrameMidStream: a frame past the bound is refused on its
// id and skipped; the call after it on the stream is answered.
func TestOversizedFrameMidStream(t *testing.T) {
	prov, caller := hostileServer(t, Params{MaxRequestBytes: 1024})
	st := openRaw(t, caller, prov)
	big := make([][]float32, 4)
	for i := range big {
		big[i] = make([]float32, 300)
	}
	msg := append(rawRequest(t, 1, "digits", big), rawRequest(t, 2, "digits", [][]float32{example(1)})...)
	if _, err := st.Write(msg); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(st)
	got := map[uint64]answerHeader{}
	for range 2 {
		id, h := readAnswer(t, r)
		got[id] = h
	}
	if h := got[1]; h.Reply.Code != wire.CodeRejected || !strings.Contains(h.Reply.Reason, "larger than 1024 bytes") {
		t.Errorf("the oversized call: %+v", h.Reply)
	}
	if h := got[2]; h.Reply.Code != wire.CodeOK {
		t.Errorf("the call after it: %+v", h.Reply)
	}
}

// TestManyStreams: a caller past its streams is refused on id 0 with
// CodeFull, not reset, and its streams within the bound still work.
func TestManyStreams(t *testing.T) {
	prov, caller := hostileServer(t, Params{MaxStreams: 3})
	var streams []network.Stream
	for range 3 {
		st := openRaw(t, caller, prov)
		// One byte of a frame: the provider holds the stream, reading.
		if _, err := st.Write([]byte{0x80}); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	time.Sleep(100 * time.Millisecond)
	st := openRaw(t, caller, prov)
	if _, err := st.Write(rawRequest(t, 1, "digits", [][]float32{example(1)})); err != nil {
		t.Fatal(err)
	}
	id, h := readAnswer(t, bufio.NewReader(st))
	if id != 0 || h.Reply.Code != wire.CodeFull || !strings.Contains(h.Reply.Reason, "at most 3") {
		t.Errorf("a fourth stream: id %d, %+v", id, h.Reply)
	}
	for _, s := range streams {
		s.Reset()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := clientOf(t, caller.Host).Call(context.Background(), prov.ID(), "digits", [][]float32{example(1)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a call once the streams are gone: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signedAnswer is the body of an answer to request of rows of outputs,
// in a batch of two signed by k, changed by edit.
func signedAnswer(t *testing.T, k crypto.PrivKey, request [32]byte, rows [][]float32, edit func(*answerHeader)) []byte {
	t.Helper()
	var raw []byte
	for _, r := range rows {
		raw = appendFloats(raw, r)
	}
	leaves := [][32]byte{market.InferLeaf(request, len(rows), len(rows[0]), raw), market.InferLeaf([32]byte{1}, 1, 2, nil)}
	root, proofs := market.InferTree(leaves)
	env, err := market.Seal(k, market.TypeInferBatch, market.InferBatch{Service: "s", Root: root[:], Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	h := answerHeader{Reply: wire.OK, Rows: len(rows), Cols: len(rows[0]), Batch: &env, Index: 0, Proof: proofs[0]}
	if edit != nil {
		edit(&h)
	}
	f, err := appendFrame(nil, 9, h, nil, raw)
	if err != nil {
		t.Fatal(err)
	}
	_, n := binary.Uvarint(f)
	return f[n:]
}

// TestForgedBatches: the caller believes its entry of a batch its
// provider signed, and nothing else: another key's signature, another
// batch's signature, another entry, a lying row count, changed outputs.
func TestForgedBatches(t *testing.T) {
	k, _, _ := crypto.GenerateEd25519Key(nil)
	other, _, _ := crypto.GenerateEd25519Key(nil)
	prov, _ := peer.IDFromPrivateKey(k)
	req := sha256.Sum256([]byte("request"))
	rows := [][]float32{{0.25, 0.75}}
	c := NewClient(nil)
	if out, err := c.check(signedAnswer(t, k, req, rows, nil), prov, "s", req, 1); err != nil || out.Outputs[0][1] != 0.75 {
		t.Fatalf("the honest answer: %v, %v", out, err)
	}
	otherBatch := signedAnswer(t, k, sha256.Sum256([]byte("another")), rows, nil)
	var swapped answerHeader
	_, hb, _, _ := splitBody(otherBatch)
	if err := decodeJSON(hb, &swapped); err != nil {
		t.Fatal(err)
	}
	for name, c2 := range map[string]struct {
		key  crypto.PrivKey
		req  [32]byte
		n    int
		edit func(*answerHeader)
		want error
	}{
		"another key":      {other, req, 1, nil, market.ErrBadSignature},
		"another request":  {k, sha256.Sum256([]byte("x")), 1, nil, market.ErrBadAnswer},
		"swapped batch":    {k, req, 1, func(h *answerHeader) { h.Batch = swapped.Batch }, market.ErrBadAnswer},
		"another entry":    {k, req, 1, func(h *answerHeader) { h.Index = 1 }, market.ErrBadAnswer},
		"lying row count":  {k, req, 2, func(h *answerHeader) { h.Rows = 2 }, market.ErrBadAnswer},
		"rows short":       {k, req, 2, nil, market.ErrBadAnswer},
		"no batch":         {k, req, 1, func(h *answerHeader) { h.Batch = nil }, market.ErrBadAnswer},
		"forged signature": {k, req, 1, func(h *answerHeader) { h.Batch.Signature[0] ^= 1 }, market.ErrBadSignature},
	} {
		body := signedAnswer(t, c2.key, req, rows, c2.edit)
		if _, err := c.check(body, prov, "s", c2.req, c2.n); !errors.Is(err, c2.want) {
			t.Errorf("%s: %v, want %v", name, err, c2.want)
		}
	}
}

type hostPair struct{ *p2p.Host }

func mockHosts(t *testing.T) []*p2p.Host { return p2ptest.MockNet(t, 2, 0) }

func decodeJSON(b []byte, v any) error { return json.Unmarshal(b, v) }
