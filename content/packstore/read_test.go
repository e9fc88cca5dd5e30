package packstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	blocks "github.com/ipfs/go-block-format"
)

// TestPutManyVectored writes more records in one PutMany than one pwritev
// takes, empty blocks among them, and reads each back by Get and by
// Locate and ReadExtent, before and after Compact moves them.
func TestPutManyVectored(t *testing.T) {
	ctx := context.Background()
	s, db := openStore(t, t.TempDir(), Options{PackSize: 1})
	defer db.Close()
	defer s.Close()
	var bs []blocks.Block
	for i := range 1500 {
		d := make([]byte, (i*37)%3000) // the first is empty
		rand.Read(d)
		bs = append(bs, blocks.NewBlock(d))
	}
	if err := s.PutMany(ctx, bs); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for i, b := range bs {
			got, err := s.Get(ctx, b.Cid())
			if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
				t.Fatalf("%s: Get(block %d) = %d bytes, %v; want %d bytes", when, i, len(got.RawData()), err, len(b.RawData()))
			}
			ext, err := s.Locate(b.Cid())
			if err != nil || ext.Size() != len(b.RawData()) {
				t.Fatalf("%s: Locate(block %d) = size %d, %v; want %d", when, i, ext.Size(), err, len(b.RawData()))
			}
			buf := make([]byte, ext.Size())
			if err := s.ReadExtent(b.Cid(), ext, buf); err != nil || !bytes.Equal(buf, b.RawData()) {
				t.Fatalf("%s: ReadExtent(block %d): %v, or other bytes", when, i, err)
			}
		}
	}
	check("after PutMany")
	// A pack size of 1 closes the pack at the next write: rewrite it.
	if err := s.Put(ctx, blocks.NewBlock([]byte("next pack"))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(ctx, 2); err != nil {
		t.Fatal(err)
	}
	check("after Compact")
	if err := s.ReadExtent(bs[1].Cid(), Extent{}, make([]byte, 3)); err == nil {
		t.Fatal("ReadExtent with a buffer of the wrong size succeeded")
	}
}
