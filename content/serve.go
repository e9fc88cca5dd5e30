package content

import (
	"bufio"
	"encoding/binary"
	"errors"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
)

// sendBuf is the size of the writes of a DAG stream: frames are laid out
// in one buffer, each block read from its pack straight into it, and the
// buffer goes to the stream when the next frame does not fit.
const sendBuf = 1 << 20

// serveDAG answers one DAG request from this node's blocks. Each block is
// checked against its CID after it is read and before it is sent.
func (s *Store) serveDAG(st network.Stream) {
	select {
	case s.serving <- struct{}{}:
		defer func() { <-s.serving }()
	default:
		st.Reset() // too many at once: the requester falls back to bitswap
		return
	}
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(streamIdle))
	req, err := readRequest(bufio.NewReader(st))
	if err != nil {
		s.log.Debug("bad dag request", "peer", st.Conn().RemotePeer(), "error", err)
		st.Reset()
		return
	}
	w := &frameWriter{st: st, buf: make([]byte, 0, sendBuf)}
	status := byte(statusComplete)
	seen := cid.NewSet()
	// send adds one block to the stream and returns its links when deep;
	// the walk is depth first with a stack of its own, so that a deep DAG
	// cannot exhaust the goroutine's stack.
	send := func(c cid.Cid, deep bool) ([]cid.Cid, error) {
		data, err := s.appendBlock(w, c)
		if err != nil {
			return nil, err // the requester is gone: stop walking
		}
		if data == nil {
			status = statusIncomplete
			return nil, nil
		}
		s.counts.streamBlocksOut.Add(1)
		s.counts.streamBytesOut.Add(uint64(len(data)))
		if !deep || c.Prefix().Codec == cid.Raw {
			return nil, nil
		}
		// The frame's bytes are reused once sent: decode a copy.
		b, err := blocks.NewBlockWithCid(append([]byte(nil), data...), c)
		if err != nil {
			status = statusIncomplete
			return nil, nil
		}
		links, err := blockLinks(b)
		if err != nil {
			status = statusIncomplete
			return nil, nil
		}
		return links, s.ctx.Err()
	}
	for _, root := range req.roots {
		stack := []cid.Cid{root}
		for len(stack) > 0 {
			c := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if !seen.Visit(c) {
				continue
			}
			links, err := send(c, !req.shallow)
			if err != nil {
				st.Reset()
				return
			}
			for k := len(links) - 1; k >= 0; k-- {
				stack = append(stack, links[k])
			}
		}
	}
	w.buf = binary.AppendUvarint(w.buf, 0)
	w.buf = append(w.buf, status)
	if err := w.flush(); err != nil {
		st.Reset()
	}
}

// appendBlock adds the frame of block c to w, its data read from the pack
// into w's buffer and checked there. It returns the data, or nil data when
// the block is missing or corrupt (and nothing was added); an error means
// the stream failed.
func (s *Store) appendBlock(w *frameWriter, c cid.Cid) ([]byte, error) {
	// The GC lock is held per block, not across network writes.
	s.gc.RLock()
	locked := true
	defer func() {
		if locked {
			s.gc.RUnlock()
		}
	}()
	ext, err := s.packs.Locate(c)
	if err != nil {
		return nil, nil
	}
	cb := c.Bytes()
	frame := 2*binary.MaxVarintLen64 + len(cb) + ext.Size()
	if len(w.buf)+frame > cap(w.buf) {
		s.gc.RUnlock()
		locked = false
		if err := w.flush(); err != nil {
			return nil, err
		}
		s.gc.RLock()
		locked = true
		// Garbage collection may have moved or dropped it meanwhile.
		if ext, err = s.packs.Locate(c); err != nil {
			return nil, nil
		}
		frame = 2*binary.MaxVarintLen64 + len(cb) + ext.Size()
		if frame > cap(w.buf) {
			w.buf = make([]byte, 0, frame)
		}
	}
	size := ext.Size()
	mark := len(w.buf)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(cb)))
	w.buf = append(w.buf, cb...)
	w.buf = binary.AppendUvarint(w.buf, uint64(size))
	start := len(w.buf)
	w.buf = w.buf[:start+size]
	data := w.buf[start:]
	err = s.packs.ReadExtent(c, ext, data)
	if err == nil {
		if sum, herr := c.Prefix().Sum(data); herr != nil || !sum.Equals(c) {
			err = errors.New("corrupt block")
		}
		if err != nil {
			// Corrupt on disk: the verifying read deletes it; never send it.
			s.bstore.Get(s.ctx, c)
		}
	}
	if err != nil {
		w.buf = w.buf[:mark]
		return nil, nil
	}
	return data, nil
}

// frameWriter gathers the frames of a DAG stream into large writes.
type frameWriter struct {
	st  network.Stream
	buf []byte
}

// flush writes the frames gathered so far.
func (w *frameWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.st.SetWriteDeadline(time.Now().Add(streamIdle))
	_, err := w.st.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}
