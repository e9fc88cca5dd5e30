package packstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	bolt "go.etcd.io/bbolt"
)

// lookup returns a block's location, ipld.ErrNotFound when it has none.
func (s *Store) lookup(c cid.Cid) (location, error) {
	var loc location
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(indexBucket).Get(key(c))
		if v == nil {
			return ipld.ErrNotFound{Cid: c}
		}
		var err error
		loc, err = decodeLocation(v)
		return err
	})
	return loc, err
}

// Has reports whether the block is stored.
func (s *Store) Has(_ context.Context, c cid.Cid) (bool, error) {
	_, err := s.lookup(c)
	if ipld.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// GetSize returns the block's size.
func (s *Store) GetSize(_ context.Context, c cid.Cid) (int, error) {
	loc, err := s.lookup(c)
	if err != nil {
		return -1, err
	}
	return int(loc.length), nil
}

// Get reads a block. It does not check the hash; wrap the store for that.
func (s *Store) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	loc, err := s.lookup(c)
	if err != nil {
		return nil, err
	}
	f, err := s.reader(loc.pack)
	if err != nil {
		return nil, err
	}
	data := make([]byte, loc.length)
	if _, err := f.ReadAt(data, int64(loc.offset)); err != nil {
		return nil, s.readFailed(c, loc, err)
	}
	return blocks.NewBlockWithCid(data, c)
}

// Extent is where one block's bytes lie in the packs.
type Extent struct {
	loc location
}

// Size is the block's size in bytes.
func (e Extent) Size() int { return int(e.loc.length) }

// Locate returns where the block c lies, ipld.ErrNotFound when it is not
// stored.
func (s *Store) Locate(c cid.Cid) (Extent, error) {
	loc, err := s.lookup(c)
	return Extent{loc: loc}, err
}

// ReadExtent reads the bytes of block c, which lie at e, into buf, whose
// length must be e.Size(). It does not check the hash.
func (s *Store) ReadExtent(c cid.Cid, e Extent, buf []byte) error {
	if len(buf) != e.Size() {
		return fmt.Errorf("read block %s: buffer of %d bytes for %d", c, len(buf), e.Size())
	}
	f, err := s.reader(e.loc.pack)
	if err != nil {
		return err
	}
	if _, err := f.ReadAt(buf, int64(e.loc.offset)); err != nil {
		return s.readFailed(c, e.loc, err)
	}
	return nil
}

// readFailed handles a block that cannot be read. A pack cut short (a
// machine crash before the data reached the disk) loses the block: its
// index entry goes and the block counts as missing, to be fetched again.
func (s *Store) readFailed(c cid.Cid, loc location, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if derr := s.DeleteBlock(context.Background(), c); derr != nil {
			return fmt.Errorf("read block %s: %w (and drop its entry: %w)", c, err, derr)
		}
		return ipld.ErrNotFound{Cid: c}
	}
	return fmt.Errorf("read block %s from pack %d: %w", c, loc.pack, err)
}

func (s *Store) reader(n uint32) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.readers[n]; ok {
		return f, nil
	}
	f, err := os.Open(s.packPath(n))
	if err != nil {
		return nil, fmt.Errorf("open pack %d: %w", n, err)
	}
	s.readers[n] = f
	return f, nil
}
