package serving

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
)

// mnistMLP is the MNIST perceptron of the examples (784-128-10), with
// random weights: the cost of a call does not depend on their values.
func mnistMLP(b *testing.B, maxBatch int) *train.Model {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.05)
		}
		return v
	}
	var buf bytes.Buffer
	err := train.WriteSafetensors(&buf, []train.NamedTensor{
		{Name: "layers.0.bias", Shape: []int{128}, Data: rnd(128)},
		{Name: "layers.0.weight", Shape: []int{784, 128}, Data: rnd(784 * 128)},
		{Name: "layers.2.bias", Shape: []int{10}, Data: rnd(10)},
		{Name: "layers.2.weight", Shape: []int{128, 10}, Data: rnd(1280)},
	}, map[string]string{"format": train.ModelFormat, "loss_function": "cross_entropy",
		"model": `{"input":[784],"layers":[{"type":"dense","units":128},{"type":"relu"},{"type":"dense","units":10},{"type":"softmax"}]}`})
	if err != nil {
		b.Fatal(err)
	}
	m, err := train.LoadModel(&buf, train.LoadOptions{MaxBatch: maxBatch})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func digit(i int) []float32 {
	x := make([]float32, 784)
	for j := range x {
		x[j] = float32((i*31+j*7)%256) / 255
	}
	return x
}

// tcpPair starts a provider serving the model and a caller connected to
// it, over TCP on loopback.
func tcpPair(b *testing.B, m *train.Model, window time.Duration) (prov *p2p.Host, caller *Client) {
	b.Helper()
	prov, host := p2ptest.NewHost(b, p2ptest.Config(), nil), p2ptest.NewHost(b, p2ptest.Config(), nil)
	caller = NewClient(host)
	b.Cleanup(func() { caller.Close() })
	if err := host.Connect(context.Background(), p2ptest.AddrInfo(prov)); err != nil {
		b.Fatal(err)
	}
	// The server's default bounds: they take 64 calls at once from one
	// caller.
	srv := NewServer(Params{Host: prov, Key: key(b, prov), Window: window})
	b.Cleanup(func() { srv.Close() })
	if err := srv.Serve("mnist", "mnist", m); err != nil {
		b.Fatal(err)
	}
	return prov, caller
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

// BenchmarkCallLatency times one call of one MNIST example through the
// swarm (TCP on loopback, signed answer) against the same forward pass in
// process, in the same run; the target is at most 1 ms added at p50.
func BenchmarkCallLatency(b *testing.B) {
	m := mnistMLP(b, 64)
	prov, caller := tcpPair(b, m, -1)
	x := [][]float32{digit(1)}
	const rounds = 200
	local := make([]time.Duration, 0, rounds)
	for range rounds {
		t0 := time.Now()
		if _, err := m.Predict(x); err != nil {
			b.Fatal(err)
		}
		local = append(local, time.Since(t0))
	}
	ctx := context.Background()
	var remote []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := caller.Call(ctx, prov.ID(), "mnist", x); err != nil {
			b.Fatal(err)
		}
		remote = append(remote, time.Since(t0))
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(remote, 50)), "call-p50-ms")
	b.ReportMetric(ms(pct(remote, 99)), "call-p99-ms")
	b.ReportMetric(ms(pct(local, 50)), "inprocess-p50-ms")
	b.ReportMetric(ms(pct(remote, 50)-pct(local, 50)), "added-p50-ms")
}

// BenchmarkBatching runs 64 callers at once against one provider, with
// dynamic batching and with every call alone, in the same run, and
// reports the calls per second of each and their ratio; the target is at
// least 5x.
func BenchmarkBatching(b *testing.B) {
	const callers, perCaller = 64, 20
	rate := func(window time.Duration) float64 {
		prov, caller := tcpPair(b, mnistMLP(b, 64), window)
		ctx := context.Background()
		var wg sync.WaitGroup
		t0 := time.Now()
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perCaller {
					if _, err := caller.Call(ctx, prov.ID(), "mnist", [][]float32{digit(c*perCaller + i)}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return callers * perCaller / time.Since(t0).Seconds()
	}
	var batched, alone float64
	for range b.N {
		batched += rate(2 * time.Millisecond)
		alone += rate(-1)
	}
	b.ReportMetric(batched/float64(b.N), "batched-calls/s")
	b.ReportMetric(alone/float64(b.N), "alone-calls/s")
	b.ReportMetric(batched/alone, "batched/alone")
}
