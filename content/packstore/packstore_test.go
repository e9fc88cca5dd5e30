package packstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	bolt "go.etcd.io/bbolt"
)

func openStore(t *testing.T, dir string, opts Options) (*Store, *bolt.DB) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Join(dir, "packs"), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func randomBlocks(n, size int) []blocks.Block {
	out := make([]blocks.Block, n)
	for i := range out {
		d := make([]byte, size)
		rand.Read(d)
		out[i] = blocks.NewBlock(d)
	}
	return out
}

func TestPutGetDeleteReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, db := openStore(t, dir, Options{PackSize: 64 << 10})
	bs := randomBlocks(20, 10<<10)
	if err := s.PutMany(ctx, bs[:10]); err != nil {
		t.Fatal(err)
	}
	for _, b := range bs[10:] {
		if err := s.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, bs[0]); err != nil { // a duplicate is a no-op
		t.Fatal(err)
	}
	for i, b := range bs {
		got, err := s.Get(ctx, b.Cid())
		if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("Get(block %d) = %v", i, err)
		}
		if size, _ := s.GetSize(ctx, b.Cid()); size != len(b.RawData()) {
			t.Fatalf("GetSize(block %d) = %d", i, size)
		}
	}
	// The same multihash under another codec is the same block.
	other := cid.NewCidV1(cid.DagProtobuf, bs[3].Cid().Hash())
	if has, _ := s.Has(ctx, other); !has {
		t.Fatal("block not found under another codec")
	}
	if err := s.DeleteBlock(ctx, bs[5].Cid()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, bs[5].Cid()); err == nil {
		t.Fatal("deleted block still readable")
	}
	nums, _ := s.packNumbers()
	if len(nums) < 3 {
		t.Fatalf("%d packs; want the 64 KiB pack size to have rotated", len(nums))
	}
	s.Close()
	db.Close()

	s, db = openStore(t, dir, Options{PackSize: 64 << 10})
	defer db.Close()
	defer s.Close()
	keys, err := s.AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for range keys {
		count++
	}
	if count != 19 {
		t.Fatalf("AllKeysChan after reopen listed %d blocks, want 19", count)
	}
	if err := s.Put(ctx, randomBlocks(1, 100)[0]); err != nil {
		t.Fatalf("Put after reopen: %v", err)
	}
}

func TestCompact(t *testing.T) {
	ctx := context.Background()
	s, db := openStore(t, t.TempDir(), Options{PackSize: 100 << 10})
	defer db.Close()
	defer s.Close()
	bs := randomBlocks(40, 10<<10)
	for _, b := range bs {
		if err := s.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := s.DiskUsage()
	for _, b := range bs[:30] {
		s.DeleteBlock(ctx, b.Cid())
	}
	freed, err := s.Compact(ctx, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := s.DiskUsage()
	if freed == 0 || after >= before {
		t.Fatalf("Compact freed %d bytes; usage %d -> %d", freed, before, after)
	}
	for i, b := range bs[30:] {
		got, err := s.Get(ctx, b.Cid())
		if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("live block %d after compaction: %v", i, err)
		}
	}
	for _, b := range bs[:30] {
		if has, _ := s.Has(ctx, b.Cid()); has {
			t.Fatal("deleted block came back after compaction")
		}
	}
}
