package serving

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/trainspec"
)

// errQueueFull: a call that found its service's queue of calls full.
var errQueueFull = errors.New("the batch queue is full")

// errStopped: the service stopped before it answered.
var errStopped = errors.New("the service stopped")

// service batches the calls to one model: one goroutine takes calls off
// the queue for up to the window, or until the batch is full, and runs
// them in one forward pass.
type service struct {
	name   string
	key    crypto.PrivKey // signs each batch
	model  *train.Model
	window time.Duration
	queue  chan *pending
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
	// maxRows is the most examples one call may hold.
	maxRows int
	// observe, when set, is told of each forward pass.
	observe func(examples int)

	mu sync.Mutex
	st Stats
}

// pending is one call waiting for its batch.
type pending struct {
	ctx      context.Context // the call's: a call given up is not computed
	examples [][]float32
	request  [32]byte  // the hash of the request as sent
	start    time.Time // when the request arrived
	// done is told the call's result, once; it must not block.
	done func(result)
}

// result is a call's answer: its outputs' bytes and their place in the
// signed batch, or why there are none.
type result struct {
	err  error
	code wire.Code // of the refusal, when err is set
	rows int
	cols int
	// outputs are the rows' float32 values, little-endian.
	outputs []byte
	batch   *market.Envelope
	index   int
	proof   [][]byte
	// paid is what the call's budget has been promised, for a priced call.
	paid uint64
}

// answerBytesPerValue is what one output value takes in an answer.
const answerBytesPerValue = 4

func failed(code wire.Code, err error) result { return result{err: err, code: code} }

func newService(name string, key crypto.PrivKey, m *train.Model, window time.Duration, maxQueue int) *service {
	// A call may hold as many examples as one batch, and as its answer
	// can carry.
	rows := market.MaxEnvelopeBytes / max(1, m.OutputSize()*answerBytesPerValue)
	return &service{name: name, key: key, model: m, window: window, queue: make(chan *pending, maxQueue),
		quit: make(chan struct{}), done: make(chan struct{}), maxRows: max(1, min(m.MaxBatch(), rows))}
}

// fits checks a call's examples against the model: between 1 and maxRows
// of them, each of the input's size.
func (v *service) fits(examples [][]float32) error {
	if n := len(examples); n == 0 || n > v.maxRows {
		return fmt.Errorf("%d examples in one call; send 1 to %d", n, v.maxRows)
	}
	in := v.model.InputShape()
	for i, x := range examples {
		if len(x) != in.Size() {
			return fmt.Errorf("example %d has %d values; the model takes %s = %d", i, len(x), trainspec.ShapeString(in), in.Size())
		}
	}
	return nil
}

// submit queues the call, or refuses it at once when the queue is full;
// its done is told the result.
func (v *service) submit(p *pending) error {
	select {
	case <-v.quit:
		return errStopped
	default:
	}
	select {
	case v.queue <- p:
		return nil
	default:
		return errQueueFull
	}
}

// run batches calls until stop.
func (v *service) run() {
	defer close(v.done)
	max := v.model.MaxBatch()
	var carry *pending
	for {
		var batch []*pending
		n := 0
		if carry != nil {
			batch, n, carry = append(batch, carry), len(carry.examples), nil
		} else {
			select {
			case p := <-v.queue:
				batch, n = append(batch, p), len(p.examples)
			case <-v.quit:
				v.fail(errStopped)
				return
			}
		}
		if v.window > 0 {
			timer := time.NewTimer(v.window)
		collect:
			for n < max {
				select {
				case p := <-v.queue:
					if n+len(p.examples) > max {
						carry = p
						break collect
					}
					batch, n = append(batch, p), n+len(p.examples)
				case <-timer.C:
					break collect
				case <-v.quit:
					timer.Stop()
					for _, p := range batch {
						p.done(failed(wire.CodeFailed, errStopped))
					}
					if carry != nil {
						carry.done(failed(wire.CodeFailed, errStopped))
					}
					v.fail(errStopped)
					return
				}
			}
			timer.Stop()
		}
		v.runBatch(batch, n)
	}
}

// runBatch runs one forward pass over the calls' examples and answers each
// call with its rows.
func (v *service) runBatch(batch []*pending, n int) {
	// Calls whose callers gave up are answered without being computed.
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.done(failed(wire.CodeFailed, err))
			n -= len(p.examples)
			continue
		}
		live = append(live, p)
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	all := make([][]float32, 0, n)
	for _, p := range batch {
		all = append(all, p.examples...)
	}
	out, err := v.model.Predict(all)
	if err != nil {
		for _, p := range batch {
			p.done(failed(wire.CodeFailed, err))
		}
		return
	}
	// The counts are taken before the answers go: a caller that has its
	// answer finds its call counted.
	var latency time.Duration
	for _, p := range batch {
		if !p.start.IsZero() {
			latency += time.Since(p.start)
		}
	}
	v.mu.Lock()
	v.st.Latency += latency
	v.st.Calls += int64(len(batch))
	v.st.Examples += int64(n)
	v.st.Batches++
	v.mu.Unlock()
	if v.observe != nil {
		v.observe(n)
	}
	v.answer(batch, out)
}

// answer signs the batch's outputs once and answers each call with its
// rows, its place in the batch and its proof. A call whose outputs are
// not finite numbers is refused and left out of the batch.
func (v *service) answer(batch []*pending, out [][]float32) {
	cols := v.model.OutputSize()
	res := make([]result, len(batch))
	var leaves [][32]byte
	at := 0
	for i, p := range batch {
		rows := out[at : at+len(p.examples)]
		at += len(p.examples)
		if j := notFinite(rows); j >= 0 {
			res[i] = failed(wire.CodeRejected, fmt.Errorf("the model's outputs for example %d are not finite numbers (inputs out of its range?)", j))
			continue
		}
		buf := make([]byte, 0, 4*cols*len(rows))
		for _, r := range rows {
			buf = appendFloats(buf, r)
		}
		res[i] = result{rows: len(rows), cols: cols, outputs: buf, index: len(leaves)}
		leaves = append(leaves, market.InferLeaf(p.request, len(rows), cols, buf))
	}
	if len(leaves) > 0 {
		root, proofs := market.InferTree(leaves)
		env, err := market.Seal(v.key, market.TypeInferBatch, market.InferBatch{
			Service: v.name, Root: root[:], Count: len(leaves), IssuedAt: time.Now().UTC()})
		for i := range res {
			switch {
			case res[i].err != nil:
			case err != nil:
				res[i] = failed(wire.CodeFailed, fmt.Errorf("sign the answer: %w", err))
			default:
				res[i].batch, res[i].proof = &env, proofs[res[i].index]
			}
		}
	}
	for i, p := range batch {
		p.done(res[i])
	}
}

// notFinite returns the first row holding a NaN or an infinity, or -1.
func notFinite(rows [][]float32) int {
	for i, row := range rows {
		for _, x := range row {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return i
			}
		}
	}
	return -1
}

// fail answers every queued call with err.
func (v *service) fail(err error) {
	for {
		select {
		case p := <-v.queue:
			p.done(failed(wire.CodeFailed, err))
		default:
			return
		}
	}
}

func (v *service) stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.st
}

// stop ends the batcher and waits for it.
func (v *service) stop() {
	v.once.Do(func() { close(v.quit) })
	<-v.done
}
