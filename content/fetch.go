package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/boxo/ipld/merkledag"
	unixfile "github.com/ipfs/boxo/ipld/unixfs/file"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Fetch pulls the whole DAG under c into the store, in parallel and from
// every provider found, and returns its size in bytes.
func (s *Store) Fetch(ctx context.Context, c cid.Cid, progress Progress) (int64, error) {
	s.gc.RLock()
	defer s.gc.RUnlock()
	return s.fetch(ctx, c, progress)
}

// transfer tracks the bytes one fetch receives from peers (over DAG
// streams or bitswap), the limits on them, and when the last block came.
// It is shared by concurrent streams.
type transfer struct {
	s        *Store
	limit    int64 // bytes it may receive; 0: no bound
	mu       sync.Mutex
	fetched  int64 // bytes received from peers
	checked  int64 // fetched bytes at the last quota check
	last     time.Time
	progress Progress
}

func (t *transfer) received(ctx context.Context, n int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fetched += n
	t.last = time.Now()
	if t.limit > 0 && t.fetched > t.limit {
		return fmt.Errorf("%w (%s)", ErrTooLarge, formatMiB(t.limit))
	}
	if t.s.cfg.QuotaMiB > 0 && t.fetched-t.checked > 16<<20 {
		t.checked = t.fetched
		if err := t.s.checkQuota(ctx, 0); err != nil {
			return err
		}
	}
	if t.progress != nil {
		t.progress(t.fetched, 0)
	}
	return nil
}

// touch records progress that is not a transfer (blocks found on disk).
func (t *transfer) touch() {
	t.mu.Lock()
	t.last = time.Now()
	t.mu.Unlock()
}

func (t *transfer) idle() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return time.Since(t.last)
}

// fetch gets the DAG under root: first over DAG streams from the connected
// peers that serve them (several at once), then a walk that finds any gap
// and fills it over bitswap, which also finds providers through the DHT.
// The walk reads only the DAG's inner nodes from disk; present leaves are
// not read again. The caller holds s.gc.
func (s *Store) fetch(ctx context.Context, root cid.Cid, progress Progress) (int64, error) {
	return s.fetchWithin(ctx, root, progress, s.cfg.MaxFetchMiB<<20)
}

// fetchWithin is fetch receiving at most limit bytes (0: no bound).
func (s *Store) fetchWithin(ctx context.Context, root cid.Cid, progress Progress, limit int64) (n int64, err error) {
	start := time.Now()
	defer func() { s.observeFetch(start, err) }()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := &transfer{s: s, limit: limit, last: time.Now(), progress: progress}

	// The fetch fails as not found when no block arrives for the timeout.
	timeout := fetchTimeout(s.cfg)
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		tick := time.NewTicker(timeout / 10)
		defer tick.Stop()
		for {
			select {
			case <-stopWatch:
				return
			case <-tick.C:
				if t.idle() > timeout {
					cancel(fmt.Errorf("%w: no block of %s arrived for %s", ErrNotFound, root, timeout))
					return
				}
			}
		}
	}()

	if has, _ := s.bstore.Has(ctx, root); !has {
		err := s.streamFetch(ctx, root, func(b blocks.Block) error {
			s.counts.streamBlocksIn.Add(1)
			s.counts.streamBytesIn.Add(uint64(len(b.RawData())))
			return t.received(ctx, int64(len(b.RawData())))
		})
		if err != nil {
			if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrQuota) {
				return 0, err
			}
			s.log.Debug("dag stream fetch incomplete, completing over bitswap", "cid", root, "error", err)
		}
	}

	// The walk sums the DAG's size; it reads only inner nodes from disk.
	var size int64

	ses := merkledag.NewSession(ctx, s.dag)
	seen := cid.NewSet()
	seen.Add(root)
	level := []cid.Cid{root}
	for len(level) > 0 {
		if err := s.putEmptyBlocks(ctx, level); err != nil {
			return size, err
		}
		var next, remote []cid.Cid
		visit := func(links []*ipld.Link) {
			for _, l := range links {
				if seen.Visit(l.Cid) {
					next = append(next, l.Cid)
				}
			}
		}
		t.touch()
		for _, c := range level {
			if has, _ := s.bstore.Has(ctx, c); !has {
				remote = append(remote, c)
				continue
			}
			if c.Prefix().Codec == cid.Raw {
				n, err := s.bstore.GetSize(ctx, c)
				if err != nil {
					return size, err
				}
				size += int64(n)
				continue
			}
			nd, err := s.local.Get(ctx, c)
			if ipld.IsNotFound(err) { // it was corrupt and is gone now
				remote = append(remote, c)
				continue
			}
			if err != nil {
				return size, err
			}
			size += int64(len(nd.RawData()))
			visit(nd.Links())
		}
		if len(remote) > 0 {
			for opt := range ses.GetMany(ctx, remote) {
				if opt.Err != nil {
					if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
						return size, cause
					}
					return size, opt.Err
				}
				size += int64(len(opt.Node.RawData()))
				if err := t.received(ctx, int64(len(opt.Node.RawData()))); err != nil {
					return size, err
				}
				visit(opt.Node.Links())
			}
		}
		if err := context.Cause(ctx); err != nil {
			return size, err
		}
		level = next
	}
	if progress != nil {
		progress(size, size)
	}
	return size, nil
}

// blockLinks returns the links of a dag-pb block; raw blocks have none.
func blockLinks(b blocks.Block) ([]cid.Cid, error) {
	switch b.Cid().Prefix().Codec {
	case cid.Raw:
		return nil, nil
	case cid.DagProtobuf:
		nd, err := merkledag.DecodeProtobufBlock(b)
		if err != nil {
			return nil, err
		}
		out := make([]cid.Cid, 0, len(nd.Links()))
		for _, l := range nd.Links() {
			out = append(out, l.Cid)
		}
		return out, nil
	}
	return nil, fmt.Errorf("codec %#x cannot be streamed", b.Cid().Prefix().Codec)
}

func fetchTimeout(c Config) time.Duration { return time.Duration(c.FetchTimeoutSeconds) * time.Second }

// putEmptyBlocks stores the blocks among cids whose data is empty (an empty
// file with raw leaves is one). Bitswap servers treat a block of size 0 as
// missing and never send it, and its content is known from its CID anyway.
func (s *Store) putEmptyBlocks(ctx context.Context, cids []cid.Cid) error {
	for _, c := range cids {
		if c.Prefix().Codec != cid.Raw {
			continue
		}
		if empty, err := c.Prefix().Sum(nil); err != nil || !empty.Equals(c) {
			continue
		}
		b, err := blocks.NewBlockWithCid(nil, c)
		if err != nil {
			return err
		}
		if err := s.bstore.Put(ctx, b); err != nil {
			return fmt.Errorf("store empty block: %w", err)
		}
	}
	return nil
}

// Get fetches the DAG under c and writes it to out: a file, or a directory
// tree for a UnixFS directory. It returns the bytes of DAG fetched.
//
// Content from the swarm may be hostile, so Get writes nothing through a
// symlink and writes a symlink only when its relative target, resolved
// over the tree written, stays inside out. It refuses, with ErrUnsafe and
// before writing anything, a tree with any other symlink, a bad entry
// name, more than MaxGetEntries entries or MaxGetDepth levels; on any
// error it leaves nothing at out.
//
// The files it writes hold at most content.max_fetch_mib (see GetWithin).
func (s *Store) Get(ctx context.Context, c cid.Cid, out string, progress Progress) (int64, error) {
	size, _, err := s.get(ctx, c, out, s.cfg.MaxFetchMiB<<20, progress)
	return size, err
}

// GetWithin is Get writing at most limit bytes of file data (0: no
// bound), and returns the bytes written. A DAG can hold far more as files
// than as blocks (one block linked many times makes a large file), so a
// DAG whose files pass the limit fails with ErrTooLarge, from the sizes
// its nodes declare before anything is written, and from what is written.
func (s *Store) GetWithin(ctx context.Context, c cid.Cid, out string, limit int64) (int64, error) {
	_, written, err := s.get(ctx, c, out, limit, nil)
	return written, err
}

func (s *Store) get(ctx context.Context, c cid.Cid, out string, limit int64, progress Progress) (fetched, written int64, err error) {
	if _, err := os.Lstat(out); err == nil {
		return 0, 0, fmt.Errorf("get %s: %w: %s already exists", c, ErrBadPath, out)
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	fetchLimit := s.cfg.MaxFetchMiB << 20
	if limit > 0 {
		// The DAG's blocks are its files' bytes and inner nodes, a small
		// fraction of them.
		if dag := limit + limit/64 + 1<<20; fetchLimit == 0 || dag < fetchLimit {
			fetchLimit = dag
		}
	}
	fetched, err = s.fetchWithin(ctx, c, progress, fetchLimit)
	if err != nil {
		return fetched, 0, fmt.Errorf("get %s: %w", c, err)
	}
	written, err = s.writeDAG(ctx, c, out, limit)
	if err != nil {
		return fetched, written, fmt.Errorf("get %s: %w", c, err)
	}
	return fetched, written, nil
}

// formatMiB writes a byte count as MiB.
func formatMiB(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// ErrNotFile is returned by Read for a CID that is a directory.
var ErrNotFile = errors.New("not a file")

// Read fetches the file under c and returns up to length bytes from offset,
// with the file's total size.
func (s *Store) Read(ctx context.Context, c cid.Cid, offset, length int64) ([]byte, int64, error) {
	s.gc.RLock()
	defer s.gc.RUnlock()
	if _, err := s.fetch(ctx, c, nil); err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", c, err)
	}
	nd, err := s.unixfsNode(ctx, c)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", c, err)
	}
	defer nd.Close()
	f, ok := nd.(files.File)
	if !ok {
		return nil, 0, fmt.Errorf("read %s: %w: it is a directory", c, ErrNotFile)
	}
	size, err := f.Size()
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", c, err)
	}
	if offset < 0 || offset > size {
		return nil, size, fmt.Errorf("read %s: %w: offset %d outside 0..%d", c, ErrBadPath, offset, size)
	}
	seeker, ok := f.(io.Seeker)
	if !ok {
		return nil, size, fmt.Errorf("read %s: file cannot seek", c)
	}
	if _, err := seeker.Seek(offset, io.SeekStart); err != nil {
		return nil, size, fmt.Errorf("read %s: %w", c, err)
	}
	buf := make([]byte, min(length, size-offset))
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, size, fmt.Errorf("read %s: %w", c, err)
	}
	return buf, size, nil
}

// unixfsNode opens a fetched DAG as a UnixFS file or directory. Reads go
// through the online DAG service: a block found corrupt while reading is
// fetched again from peers.
func (s *Store) unixfsNode(ctx context.Context, c cid.Cid) (files.Node, error) {
	nd, err := s.dag.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	f, err := unixfile.NewUnixfsFile(ctx, s.dag, nd)
	if err != nil {
		return nil, fmt.Errorf("not UnixFS: %w", err)
	}
	return f, nil
}

// Has reports whether the block c is stored locally.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	return s.bstore.Has(ctx, c)
}
