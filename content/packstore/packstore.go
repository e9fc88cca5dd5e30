// Package packstore is a block store that appends blocks to large pack
// files and keeps their offsets in an index (bbolt). Writing a block costs
// an append and an index entry instead of a file creation, which makes bulk
// transfers several times faster than one file per block. Deleted blocks
// leave garbage in their pack until Compact rewrites the pack.
//
// It implements boxo's blockstore.Blockstore, keyed by multihash like the
// IPFS block stores: CIDs of different codecs over the same bytes share a
// block.
package packstore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	bolt "go.etcd.io/bbolt"
)

var (
	indexBucket = []byte("blocks")
	packsBucket = []byte("packs")
)

// DefaultPackSize is the size at which a pack is closed and a new one begun.
const DefaultPackSize = 256 << 20

// Options configure a Store.
type Options struct {
	// PackSize is the size at which a new pack is begun; 0 means DefaultPackSize.
	PackSize int64
	// Sync makes every write reach the disk before it returns.
	Sync bool
}

// location is where a block's bytes are: pack number, offset, length.
type location struct {
	pack   uint32
	offset uint64
	length uint32
}

func (l location) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint32(b[0:], l.pack)
	binary.BigEndian.PutUint64(b[4:], l.offset)
	binary.BigEndian.PutUint32(b[12:], l.length)
	return b
}

func decodeLocation(b []byte) (location, error) {
	if len(b) != 16 {
		return location{}, fmt.Errorf("index entry of %d bytes", len(b))
	}
	return location{
		pack:   binary.BigEndian.Uint32(b[0:]),
		offset: binary.BigEndian.Uint64(b[4:]),
		length: binary.BigEndian.Uint32(b[12:]),
	}, nil
}

// packStats counts a pack's bytes: all written, and still referenced.
type packStats struct {
	total, live uint64
}

func (p packStats) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[0:], p.total)
	binary.BigEndian.PutUint64(b[8:], p.live)
	return b
}

func decodeStats(b []byte) packStats {
	if len(b) != 16 {
		return packStats{}
	}
	return packStats{total: binary.BigEndian.Uint64(b[0:]), live: binary.BigEndian.Uint64(b[8:])}
}

// Store is a pack-file block store. It is safe for concurrent use.
type Store struct {
	dir  string
	db   *bolt.DB
	opts Options

	mu      sync.Mutex // guards the writer and the pack table
	cur     *os.File
	curNum  uint32
	curSize int64
	readers map[uint32]*os.File
	heads   []byte   // record heads of one append, reused
	iov     [][]byte // the slices of one append, reused
}

// Open opens or creates a store: pack files in dir, the index in db (which
// the caller owns and may share).
func Open(dir string, db *bolt.DB, opts Options) (*Store, error) {
	if opts.PackSize <= 0 {
		opts.PackSize = DefaultPackSize
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open packstore: %w", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(indexBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(packsBucket)
		return err
	}); err != nil {
		return nil, fmt.Errorf("open packstore: %w", err)
	}
	s := &Store{dir: dir, db: db, opts: opts, readers: map[uint32]*os.File{}}
	nums, err := s.packNumbers()
	if err != nil {
		return nil, err
	}
	// A pack left empty by an earlier run is reused rather than kept.
	if n := len(nums); n > 0 {
		if info, err := os.Stat(s.packPath(nums[n-1])); err == nil && info.Size() == 0 {
			if err := os.Remove(s.packPath(nums[n-1])); err != nil {
				return nil, fmt.Errorf("open packstore: %w", err)
			}
			nums = nums[:n-1]
		}
	}
	next := uint32(1)
	if len(nums) > 0 {
		next = nums[len(nums)-1] + 1
	}
	if err := s.startPack(next); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) packPath(n uint32) string {
	return filepath.Join(s.dir, fmt.Sprintf("%08d.pack", n))
}

// packNumbers lists the pack files on disk, in order.
func (s *Store) packNumbers() ([]uint32, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	var nums []uint32
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".pack")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			continue
		}
		nums = append(nums, uint32(n))
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	return nums, nil
}

// startPack begins a new pack file; the caller holds s.mu or owns s.
func (s *Store) startPack(n uint32) error {
	f, err := os.OpenFile(s.packPath(n), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("create pack: %w", err)
	}
	if s.cur != nil && s.opts.Sync {
		if err := s.cur.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("sync pack: %w", err)
		}
	}
	s.cur, s.curNum, s.curSize = f, n, 0
	s.readers[n] = f
	return nil
}

// Close closes the pack files. The index database stays open.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for n, f := range s.readers {
		errs = append(errs, f.Close())
		delete(s.readers, n)
	}
	s.cur = nil
	return errors.Join(errs...)
}

func key(c cid.Cid) []byte { return c.Hash() }

// Put stores a block.
func (s *Store) Put(ctx context.Context, b blocks.Block) error {
	return s.PutMany(ctx, []blocks.Block{b})
}

// PutMany appends the blocks not yet stored to the current pack with one
// write, then records them in the index in one transaction.
func (s *Store) PutMany(_ context.Context, bs []blocks.Block) error {
	return s.putMany(bs, false)
}

// putMany appends blocks; with rewrite it also appends blocks already
// stored and points their index entries at the new copies.
func (s *Store) putMany(bs []blocks.Block, rewrite bool) error {
	if len(bs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return errors.New("packstore is closed")
	}
	var fresh []blocks.Block
	seen := map[string]bool{}
	if err := s.db.View(func(tx *bolt.Tx) error {
		idx := tx.Bucket(indexBucket)
		for _, b := range bs {
			k := string(key(b.Cid()))
			if seen[k] || (!rewrite && idx.Get([]byte(k)) != nil) {
				continue
			}
			seen[k] = true
			fresh = append(fresh, b)
		}
		return nil
	}); err != nil {
		return err
	}
	if len(fresh) == 0 {
		return nil
	}
	if s.curSize >= s.opts.PackSize {
		if err := s.startPack(s.curNum + 1); err != nil {
			return err
		}
	}
	// Each record carries its multihash, so a pack can be read without the
	// index. The records go out in one vectored write: each record's head
	// from one small buffer, its data from the block itself, uncopied.
	heads := 0
	for _, b := range fresh {
		heads += 2*binary.MaxVarintLen64 + len(key(b.Cid()))
	}
	if cap(s.heads) < heads {
		s.heads = make([]byte, 0, heads)
	}
	head := s.heads[:0]
	iov := s.iov[:0]
	locs := make([]location, len(fresh))
	written := 0
	for i, b := range fresh {
		start := len(head)
		mh := key(b.Cid())
		head = binary.AppendUvarint(head, uint64(len(mh)))
		head = append(head, mh...)
		head = binary.AppendUvarint(head, uint64(len(b.RawData())))
		written += len(head) - start
		locs[i] = location{pack: s.curNum, offset: uint64(s.curSize) + uint64(written), length: uint32(len(b.RawData()))}
		written += len(b.RawData())
		iov = append(iov, head[start:len(head):len(head)])
		if len(b.RawData()) > 0 {
			iov = append(iov, b.RawData())
		}
	}
	s.heads, s.iov = head, iov
	err := writeVecAt(s.cur, iov, s.curSize)
	clear(s.iov) // keep no block's data alive
	if err != nil {
		return fmt.Errorf("append to pack %d: %w", s.curNum, err)
	}
	if s.opts.Sync {
		if err := s.cur.Sync(); err != nil {
			return fmt.Errorf("sync pack %d: %w", s.curNum, err)
		}
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket(indexBucket)
		var live uint64
		for i, b := range fresh {
			if err := idx.Put(key(b.Cid()), locs[i].encode()); err != nil {
				return err
			}
			live += uint64(locs[i].length)
		}
		return addStats(tx, s.curNum, uint64(written), live)
	})
	if err != nil {
		return fmt.Errorf("index blocks: %w", err)
	}
	s.curSize += int64(written)
	return nil
}

func addStats(tx *bolt.Tx, pack uint32, total, live uint64) error {
	b := tx.Bucket(packsBucket)
	k := binary.BigEndian.AppendUint32(nil, pack)
	st := decodeStats(b.Get(k))
	st.total += total
	st.live += live
	return b.Put(k, st.encode())
}

// DeleteBlock removes a block from the index; its bytes stay in the pack
// until Compact.
func (s *Store) DeleteBlock(_ context.Context, c cid.Cid) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket(indexBucket)
		v := idx.Get(key(c))
		if v == nil {
			return nil
		}
		loc, err := decodeLocation(v)
		if err != nil {
			return err
		}
		if err := idx.Delete(key(c)); err != nil {
			return err
		}
		k := binary.BigEndian.AppendUint32(nil, loc.pack)
		st := decodeStats(tx.Bucket(packsBucket).Get(k))
		st.live -= min(st.live, uint64(loc.length))
		return tx.Bucket(packsBucket).Put(k, st.encode())
	})
}

// AllKeysChan lists every block as a CIDv1 with the raw codec: the store
// knows multihashes, not codecs.
func (s *Store) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	var keys []cid.Cid
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(indexBucket).ForEach(func(k, _ []byte) error {
			mh, err := multihash.Cast(append([]byte(nil), k...))
			if err != nil {
				return err
			}
			keys = append(keys, cid.NewCidV1(cid.Raw, mh))
			return nil
		})
	}); err != nil {
		return nil, err
	}
	ch := make(chan cid.Cid)
	go func() {
		defer close(ch)
		for _, k := range keys {
			select {
			case ch <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// HashOnRead is accepted for interface compatibility; wrap the store to
// verify reads.
func (s *Store) HashOnRead(bool) {}

// DiskUsage returns the bytes the pack files take.
func (s *Store) DiskUsage() (int64, error) {
	nums, err := s.packNumbers()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, n := range nums {
		info, err := os.Stat(s.packPath(n))
		if err != nil {
			continue
		}
		total += info.Size()
	}
	return total, nil
}

// Compact rewrites every closed pack whose live share is below minLive
// (0..1): its live blocks move to the current pack and the file goes. It
// returns the bytes freed. Callers must hold off other writers' deletes
// (garbage collection does).
func (s *Store) Compact(ctx context.Context, minLive float64) (int64, error) {
	stats := map[uint32]packStats{}
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(packsBucket).ForEach(func(k, v []byte) error {
			stats[binary.BigEndian.Uint32(k)] = decodeStats(v)
			return nil
		})
	}); err != nil {
		return 0, err
	}
	var freed int64
	for pack, st := range stats {
		s.mu.Lock()
		current := pack == s.curNum
		s.mu.Unlock()
		if current || (st.total > 0 && float64(st.live)/float64(st.total) >= minLive) {
			continue
		}
		n, err := s.rewritePack(ctx, pack)
		if err != nil {
			return freed, fmt.Errorf("compact pack %d: %w", pack, err)
		}
		freed += n
	}
	return freed, nil
}

// rewritePack copies a pack's live blocks to the current pack, then
// removes the pack file.
func (s *Store) rewritePack(ctx context.Context, pack uint32) (int64, error) {
	f, err := s.reader(pack)
	if err != nil {
		return 0, err
	}
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, info.Size()), 1<<20)
	var batch []blocks.Block
	for {
		mhLen, err := binary.ReadUvarint(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		mh := make([]byte, mhLen)
		if _, err := io.ReadFull(r, mh); err != nil {
			return 0, err
		}
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return 0, err
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return 0, err
		}
		c := cid.NewCidV1(cid.Raw, mh)
		loc, err := s.lookup(c)
		if err != nil || loc.pack != pack {
			continue // deleted, or already moved
		}
		b, err := blocks.NewBlockWithCid(data, c)
		if err != nil {
			return 0, err
		}
		batch = append(batch, b)
		if len(batch) == 64 {
			if err := s.move(ctx, batch); err != nil {
				return 0, err
			}
			batch = batch[:0]
		}
	}
	if err := s.move(ctx, batch); err != nil {
		return 0, err
	}
	s.mu.Lock()
	delete(s.readers, pack)
	s.mu.Unlock()
	f.Close()
	if err := os.Remove(s.packPath(pack)); err != nil {
		return 0, err
	}
	return info.Size(), s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(packsBucket).Delete(binary.BigEndian.AppendUint32(nil, pack))
	})
}

// move re-appends blocks that live in an old pack; the index points at
// the new copies once they are written.
func (s *Store) move(_ context.Context, bs []blocks.Block) error {
	return s.putMany(bs, true)
}
