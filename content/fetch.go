package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/boxo/ipld/merkledag"
	unixfile "github.com/ipfs/boxo/ipld/unixfs/file"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// Fetch pulls the whole DAG under c into the store, in parallel and from
// every provider bitswap finds, and returns its size in bytes.
func (s *Store) Fetch(ctx context.Context, c cid.Cid, progress Progress) (int64, error) {
	s.gc.RLock()
	defer s.gc.RUnlock()
	return s.fetch(ctx, c, progress)
}

// fetch walks the DAG breadth first; each level is requested at once, so
// bitswap keeps many blocks in flight. The caller holds s.gc.
func (s *Store) fetch(ctx context.Context, root cid.Cid, progress Progress) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ses := merkledag.NewSession(ctx, s.dag)

	// The fetch fails as not found when no block arrives for the timeout.
	var lastBlock atomic.Int64
	lastBlock.Store(time.Now().UnixNano())
	timeout := fetchTimeout(s.cfg)
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		t := time.NewTicker(timeout / 10)
		defer t.Stop()
		for {
			select {
			case <-stopWatch:
				return
			case <-t.C:
				if time.Since(time.Unix(0, lastBlock.Load())) > timeout {
					cancel(fmt.Errorf("%w: no block of %s arrived for %s", ErrNotFound, root, timeout))
					return
				}
			}
		}
	}()

	var total int64
	limit := s.cfg.MaxFetchMiB << 20
	seen := cid.NewSet()
	seen.Add(root)
	level := []cid.Cid{root}
	for len(level) > 0 {
		if err := s.putEmptyBlocks(ctx, level); err != nil {
			return total, err
		}
		var next []cid.Cid
		for opt := range ses.GetMany(ctx, level) {
			if opt.Err != nil {
				if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
					return total, cause
				}
				return total, opt.Err
			}
			lastBlock.Store(time.Now().UnixNano())
			total += int64(len(opt.Node.RawData()))
			if limit > 0 && total > limit {
				return total, fmt.Errorf("%w (%d MiB)", ErrTooLarge, s.cfg.MaxFetchMiB)
			}
			if progress != nil {
				progress(total, 0)
			}
			for _, l := range opt.Node.Links() {
				if seen.Visit(l.Cid) {
					next = append(next, l.Cid)
				}
			}
		}
		if err := context.Cause(ctx); err != nil {
			return total, err
		}
		if s.cfg.QuotaMiB > 0 {
			if err := s.checkQuota(ctx, 0); err != nil {
				return total, err
			}
		}
		level = next
	}
	return total, nil
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
func (s *Store) Get(ctx context.Context, c cid.Cid, out string, progress Progress) (int64, error) {
	s.gc.RLock()
	defer s.gc.RUnlock()
	size, err := s.fetch(ctx, c, progress)
	if err != nil {
		return size, fmt.Errorf("get %s: %w", c, err)
	}
	nd, err := s.unixfsNode(ctx, c)
	if err != nil {
		return size, fmt.Errorf("get %s: %w", c, err)
	}
	defer nd.Close()
	if _, err := os.Lstat(out); err == nil {
		return size, fmt.Errorf("get %s: %s already exists", c, out)
	}
	if err := files.WriteTo(nd, out); err != nil {
		os.RemoveAll(out)
		return size, fmt.Errorf("get %s: write %s: %w", c, out, err)
	}
	return size, nil
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
		return nil, size, fmt.Errorf("read %s: offset %d outside 0..%d", c, offset, size)
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

// unixfsNode opens a fetched DAG as a UnixFS file or directory, from local
// blocks only.
func (s *Store) unixfsNode(ctx context.Context, c cid.Cid) (files.Node, error) {
	nd, err := s.local.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	f, err := unixfile.NewUnixfsFile(ctx, s.local, nd)
	if err != nil {
		return nil, fmt.Errorf("not UnixFS: %w", err)
	}
	return f, nil
}

// Has reports whether the block c is stored locally.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	return s.bstore.Has(ctx, c)
}
