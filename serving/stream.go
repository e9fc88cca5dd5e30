package serving

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/p2p/wire"
)

// serverStream is one stream of a caller on the provider: the handler's
// goroutine reads its requests and queues them; its writer writes the
// answers as the batches finish.
type serverStream struct {
	s      *Server
	st     network.Stream
	caller peer.ID
	ctx    context.Context // ends when the stream fails: its calls are not computed
	cancel context.CancelFunc
	// answers come from the batchers: each holds one of the caller's call
	// slots, so MaxPerCaller of room means a batcher never waits.
	answers chan outgoing
	// refusals come from the reader, which waits for room.
	refusals chan outgoing
	calls    sync.WaitGroup // the stream's calls not yet answered
}

// outgoing is one answer to write.
type outgoing struct {
	id       uint64
	res      result
	slot     bool // holds a call slot, given back once written
	examples int
	start    time.Time
	// charge is the call's payment, given back when the answer cannot be
	// sent.
	charge Charge
}

// handle serves one stream until the caller ends it, it fails or the
// server closes; it answers every call it queued before it returns.
func (s *Server) handle(st network.Stream) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = st.Reset()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	caller := st.Conn().RemotePeer()
	if err := s.openStream(caller); err != nil {
		// A refusal of the stream itself, on id 0, then the end.
		_ = st.SetWriteDeadline(time.Now().Add(requestTimeout))
		w := bufio.NewWriter(st)
		if frame, ferr := answerFrame(nil, 0, failed(wire.CodeFull, err)); ferr == nil {
			_, _ = w.Write(frame)
			_ = w.Flush()
		}
		s.observe(string(wire.CodeFull), 0, time.Time{})
		_ = st.Close()
		return
	}
	defer s.closeStream(caller)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ss := &serverStream{s: s, st: st, caller: caller, ctx: ctx, cancel: cancel,
		answers: make(chan outgoing, s.p.MaxPerCaller), refusals: make(chan outgoing, 16)}
	finish := make(chan struct{})
	written := make(chan struct{})
	go func() {
		defer close(written)
		ss.write(finish)
	}()
	// Close ends the stream: its calls are not computed, and the reader
	// stops.
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := ss.read()
	if err != nil && !errors.Is(err, errBadFrame) {
		s.log.Debug("infer stream ended", "caller", caller, "error", err)
		cancel()
	}
	ss.calls.Wait()
	if errors.Is(err, errBadFrame) {
		// The calls before it are answered, then the stream ends with why.
		ss.refuse(0, wire.CodeRejected, time.Time{}, "%v", err)
	}
	close(finish)
	<-written
	if stop() {
		_ = st.Close()
	}
}

// read reads and queues requests until the caller ends the stream (nil)
// or a frame that does not parse, or a failure, ends it.
func (ss *serverStream) read() error {
	r := bufio.NewReaderSize(ss.st, 32<<10)
	var buf []byte
	for {
		_ = ss.st.SetReadDeadline(time.Now().Add(idleTimeout))
		if _, err := r.Peek(1); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		_ = ss.st.SetReadDeadline(time.Now().Add(requestTimeout))
		n, err := readFrameLen(r, ss.s.p.MaxRequestBytes)
		if errors.Is(err, wire.ErrFrameTooLarge) {
			// Refused from its length, and skipped unread: the calls after
			// it on the stream go on.
			id, idErr := binary.ReadUvarint(r)
			if idErr != nil {
				return idErr
			}
			ss.refuse(id, wire.CodeRejected, time.Now(), "the request is larger than %d bytes", ss.s.p.MaxRequestBytes)
			if _, err := io.CopyN(io.Discard, r, int64(n-uvarintLen(id))); err != nil {
				return fmt.Errorf("skip a request too large: %w", err)
			}
			continue
		}
		if err != nil {
			return err
		}
		start := time.Now()
		if buf, err = readBody(r, buf, n); err != nil {
			return err
		}
		if err := ss.request(buf, start); err != nil {
			return err
		}
	}
}

func uvarintLen(x uint64) int { return len(binary.AppendUvarint(nil, x)) }

// request queues one call, or refuses it on its id; an error is a frame
// that does not parse, which ends the stream.
func (ss *serverStream) request(body []byte, start time.Time) error {
	id, hb, tensor, err := splitBody(body)
	if err != nil {
		return err
	}
	if id == 0 {
		return fmt.Errorf("%w: a request on id 0", errBadFrame)
	}
	h, err := decodeRequestHeader(hb)
	if err != nil {
		ss.refuse(id, wire.CodeRejected, start, "bad request: %v", err)
		return nil
	}
	svc := ss.s.service(h.Service)
	if svc == nil {
		ss.refuse(id, wire.CodeRejected, start, "no service %q here", h.Service)
		return nil
	}
	examples, err := decodeRows(tensor, h.Rows, h.Cols)
	if err != nil {
		ss.refuse(id, wire.CodeRejected, start, "bad request: %v", err)
		return nil
	}
	if err := svc.fits(examples); err != nil {
		ss.refuse(id, wire.CodeRejected, start, "%v", err)
		return nil
	}
	if err := ss.s.acquire(ss.caller); err != nil {
		ss.refuse(id, wire.CodeFull, start, "%v", err)
		return nil
	}
	var charge Charge
	if ss.s.p.Charge != nil {
		if charge, err = ss.s.p.Charge(ss.caller, h.Service, h.Voucher); err != nil {
			ss.s.release(ss.caller)
			ss.refuse(id, wire.CodePayment, start, "%v", err)
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(ss.ctx, callTimeout)
	p := &pending{ctx: ctx, examples: examples, request: sha256.Sum256(body), start: start}
	p.done = func(r result) {
		cancel()
		if charge != nil {
			if r.err != nil {
				charge.Undo()
				charge = nil
			} else {
				r.paid = charge.Paid()
			}
		}
		ss.answers <- outgoing{id: id, res: r, slot: true, examples: len(examples), start: start, charge: charge}
		ss.calls.Done()
	}
	ss.calls.Add(1)
	if err := svc.submit(p); err != nil {
		ss.calls.Done()
		cancel()
		if charge != nil {
			charge.Undo()
		}
		ss.s.release(ss.caller)
		code := wire.CodeFailed
		if errors.Is(err, errQueueFull) {
			code = wire.CodeFull
		}
		ss.refuse(id, code, start, "%v", err)
	}
	return nil
}

// refuse answers the call id with code and a reason.
func (ss *serverStream) refuse(id uint64, code wire.Code, start time.Time, format string, args ...any) {
	o := outgoing{id: id, res: failed(code, fmt.Errorf(format, args...)), start: start}
	select {
	case ss.refusals <- o:
	case <-ss.ctx.Done():
	}
}

// write writes the answers as they come, flushing when none is waiting,
// until finish; once the stream has failed it only gives the call slots
// back.
func (ss *serverStream) write(finish <-chan struct{}) {
	w := bufio.NewWriterSize(ss.st, 32<<10)
	var buf []byte
	broken := false
	send := func(o outgoing) {
		code := string(o.res.code)
		if o.res.err == nil {
			code = string(wire.CodeOK)
		}
		if !broken {
			var err error
			if buf, err = answerFrame(buf[:0], o.id, o.res); err == nil {
				_ = ss.st.SetWriteDeadline(time.Now().Add(requestTimeout))
				_, err = w.Write(buf)
			}
			if err != nil {
				ss.s.log.Debug("infer answer not sent", "caller", ss.caller, "error", err)
				broken = true
				ss.cancel()
			}
		}
		if o.charge != nil {
			if broken {
				o.charge.Undo()
			} else {
				o.charge.Done()
			}
		}
		if broken {
			code = "reset"
		}
		if o.slot {
			ss.s.release(ss.caller)
		}
		ss.s.observe(code, o.examples, o.start)
	}
	flush := func() {
		if !broken && len(ss.answers) == 0 && len(ss.refusals) == 0 {
			if err := w.Flush(); err != nil {
				broken = true
				ss.cancel()
			}
		}
	}
	for {
		select {
		case o := <-ss.answers:
			send(o)
		case o := <-ss.refusals:
			send(o)
		case <-finish:
			// Every call is answered: what is left goes out, then the end.
			for {
				select {
				case o := <-ss.answers:
					send(o)
				case o := <-ss.refusals:
					send(o)
				default:
					flush()
					return
				}
			}
		}
		flush()
	}
}

// answerFrame appends the frame that answers call id with r.
func answerFrame(buf []byte, id uint64, r result) ([]byte, error) {
	if r.err != nil {
		return appendFrame(buf, id, answerHeader{Reply: wire.Reply{Code: r.code, Reason: wire.Truncate(r.err.Error(), wire.MaxReasonBytes)}}, nil, nil)
	}
	return appendFrame(buf, id, answerHeader{Reply: wire.OK, Rows: r.rows, Cols: r.cols,
		Batch: r.batch, Index: r.index, Proof: r.proof, Paid: r.paid}, nil, r.outputs)
}

// observe tells Params.Observe of one call.
func (s *Server) observe(code string, examples int, start time.Time) {
	if s.p.Observe == nil {
		return
	}
	var d time.Duration
	if !start.IsZero() {
		d = time.Since(start)
	}
	s.p.Observe(code, examples, d)
}
