package serving

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/market"
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
	answer   chan result // buffered: the batcher never waits on a caller
}

type result struct {
	outputs [][]float32
	err     error
}

// answerBytesPerValue bounds what one output value takes in a signed
// answer: up to 16 bytes of JSON, base64 in the envelope.
const answerBytesPerValue = 24

func newService(name string, m *train.Model, window time.Duration, maxQueue int) *service {
	// A call may hold as many examples as one batch, and as its answer
	// can carry.
	rows := (market.MaxEnvelopeBytes - 4096) / max(1, m.OutputSize()*answerBytesPerValue)
	return &service{name: name, model: m, window: window, queue: make(chan *pending, maxQueue),
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

// call queues the examples and waits for their outputs.
func (v *service) call(ctx context.Context, examples [][]float32) ([][]float32, error) {
	p := &pending{ctx: ctx, examples: examples, answer: make(chan result, 1)}
	select {
	case v.queue <- p:
	case <-v.quit:
		return nil, errStopped
	default:
		return nil, errQueueFull
	}
	select {
	case r := <-p.answer:
		return r.outputs, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-v.done:
		// The batcher may have answered just before it ended.
		select {
		case r := <-p.answer:
			return r.outputs, r.err
		default:
			return nil, errStopped
		}
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
						p.answer <- result{err: errStopped}
					}
					if carry != nil {
						carry.answer <- result{err: errStopped}
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
			p.answer <- result{err: err}
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
			p.answer <- result{err: err}
		}
		return
	}
	at := 0
	for _, p := range batch {
		p.answer <- result{outputs: out[at : at+len(p.examples)]}
		at += len(p.examples)
	}
	if v.observe != nil {
		v.observe(n)
	}
	v.mu.Lock()
	v.st.Calls += int64(len(batch))
	v.st.Examples += int64(n)
	v.st.Batches++
	v.mu.Unlock()
}

// fail answers every queued call with err.
func (v *service) fail(err error) {
	for {
		select {
		case p := <-v.queue:
			p.answer <- result{err: err}
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
