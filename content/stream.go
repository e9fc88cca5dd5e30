package content

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"io"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// maxRequestRoots bounds the roots of one request.
	maxRequestRoots = 4096
	// maxCIDSize bounds the bytes of one CID in a request or a response.
	maxCIDSize = 128
	// maxBlockSize is the largest block accepted, as in bitswap.
	maxBlockSize = 2 << 20
	// streamIdle bounds the wait for the next frame in either direction.
	streamIdle = 30 * time.Second
	// maxServing bounds the DAG streams a node serves at once.
	maxServing = 8
	// putBatch is how many received blocks are written together.
	putBatch = 32
)

// Stream status codes, sent after the last block.
const (
	statusComplete   = 0 // every block under the roots was sent
	statusIncomplete = 1 // the provider lacks part of the DAG
)

// request is the first message of a stream: flags, then the roots.
//
//	uvarint(flags) uvarint(n) n × (uvarint(len) cid)
//
// Flag 1: send only the roots' own blocks, not their DAGs.
type request struct {
	roots   []cid.Cid
	shallow bool
}

func writeRequest(w *bufio.Writer, r request) error {
	var flags uint64
	if r.shallow {
		flags = 1
	}
	writeUvarint(w, flags)
	writeUvarint(w, uint64(len(r.roots)))
	for _, c := range r.roots {
		writeBytes(w, c.Bytes())
	}
	return w.Flush()
}

func readRequest(r *bufio.Reader) (request, error) {
	flags, err := binary.ReadUvarint(r)
	if err != nil {
		return request{}, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return request{}, err
	}
	if n == 0 || n > maxRequestRoots {
		return request{}, fmt.Errorf("request with %d roots (want 1..%d)", n, maxRequestRoots)
	}
	req := request{shallow: flags&1 != 0, roots: make([]cid.Cid, 0, n)}
	for range n {
		b, err := readBytes(r, maxCIDSize)
		if err != nil {
			return request{}, err
		}
		c, err := cid.Cast(b)
		if err != nil {
			return request{}, fmt.Errorf("bad cid in request: %w", err)
		}
		req.roots = append(req.roots, c)
	}
	return req, nil
}

// A response is a sequence of frames, then the end marker and a status:
//
//	frame: uvarint(len) cid uvarint(len) data
//	end:   uvarint(0) status-byte

func writeUvarint(w *bufio.Writer, v uint64) error {
	var buf [binary.MaxVarintLen64]byte
	_, err := w.Write(buf[:binary.PutUvarint(buf[:], v)])
	return err
}

func writeBytes(w *bufio.Writer, b []byte) error {
	if err := writeUvarint(w, uint64(len(b))); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// readBytes reads a length-prefixed byte string of at most limit bytes.
func readBytes(r *bufio.Reader, limit uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("frame of %d bytes exceeds %d", n, limit)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// frame is one decoded frame of a response: a block, or the end marker
// with the provider's status.
type frame struct {
	block  blocks.Block
	end    bool
	status byte
}

// readFrame decodes the next frame of a response. A block's data is read
// into the slice alloc returns for its size, which is at most maxBlockSize;
// the block's hash is not checked here.
func readFrame(r *bufio.Reader, alloc func(n int) []byte) (frame, error) {
	cb, err := readBytes(r, maxCIDSize)
	if err != nil {
		return frame{}, err
	}
	if len(cb) == 0 {
		status, err := r.ReadByte()
		if err != nil {
			return frame{}, err
		}
		return frame{end: true, status: status}, nil
	}
	c, err := cid.Cast(cb)
	if err != nil {
		return frame{}, fmt.Errorf("bad cid: %w", err)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return frame{}, fmt.Errorf("block frame: %w", err)
	}
	if n > maxBlockSize {
		return frame{}, fmt.Errorf("block frame of %d bytes exceeds %d", n, maxBlockSize)
	}
	data := alloc(int(n))
	if _, err := io.ReadFull(r, data); err != nil {
		return frame{}, err
	}
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		return frame{}, err
	}
	return frame{block: b}, nil
}

// errIncomplete: a provider ended its stream without the whole DAG.
var errIncomplete = errors.New("provider lacks part of the DAG")

// recvBuf is the size of a DAG stream's read buffer.
const recvBuf = 16 << 10

// slabSize is the size of the slabs that hold the data of received
// blocks: a batch of putBatch blocks of 256 KiB, the size of UnixFS leaves.
const slabSize = putBatch * 256 << 10

// slabs holds slabs between streams, of every store in the process.
var slabs = sync.Pool{New: func() any {
	b := make([]byte, slabSize)
	return &b
}}

// batchBuf holds received blocks whose data lives in one reused slab.
type batchBuf struct {
	blocks []blocks.Block
	slab   []byte
	used   int
}

// streamFrom asks p for the DAGs under roots and stores every block it
// sends. A reader takes frames off the stream while a writer checks hashes
// and stores the previous batch; two slabs of block data alternate between
// them, so the garbage collector has little to do. received is called with
// each block before it is stored, and may stop the stream with an error;
// the block's data is reused once streamFrom returns, so received copies
// what it keeps.
func (s *Store) streamFrom(ctx context.Context, p peer.ID, req request, received func(blocks.Block) error) error {
	st, err := s.host.NewStream(ctx, p, wire.DAGProtocol)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	bw := bufio.NewWriter(st)
	st.SetWriteDeadline(time.Now().Add(streamIdle))
	if err := writeRequest(bw, req); err != nil {
		st.Reset()
		return err
	}
	st.CloseWrite()

	// Slabs come from a pool shared by all streams: each is taken when
	// the first block needs it and goes back when the stream ends.
	free := make(chan *batchBuf, 2)
	bufs := []*batchBuf{{}, {}}
	for _, bb := range bufs {
		free <- bb
	}
	defer func() {
		for _, bb := range bufs {
			if slab := bb.slab; slab != nil {
				slabs.Put(&slab)
			}
		}
	}()
	full := make(chan *batchBuf, 1)
	writerDone := make(chan error, 1)
	go func() {
		for bb := range full {
			if err := s.storeBatch(ctx, p, bb.blocks); err != nil {
				cancel(err)
				for range full { // let the reader finish
				}
				writerDone <- err
				return
			}
			bb.blocks, bb.used = bb.blocks[:0], 0
			free <- bb
		}
		writerDone <- nil
	}()
	readErr := s.readFrames(ctx, st, p, free, full, received)
	close(full)
	if err := <-writerDone; err != nil {
		return err
	}
	if readErr != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		st.Reset()
	}
	return readErr
}

// storeBatch checks each block's hash and stores the batch.
func (s *Store) storeBatch(ctx context.Context, p peer.ID, bs []blocks.Block) error {
	for _, b := range bs {
		sum, err := b.Cid().Prefix().Sum(b.RawData())
		if err != nil || !sum.Equals(b.Cid()) {
			return fmt.Errorf("block %s from %s does not match its hash", b.Cid(), p)
		}
	}
	if err := s.bstore.PutMany(ctx, bs); err != nil {
		return fmt.Errorf("store blocks: %w", err)
	}
	return nil
}

// readFrames reads a response into batches and hands them to the writer.
func (s *Store) readFrames(ctx context.Context, st network.Stream, p peer.ID, free <-chan *batchBuf, full chan<- *batchBuf, received func(blocks.Block) error) error {
	// A small buffer: it batches the reads of frame heads and small
	// blocks, while the bulk of a large block bypasses it and goes from the
	// stream straight into its slab (bufio reads directly into a caller's
	// slice no smaller than its buffer).
	r := bufio.NewReaderSize(st, recvBuf)
	var bb *batchBuf
	next := func() error {
		select {
		case bb = <-free:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if err := next(); err != nil {
		return err
	}
	// Block data goes in the current batch's slab while it has room.
	alloc := func(n int) []byte {
		if bb.slab == nil && n <= slabSize {
			bb.slab = *slabs.Get().(*[]byte)
		}
		if bb.used+n <= len(bb.slab) {
			data := bb.slab[bb.used : bb.used+n : bb.used+n]
			bb.used += n
			return data
		}
		return make([]byte, n)
	}
	for {
		st.SetReadDeadline(time.Now().Add(streamIdle))
		f, err := readFrame(r, alloc)
		if err != nil {
			return fmt.Errorf("response from %s: %w", p, err)
		}
		if f.end {
			if len(bb.blocks) > 0 {
				full <- bb
			}
			if f.status != statusComplete {
				return errIncomplete
			}
			return nil
		}
		if err := received(f.block); err != nil {
			return err
		}
		bb.blocks = append(bb.blocks, f.block)
		if len(bb.blocks) == putBatch {
			full <- bb
			if err := next(); err != nil {
				return err
			}
		}
	}
}

// probeRoot asks each candidate for the root block alone. It returns the
// block (passed once to received) and the candidates that have it.
func (s *Store) probeRoot(ctx context.Context, root cid.Cid, candidates []peer.ID, received func(blocks.Block) error) (blocks.Block, []peer.ID) {
	var (
		mu        sync.Mutex
		rootBlock blocks.Block
		providers []peer.ID
		wg        sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, p := range candidates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got blocks.Block
			err := s.streamFrom(ctx, p, request{roots: []cid.Cid{root}, shallow: true}, func(b blocks.Block) error {
				if got != nil || !b.Cid().Equals(root) {
					return fmt.Errorf("peer %s answered a root probe with other blocks", p)
				}
				var err error
				got, err = blocks.NewBlockWithCid(append([]byte(nil), b.RawData()...), b.Cid())
				return err
			})
			if err != nil || got == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if rootBlock == nil {
				if received(got) != nil {
					return
				}
				rootBlock = got
			}
			providers = append(providers, p)
		}()
	}
	wg.Wait()
	return rootBlock, providers
}

// findProviders looks up providers of c in the DHT and connects to those
// that serve DAG streams, at most 8. It returns shortly after the first one
// is connected instead of waiting for the whole lookup.
func (s *Store) findProviders(ctx context.Context, c cid.Cid) []peer.ID {
	if s.routing == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout(s.cfg))
	defer cancel()
	const grace = 300 * time.Millisecond
	var (
		mu     sync.Mutex
		out    []peer.ID
		wg     sync.WaitGroup
		first  = make(chan struct{})
		closed bool
	)
	found := s.routing.FindProvidersAsync(ctx, c, 8)
	var deadline <-chan time.Time
loop:
	for {
		select {
		case info, ok := <-found:
			if !ok {
				break loop
			}
			if info.ID == s.host.ID() {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.host.Connect(ctx, info); err != nil {
					return
				}
				if ok, _ := s.host.Peerstore().SupportsProtocols(info.ID, wire.DAGProtocol); len(ok) == 0 {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				out = append(out, info.ID)
				if !closed {
					closed = true
					close(first)
				}
			}()
		case <-first:
			first = nil // a nil channel never fires again
			deadline = time.After(grace)
		case <-deadline:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return out
}

// streamPeers returns the connected peers that serve DAG streams.
func (s *Store) streamPeers() []peer.ID {
	var out []peer.ID
	for _, p := range s.host.Network().Peers() {
		if ok, _ := s.host.Peerstore().SupportsProtocols(p, wire.DAGProtocol); len(ok) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// streamFetch pulls the DAG under root over DAG streams: the root from the
// first peer that has it, then its children split among every peer that
// has the root, all at once. It returns nil when every stream completed;
// any gap is left for bitswap to fill.
func (s *Store) streamFetch(ctx context.Context, root cid.Cid, received func(blocks.Block) error) error {
	rootBlock, providers := s.probeRoot(ctx, root, s.streamPeers(), received)
	if rootBlock == nil {
		// No connected peer has it: look for providers in the DHT and
		// connect to them (bitswap, the fallback, gains from that too).
		rootBlock, providers = s.probeRoot(ctx, root, s.findProviders(ctx, root), received)
	}
	if rootBlock == nil {
		return errors.New("no peer serving DAG streams has the root")
	}
	if root.Prefix().Codec == cid.Raw {
		return nil
	}
	links, err := blockLinks(rootBlock)
	if err != nil || len(links) == 0 {
		return err
	}
	// Contiguous ranges keep each provider's reads sequential on disk.
	n := min(len(providers), len(links))
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		lo, hi := i*len(links)/n, (i+1)*len(links)/n
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := lo; start < hi; start += maxRequestRoots {
				end := min(hi, start+maxRequestRoots)
				if errs[i] = s.streamFrom(ctx, providers[i], request{roots: links[start:end]}, received); errs[i] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
