package serving

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
)

// ErrBadCall: examples that cannot make a call (rows of different
// widths), refused before anything is sent.
var ErrBadCall = errors.New("serving: bad call")

// errStreamGone: the stream a call went on failed before its answer.
var errStreamGone = errors.New("the stream ended")

// A Client keeps streams open to the providers it calls, up to
// clientStreams each, and sends many calls at once on each; callers of
// Call share them. Close ends them.
type Client struct {
	h       host.Host
	mu      sync.Mutex
	pools   map[peer.ID]*pool
	closed  bool
	wg      sync.WaitGroup // the streams' readers
	batches batchCache
}

// clientStreams bounds the streams a Client opens to one provider;
// streamCalls is the calls open on a stream past which it opens another.
const (
	clientStreams = 4
	streamCalls   = 16
)

// pool is a Client's streams to one provider.
type pool struct {
	streams []*callStream
	opening chan struct{} // closed when the stream being opened is in; nil when none is
}

// NewClient returns a client that calls providers through h.
func NewClient(h host.Host) *Client {
	return &Client{h: h, pools: map[peer.ID]*pool{}, batches: batchCache{m: map[string]market.InferBatch{}}}
}

// Close ends the client's streams and waits for their readers; calls
// still open fail. It is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	var all []*callStream
	for _, p := range c.pools {
		all = append(all, p.streams...)
	}
	c.pools = map[peer.ID]*pool{}
	c.mu.Unlock()
	for _, cs := range all {
		cs.fail(ErrClosed)
	}
	c.wg.Wait()
	return nil
}

// Call sends examples to the service that provider serves and returns its
// outputs, one row per example, once it has checked that the provider
// signed them, for this request, with a row for each example. An answer
// other than CodeOK comes back as a *wire.ReplyError.
func (c *Client) Call(ctx context.Context, provider peer.ID, service string, examples [][]float32) ([][]float32, error) {
	a, err := c.CallPaid(ctx, provider, service, examples, nil)
	return a.Outputs, err
}

// Answer is a checked answer to a call.
type Answer struct {
	Outputs [][]float32
	// Paid is what the provider says the caller's budget has been
	// promised, for a priced call.
	Paid uint64
}

// CallPaid is Call for a priced service: the request carries voucher, a
// signed voucher of the caller's budget with provider, and the answer
// says what the budget has been promised.
func (c *Client) CallPaid(ctx context.Context, provider peer.ID, service string, examples [][]float32, voucher []byte) (Answer, error) {
	cols := 0
	for i, x := range examples {
		if i == 0 {
			cols = len(x)
		} else if len(x) != cols {
			return Answer{}, fmt.Errorf("infer %s: %w: example %d has %d values, example 0 %d", service, ErrBadCall, i, len(x), cols)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	h := requestHeader{Service: service, Rows: len(examples), Cols: cols, Voucher: voucher}
	a, err := c.call(ctx, provider, h, examples)
	if errors.Is(err, errStreamGone) && ctx.Err() == nil {
		// A stream kept open may have gone stale: once more on a new one.
		a, err = c.call(ctx, provider, h, examples)
	}
	if err != nil {
		return Answer{}, fmt.Errorf("infer %s on %s: %w", service, provider, err)
	}
	return a, nil
}

func (c *Client) call(ctx context.Context, provider peer.ID, h requestHeader, examples [][]float32) (Answer, error) {
	cs, err := c.stream(ctx, provider)
	if err != nil {
		return Answer{}, err
	}
	id, answer := cs.register()
	defer cs.unregister(id)
	frame, err := appendFrame(nil, id, h, examples, nil)
	if err != nil {
		return Answer{}, err
	}
	// The request's hash is that of the frame's body, after its length.
	_, k := binary.Uvarint(frame)
	request := sha256.Sum256(frame[k:])
	if err := cs.send(frame); err != nil {
		return Answer{}, err
	}
	select {
	case a := <-answer:
		if a.err != nil {
			return Answer{}, a.err
		}
		return c.check(a.body, provider, h.Service, request, len(examples))
	case <-ctx.Done():
		return Answer{}, ctx.Err()
	}
}

// check checks an answer's body: the provider's reply, then its signed
// batch, this request's entry in it and the outputs' shape.
func (c *Client) check(body []byte, provider peer.ID, service string, request [32]byte, rows int) (Answer, error) {
	_, hb, tensor, err := splitBody(body)
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %v", market.ErrBadAnswer, err)
	}
	var h answerHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return Answer{}, fmt.Errorf("%w: header: %v", market.ErrBadAnswer, err)
	}
	if err := h.Reply.Err(); err != nil {
		return Answer{}, err
	}
	switch {
	case h.Rows != rows:
		return Answer{}, fmt.Errorf("%w: it has %d rows for %d examples", market.ErrBadAnswer, h.Rows, rows)
	case h.Cols < 1:
		return Answer{}, fmt.Errorf("%w: its rows have %d values", market.ErrBadAnswer, h.Cols)
	case h.Batch == nil:
		return Answer{}, fmt.Errorf("%w: an answer without a signed batch", market.ErrBadAnswer)
	}
	b, err := c.batches.open(*h.Batch, provider)
	if err != nil {
		return Answer{}, err
	}
	if b.Service != service {
		return Answer{}, fmt.Errorf("%w: it is for service %q, not %q", market.ErrBadAnswer, b.Service, service)
	}
	leaf := market.InferLeaf(request, h.Rows, h.Cols, tensor)
	if err := market.CheckInferProof(leaf, h.Index, b.Count, h.Proof, b.Root); err != nil {
		return Answer{}, err
	}
	out, err := decodeRows(tensor, h.Rows, h.Cols)
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %v", market.ErrBadAnswer, err)
	}
	if i := notFinite(out); i >= 0 {
		return Answer{}, fmt.Errorf("%w: its row %d is not finite numbers", market.ErrBadAnswer, i)
	}
	return Answer{Outputs: out, Paid: h.Paid}, nil
}

// stream returns a stream to provider with room for one more call,
// opening one where all are busy and there is room for another.
func (c *Client) stream(ctx context.Context, provider peer.ID) (*callStream, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		p := c.pools[provider]
		if p == nil {
			p = &pool{}
			c.pools[provider] = p
		}
		var best *callStream
		for _, cs := range p.streams {
			if best == nil || cs.open.Load() < best.open.Load() {
				best = cs
			}
		}
		if best != nil && (best.open.Load() < streamCalls || len(p.streams) >= clientStreams) {
			c.mu.Unlock()
			return best, nil
		}
		if p.opening != nil {
			wait := p.opening
			c.mu.Unlock()
			if best != nil {
				return best, nil
			}
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ready := make(chan struct{})
		p.opening = ready
		c.mu.Unlock()
		st, err := c.h.NewStream(ctx, provider, wire.InferProtocol)
		c.mu.Lock()
		p.opening = nil
		close(ready)
		if err != nil {
			c.mu.Unlock()
			if best != nil {
				return best, nil
			}
			return nil, err
		}
		if c.closed {
			c.mu.Unlock()
			_ = st.Reset()
			return nil, ErrClosed
		}
		cs := &callStream{c: c, provider: provider, st: st, w: bufio.NewWriterSize(st, 32<<10), calls: map[uint64]chan answer{}}
		p.streams = append(p.streams, cs)
		c.wg.Add(1)
		c.mu.Unlock()
		go cs.read()
		return cs, nil
	}
}

// drop takes cs out of its provider's pool.
func (c *Client) drop(cs *callStream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pools[cs.provider]
	if p == nil {
		return
	}
	for i, s := range p.streams {
		if s == cs {
			p.streams = append(p.streams[:i], p.streams[i+1:]...)
			break
		}
	}
	if len(p.streams) == 0 && p.opening == nil {
		delete(c.pools, cs.provider)
	}
}

// callStream is one stream of a Client to a provider: many calls at
// once, each under its id; one reader hands the answers to their calls.
type callStream struct {
	c        *Client
	provider peer.ID
	st       network.Stream
	open     atomic.Int32 // calls waiting on the stream

	wmu     sync.Mutex
	w       *bufio.Writer
	sending atomic.Int32 // calls writing or waiting to

	mu    sync.Mutex
	next  uint64
	calls map[uint64]chan answer
	err   error // why the stream ended, once it has
}

// answer is an answer's body, or why none came.
type answer struct {
	body []byte
	err  error
}

func (cs *callStream) register() (uint64, chan answer) {
	ch := make(chan answer, 1)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.err != nil {
		ch <- answer{err: cs.err}
		return 0, ch
	}
	cs.next++
	cs.calls[cs.next] = ch
	cs.open.Add(1)
	return cs.next, ch
}

func (cs *callStream) unregister(id uint64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, ok := cs.calls[id]; ok {
		delete(cs.calls, id)
		cs.open.Add(-1)
	}
}

// send writes one request frame; the last of the calls sending at once
// flushes them all.
func (cs *callStream) send(frame []byte) error {
	cs.sending.Add(1)
	cs.wmu.Lock()
	defer cs.wmu.Unlock()
	_ = cs.st.SetWriteDeadline(time.Now().Add(requestTimeout))
	_, err := cs.w.Write(frame)
	if cs.sending.Add(-1) == 0 && err == nil {
		err = cs.w.Flush()
	}
	if err != nil {
		err = fmt.Errorf("%w: send: %v", errStreamGone, err)
		cs.fail(err)
	}
	return err
}

// read hands each answer to its call until the stream ends.
func (cs *callStream) read() {
	defer cs.c.wg.Done()
	r := bufio.NewReaderSize(cs.st, 32<<10)
	for {
		body, err := wire.ReadFrame(r, maxAnswerBytes)
		if err != nil {
			cs.fail(fmt.Errorf("%w: read the answer: %v", errStreamGone, err))
			return
		}
		id, hb, _, err := splitBody(body)
		if err != nil {
			cs.fail(fmt.Errorf("%w: %v", market.ErrBadAnswer, err))
			return
		}
		if id == 0 {
			// The provider ends the stream, and says why.
			var h answerHeader
			if err := json.Unmarshal(hb, &h); err == nil && h.Reply.Err() != nil {
				cs.fail(h.Reply.Err())
			} else {
				cs.fail(fmt.Errorf("%w: the provider ended it", errStreamGone))
			}
			return
		}
		cs.mu.Lock()
		ch := cs.calls[id]
		if ch != nil {
			delete(cs.calls, id)
			cs.open.Add(-1)
		}
		cs.mu.Unlock()
		if ch != nil {
			ch <- answer{body: body}
		}
	}
}

// fail ends the stream: its open calls get err, and the pool drops it.
func (cs *callStream) fail(err error) {
	cs.mu.Lock()
	if cs.err != nil {
		cs.mu.Unlock()
		return
	}
	cs.err = err
	calls := cs.calls
	cs.calls = map[uint64]chan answer{}
	cs.open.Store(0)
	cs.mu.Unlock()
	_ = cs.st.Reset()
	for _, ch := range calls {
		ch <- answer{err: err}
	}
	cs.c.drop(cs)
}

// batchCache keeps the batches a Client has checked the signature of,
// so that the calls of one batch check it once.
type batchCache struct {
	mu sync.Mutex
	m  map[string]market.InferBatch
}

// maxCachedBatches bounds the cache; a full one starts over.
const maxCachedBatches = 256

// open opens env, a batch that signer must have signed, from the cache
// where it can.
func (bc *batchCache) open(env market.Envelope, signer peer.ID) (market.InferBatch, error) {
	key := env.Type + "\n" + env.Signer + "\n" + string(env.Signature) + string(env.Payload)
	bc.mu.Lock()
	b, ok := bc.m[key]
	bc.mu.Unlock()
	if !ok {
		from, err := env.Open(market.TypeInferBatch, &b)
		if err != nil {
			return b, err
		}
		if from != signer {
			return b, fmt.Errorf("%w: the answer is signed by %s", market.ErrBadSignature, from)
		}
		bc.mu.Lock()
		if len(bc.m) >= maxCachedBatches {
			clear(bc.m)
		}
		bc.m[key] = b
		bc.mu.Unlock()
	}
	if env.Signer != signer.String() {
		return b, fmt.Errorf("%w: the answer is signed by %s", market.ErrBadSignature, env.Signer)
	}
	return b, nil
}
