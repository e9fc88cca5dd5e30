package content

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	ipld "github.com/ipfs/go-ipld-format"
)

// TestExportRefusesLyingFiles: a file whose root declares fewer or more
// bytes than its leaves hold fails the stream rather than giving a part of
// it, or more than it declared.
func TestExportRefusesLyingFiles(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	for _, declared := range []uint64{10, 200} {
		leaf := merkledag.NewRawNode(bytes.Repeat([]byte{'x'}, 100))
		put(t, s, leaf)
		fsn := unixfs.NewFSNode(unixfs.TFile)
		root := new(merkledag.ProtoNode)
		root.SetCidBuilder(cidBuilder)
		if err := root.AddRawLink("", &ipld.Link{Cid: leaf.Cid(), Size: 100}); err != nil {
			t.Fatal(err)
		}
		fsn.AddBlockSize(declared)
		data, _ := fsn.GetBytes()
		root.SetData(data)
		put(t, s, root)
		exp, err := s.Export(ctx, root.Cid(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := exp.WriteTo(ctx, &buf); !errors.Is(err, ErrUnsafe) {
			t.Errorf("declared %d, holds 100: WriteTo = %v, want ErrUnsafe", declared, err)
		}
	}
}

// TestExportAfterGC: blocks removed after Export fail the stream at once
// instead of waiting for peers that have none.
func TestExportAfterGC(t *testing.T) {
	s := testStore(t)
	nd := fileNode(t, s, string(bytes.Repeat([]byte("y"), 3<<20)))
	exp, err := s.Export(context.Background(), nd.Cid(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.GC(context.Background()); err != nil || res.Removed == 0 {
		t.Fatalf("gc: %+v %v", res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var buf bytes.Buffer
	if _, err := exp.WriteTo(ctx, &buf); err == nil || ctx.Err() != nil {
		t.Errorf("WriteTo after its blocks were removed: %v (context %v), want a failure at once", err, ctx.Err())
	}
}
