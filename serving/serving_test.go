package serving

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
)

// Weights of a 3-input, 2-class softmax classifier, known by hand.
var (
	testW = []float32{0.5, -1, 2, 0.25, -0.5, 1.5}
	testB = []float32{0.1, -0.2}
)

// testModel writes the classifier as a train job would and loads it.
func testModel(t testing.TB, maxBatch int) *train.Model {
	t.Helper()
	var buf bytes.Buffer
	err := train.WriteSafetensors(&buf, []train.NamedTensor{
		{Name: "layers.0.bias", Shape: []int{2}, Data: testB},
		{Name: "layers.0.weight", Shape: []int{3, 2}, Data: testW},
	}, map[string]string{"format": train.ModelFormat, "loss_function": "cross_entropy",
		"model": `{"input":[3],"layers":[{"type":"dense","units":2},{"type":"softmax"}]}`})
	if err != nil {
		t.Fatal(err)
	}
	m, err := train.LoadModel(&buf, train.LoadOptions{MaxBatch: maxBatch})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// expected is the classifier's output for x, in float64.
func expected(x []float32) []float64 {
	z := make([]float64, 2)
	for j := range z {
		z[j] = float64(testB[j])
		for i := range x {
			z[j] += float64(x[i]) * float64(testW[i*2+j])
		}
	}
	m := math.Max(z[0], z[1])
	e0, e1 := math.Exp(z[0]-m), math.Exp(z[1]-m)
	return []float64{e0 / (e0 + e1), e1 / (e0 + e1)}
}

func key(t testing.TB, h *p2p.Host) crypto.PrivKey {
	t.Helper()
	k := h.Peerstore().PrivKey(h.ID())
	if k == nil {
		t.Fatal("no private key for the host")
	}
	return k
}

// clients holds one Client per host for the tests, as a node holds one.
var clients sync.Map // *p2p.Host -> *Client

// clientOf returns h's client, closed when the test ends.
func clientOf(t testing.TB, h *p2p.Host) *Client {
	if c, ok := clients.Load(h); ok {
		return c.(*Client)
	}
	c, loaded := clients.LoadOrStore(h, NewClient(h))
	if !loaded {
		t.Cleanup(func() {
			clients.Delete(h)
			c.(*Client).Close()
		})
	}
	return c.(*Client)
}

func example(i int) []float32 {
	return []float32{float32(i%7) - 3, float32(i%5) * 0.5, float32(i%3) - 1}
}

// TestCallsAreBatchedAndRight: 64 callers at once get their own rows,
// equal to the model computed by hand, signed by the provider, and the
// provider answers them in fewer forward passes than calls.
func TestCallsAreBatchedAndRight(t *testing.T) {
	hosts := p2ptest.MockNet(t, 9, time.Millisecond)
	prov := hosts[0]
	srv := NewServer(Params{Host: prov, Key: key(t, prov), Window: 5 * time.Millisecond, MaxPerCaller: 64})
	t.Cleanup(func() { srv.Close() })
	if err := srv.Serve("digits", "digits", testModel(t, 64)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for c := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			caller := hosts[1+c%8]
			xs := [][]float32{example(c), example(c + 1)}
			out, err := clientOf(t, caller).Call(ctx, prov.ID(), "digits", xs)
			if err != nil {
				errs <- err
				return
			}
			for i, x := range xs {
				want := expected(x)
				for j := range want {
					if math.Abs(float64(out[i][j])-want[j]) > 1e-6 {
						errs <- fmt.Errorf("call %d row %d: %v, want %v", c, i, out[i], want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st, _ := srv.Stats("digits")
	if st.Calls != 64 || st.Examples != 128 {
		t.Errorf("stats %+v, want 64 calls of 128 examples", st)
	}
	if st.Batches >= 64 {
		t.Errorf("64 calls at once took %d forward passes: not batched", st.Batches)
	}
}

// TestBadCalls: calls that do not fit the model, name no service, are too
// large or too many are refused with a clear reason, and the server goes
// on answering good calls.
func TestBadCalls(t *testing.T) {
	hosts := p2ptest.MockNet(t, 2, time.Millisecond)
	prov, caller := hosts[0], hosts[1]
	srv := NewServer(Params{Host: prov, Key: key(t, prov), MaxRequestBytes: 4096, MaxPerCaller: 1})
	t.Cleanup(func() { srv.Close() })
	if err := srv.Serve("digits", "digits", testModel(t, 4)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	big := make([][]float32, 4)
	for i := range big {
		big[i] = make([]float32, 300)
		for j := range big[i] {
			big[i][j] = 1.2345678
		}
	}
	for name, c := range map[string]struct {
		service  string
		examples [][]float32
		code     wire.Code
		want     string
	}{
		"wrong shape": {"digits", [][]float32{{1, 2}}, wire.CodeRejected, "example 0 has 2 values; the model takes 3 = 3"},
		"no examples": {"digits", nil, wire.CodeRejected, "0 examples in one call; send 1 to 4"},
		"too many":    {"digits", [][]float32{example(1), example(2), example(3), example(4), example(5)}, wire.CodeRejected, "5 examples"},
		"no service":  {"nope", [][]float32{example(1)}, wire.CodeRejected, `no service "nope"`},
		"too large":   {"digits", big, wire.CodeRejected, "larger than 4096 bytes"},
	} {
		_, err := clientOf(t, caller).Call(ctx, prov.ID(), c.service, c.examples)
		var re *wire.ReplyError
		if !errors.As(err, &re) || re.Reply.Code != c.code || !strings.Contains(re.Reply.Reason, c.want) {
			t.Errorf("%s: %v; want %s mentioning %q", name, err, c.code, c.want)
		}
	}
	if _, err := clientOf(t, caller).Call(ctx, prov.ID(), "digits", [][]float32{example(1)}); err != nil {
		t.Fatalf("a good call after the bad ones: %v", err)
	}
	if !srv.Stop("digits") || srv.Stop("digits") {
		t.Error("Stop did not report the service once")
	}
	if _, err := clientOf(t, caller).Call(ctx, prov.ID(), "digits", [][]float32{example(1)}); err == nil || !strings.Contains(err.Error(), "no service") {
		t.Errorf("a call after Stop: %v", err)
	}
}

// TestCallerLimitAndQueue: a caller past its concurrent calls, and calls
// past a full queue, are refused at once rather than queued without bound.
func TestCallerLimitAndQueue(t *testing.T) {
	// No batcher runs: the queue of two fills and stays full.
	v := newService("s", nil, testModel(t, 1), time.Hour, 2)
	ctx := context.Background()
	for range 2 {
		if err := v.submit(&pending{ctx: ctx, examples: [][]float32{example(0)}, done: func(result) {}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.submit(&pending{ctx: ctx, examples: [][]float32{example(0)}, done: func(result) {}}); !errors.Is(err, errQueueFull) {
		t.Errorf("a call past a full queue: %v, want errQueueFull", err)
	}

	hosts := p2ptest.MockNet(t, 1, 0)
	srv := NewServer(Params{Host: hosts[0], Key: key(t, hosts[0]), MaxPerCaller: 2})
	defer srv.Close()
	got := []bool{srv.acquire("x") == nil, srv.acquire("x") == nil, srv.acquire("x") == nil}
	if !got[0] || !got[1] || got[2] {
		t.Errorf("three calls of one caller with 2 slots: %v, want true true false", got)
	}
	srv.release("x")
	if srv.acquire("x") != nil {
		t.Error("a released slot was not given back")
	}
}

// TestForgedAnswers: the caller refuses an answer signed by another key.
func TestForgedAnswers(t *testing.T) {
	other, _, _ := crypto.GenerateEd25519Key(nil)
	// A provider whose answers another key signs is not believed.
	hosts := p2ptest.MockNet(t, 2, 0)
	srv := NewServer(Params{Host: hosts[0], Key: other})
	defer srv.Close()
	if err := srv.Serve("s", "s", testModel(t, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := clientOf(t, hosts[1]).Call(context.Background(), hosts[0].ID(), "s", [][]float32{example(1)}); !errors.Is(err, market.ErrBadSignature) {
		t.Errorf("an answer signed by another key: %v, want ErrBadSignature", err)
	}
}

// TestOversizedCallOverTCP: over a real transport, a request far larger
// than the bound is refused with its reason, not left to stall.
func TestOversizedCallOverTCP(t *testing.T) {
	prov, caller := p2ptest.NewHost(t, p2ptest.Config(), nil), p2ptest.NewHost(t, p2ptest.Config(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := caller.Connect(ctx, p2ptest.AddrInfo(prov)); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Params{Host: prov, Key: key(t, prov), MaxRequestBytes: 4096})
	defer srv.Close()
	if err := srv.Serve("digits", "digits", testModel(t, 64)); err != nil {
		t.Fatal(err)
	}
	big := make([][]float32, 64)
	for i := range big {
		big[i] = make([]float32, 3000)
		for j := range big[i] {
			big[i][j] = 1.2345678
		}
	}
	_, err := clientOf(t, caller).Call(ctx, prov.ID(), "digits", big)
	var re *wire.ReplyError
	if !errors.As(err, &re) || !strings.Contains(re.Reply.Reason, "larger than 4096 bytes") {
		t.Errorf("a 2 MB call: %v; want a refusal naming the bound", err)
	}
	if ctx.Err() != nil {
		t.Error("the refusal took until the deadline")
	}
	if out, err := clientOf(t, caller).Call(ctx, prov.ID(), "digits", [][]float32{example(1)}); err != nil || len(out) != 1 {
		t.Errorf("a good call after it: %v, %v", out, err)
	}
}

// TestServingBounds: calls past all callers' bound are refused; a call
// whose answer could not fit its frame is refused for its size; calls
// given up are not computed; an answer of ragged rows is not believed.
func TestServingBounds(t *testing.T) {
	hosts := p2ptest.MockNet(t, 1, 0)
	srv := NewServer(Params{Host: hosts[0], Key: key(t, hosts[0]), MaxPerCaller: 2, MaxCalls: 3})
	defer srv.Close()
	var errs []error
	for _, caller := range []peer.ID{"a", "b", "c", "d"} {
		errs = append(errs, srv.acquire(caller))
	}
	if errs[0] != nil || errs[1] != nil || errs[2] != nil || errs[3] == nil || !strings.Contains(errs[3].Error(), "at most 3") {
		t.Errorf("four callers with 3 calls in all: %v", errs)
	}

	// A 1000-class model: an answer of 8 rows would not fit its frame.
	wide := make([]float32, 3*1000)
	var buf bytes.Buffer
	if err := train.WriteSafetensors(&buf, []train.NamedTensor{
		{Name: "layers.0.bias", Shape: []int{1000}, Data: make([]float32, 1000)},
		{Name: "layers.0.weight", Shape: []int{3, 1000}, Data: wide},
	}, map[string]string{"format": train.ModelFormat, "loss_function": "cross_entropy",
		"model": `{"input":[3],"layers":[{"type":"dense","units":1000},{"type":"softmax"}]}`}); err != nil {
		t.Fatal(err)
	}
	m, err := train.LoadModel(&buf, train.LoadOptions{MaxBatch: 64})
	if err != nil {
		t.Fatal(err)
	}
	v := newService("wide", key(t, hosts[0]), m, time.Millisecond, 8)
	xs := make([][]float32, 40)
	for i := range xs {
		xs[i] = example(i)
	}
	if err := v.fits(xs); err == nil || !strings.Contains(err.Error(), "send 1 to 32") {
		t.Errorf("40 rows of 1000 outputs: %v, want a refusal naming 32", err)
	}

	// A call given up before its batch runs is answered, not computed.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	got := make(chan result, 1)
	p := &pending{ctx: gone, examples: [][]float32{example(1)}, done: func(r result) { got <- r }}
	v.runBatch([]*pending{p}, 1)
	if r := <-got; !errors.Is(r.err, context.Canceled) {
		t.Errorf("a call given up: %v", r.err)
	}
	if st := v.stats(); st.Batches != 0 || st.Examples != 0 {
		t.Errorf("a call given up was computed: %+v", st)
	}

	// Ragged examples are refused before anything is sent.
	c := NewClient(hosts[0])
	defer c.Close()
	if _, err := c.Call(context.Background(), hosts[0].ID(), "wide", [][]float32{{1, 2, 3}, {1}}); !errors.Is(err, ErrBadCall) {
		t.Errorf("ragged examples: %v, want ErrBadCall", err)
	}
}

// TestReplicasOnOneServer: two instances of one service take turns and
// survive each other's stop; each service is announced when it starts.
func TestReplicasOnOneServer(t *testing.T) {
	hosts := p2ptest.MockNet(t, 2, 0)
	announced := make(chan string, 4)
	srv := NewServer(Params{Host: hosts[0], Key: key(t, hosts[0]),
		Announce: func(_ context.Context, name string) error { announced <- name; return nil }})
	defer srv.Close()
	for _, id := range []string{"job-a", "job-b"} {
		if err := srv.Serve(id, "digits", testModel(t, 4)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		select {
		case name := <-announced:
			if name != "digits" {
				t.Errorf("announced %q", name)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a service was not announced")
		}
	}
	ctx := context.Background()
	for range 4 {
		if _, err := clientOf(t, hosts[1]).Call(ctx, hosts[0].ID(), "digits", [][]float32{example(1)}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := srv.Stats("job-a")
	b, _ := srv.Stats("job-b")
	if a.Calls != 2 || b.Calls != 2 {
		t.Errorf("4 calls went %d and %d to the two instances, want turns", a.Calls, b.Calls)
	}
	srv.Stop("job-a")
	if _, err := clientOf(t, hosts[1]).Call(ctx, hosts[0].ID(), "digits", [][]float32{example(1)}); err != nil {
		t.Errorf("a call after one instance stopped: %v", err)
	}
	srv.Stop("job-b")
	if _, err := clientOf(t, hosts[1]).Call(ctx, hosts[0].ID(), "digits", [][]float32{example(1)}); err == nil || !strings.Contains(err.Error(), "no service") {
		t.Errorf("a call after both stopped: %v", err)
	}
}

// TestObserve: the hooks see each call with its answer's code, and each
// forward pass.
func TestObserve(t *testing.T) {
	hosts := p2ptest.MockNet(t, 2, 0)
	var mu sync.Mutex
	codes := map[string]int{}
	batches := 0
	srv := NewServer(Params{Host: hosts[0], Key: key(t, hosts[0]),
		Observe: func(code string, _ int, _ time.Duration) {
			mu.Lock()
			codes[code]++
			mu.Unlock()
		},
		ObserveBatch: func(int) {
			mu.Lock()
			batches++
			mu.Unlock()
		}})
	defer srv.Close()
	if err := srv.Serve("d", "digits", testModel(t, 4)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := clientOf(t, hosts[1]).Call(ctx, hosts[0].ID(), "digits", [][]float32{example(1)}); err != nil {
		t.Fatal(err)
	}
	clientOf(t, hosts[1]).Call(ctx, hosts[0].ID(), "digits", [][]float32{{1}})
	// The hook runs as the handler returns, just after the answer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		ok, rejected, b := codes["ok"], codes["rejected"], batches
		mu.Unlock()
		if ok == 1 && rejected == 1 && b == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("observed %v and %d batches, want one ok, one rejected, one batch", codes, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
