package content

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	bolt "go.etcd.io/bbolt"
)

var pinsBucket = []byte("pins")

// Pin is a root whose whole DAG is kept by garbage collection.
type Pin struct {
	CID      cid.Cid
	Name     string
	Size     int64
	PinnedAt time.Time
}

type pinRecord struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	PinnedAt time.Time `json:"pinned_at"`
}

func (s *Store) putPin(c cid.Cid, name string, size int64) error {
	rec, err := json.Marshal(pinRecord{Name: name, Size: size, PinnedAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := s.meta.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(pinsBucket).Put(c.Bytes(), rec)
	}); err != nil {
		return fmt.Errorf("record pin: %w", err)
	}
	return nil
}

// Pin fetches the whole DAG under c (from peers where needed) and pins it.
func (s *Store) Pin(ctx context.Context, c cid.Cid, name string, progress Progress) error {
	s.gc.RLock()
	defer s.gc.RUnlock()
	size, err := s.fetch(ctx, c, progress)
	if err != nil {
		return fmt.Errorf("pin %s: %w", c, err)
	}
	if err := s.putPin(c, name, size); err != nil {
		return err
	}
	s.provide(c)
	return nil
}

// Unpin removes a pin; the blocks go at the next garbage collection.
func (s *Store) Unpin(c cid.Cid) error {
	return s.meta.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(pinsBucket)
		if b.Get(c.Bytes()) == nil {
			return fmt.Errorf("unpin %s: %w", c, ErrNotPinned)
		}
		return b.Delete(c.Bytes())
	})
}

// Pins lists the pinned roots, oldest first.
func (s *Store) Pins() ([]Pin, error) {
	var out []Pin
	err := s.meta.View(func(tx *bolt.Tx) error {
		return tx.Bucket(pinsBucket).ForEach(func(k, v []byte) error {
			c, err := cid.Cast(k)
			if err != nil {
				return fmt.Errorf("pin key %x: %w", k, err)
			}
			var rec pinRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("pin %s: %w", c, err)
			}
			out = append(out, Pin{CID: c, Name: rec.Name, Size: rec.Size, PinnedAt: rec.PinnedAt})
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].PinnedAt.Before(out[j].PinnedAt) })
	return out, err
}

// GCResult reports what garbage collection removed.
type GCResult struct {
	Removed    int
	FreedBytes int64
}

// GC deletes every block that no pin reaches. It waits for running adds,
// pins and fetches, and holds new ones until it is done.
func (s *Store) GC(ctx context.Context) (GCResult, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	pins, err := s.Pins()
	if err != nil {
		return GCResult{}, fmt.Errorf("gc: %w", err)
	}
	// Blocks are stored by multihash, so liveness is decided by multihash:
	// the blockstore lists its keys as raw CIDs whatever their codec.
	live := map[string]bool{}
	getLinks := merkledag.GetLinksDirect(s.local)
	for _, p := range pins {
		// A pinned DAG that is incomplete (a block lost on disk) keeps what
		// is left of it; the missing part is fetched again on next use.
		if err := merkledag.Walk(ctx, getLinks, p.CID, func(c cid.Cid) bool {
			if live[string(c.Hash())] {
				return false
			}
			live[string(c.Hash())] = true
			return true
		}, merkledag.IgnoreMissing()); err != nil {
			return GCResult{}, fmt.Errorf("gc: walk pin %s: %w", p.CID, err)
		}
	}
	keys, err := s.bstore.AllKeysChan(ctx)
	if err != nil {
		return GCResult{}, fmt.Errorf("gc: list blocks: %w", err)
	}
	var res GCResult
	for c := range keys {
		if live[string(c.Hash())] {
			continue
		}
		size, _ := s.bstore.GetSize(ctx, c)
		if err := s.bstore.DeleteBlock(ctx, c); err != nil {
			return res, fmt.Errorf("gc: delete %s: %w", c, err)
		}
		res.Removed++
		res.FreedBytes += int64(size)
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	// Packs mostly made of deleted blocks are rewritten to free the disk.
	if _, err := s.packs.Compact(ctx, 0.5); err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	return res, nil
}
