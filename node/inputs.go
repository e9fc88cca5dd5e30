package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/ipfs/go-cid"
)

// checkInputs checks what a job needs of its inputs: a train job's memory
// estimate with its dataset measured. Before the inputs are held (held
// false) it checks only a dataset whose blocks are all here, and lets any
// other through: it is checked again once held.
func checkInputs(ctx context.Context, store *content.Store, spec market.Spec, held bool) error {
	if spec.Train == nil {
		return nil
	}
	root, err := cid.Decode(spec.Train.Dataset.CID)
	if err != nil {
		return fmt.Errorf("train.dataset.cid: %w", err)
	}
	if !held {
		if has, _ := store.Has(ctx, root); !has {
			return nil
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	limit := int64(spec.Resources.MemoryMiB) << 20
	size, err := train.MeasureDatasetWith(datasetOpener(ctx, store, root), spec.Train.Dataset, limit)
	if err != nil {
		if !held && !errors.Is(err, train.ErrDataset) {
			return nil
		}
		return fmt.Errorf("train.dataset: %w", err)
	}
	return spec.CheckTrainMemory(size)
}

// datasetOpener opens a dataset's files in the content store by their
// names in the spec; a dataset that is a single file is that file.
func datasetOpener(ctx context.Context, store *content.Store, root cid.Cid) func(string) (io.ReadCloser, error) {
	return func(name string) (io.ReadCloser, error) {
		c := root
		_, _, err := store.Read(ctx, root, 0, 0)
		if errors.Is(err, content.ErrNotFile) {
			c, err = store.Resolve(ctx, root.String()+"/"+name)
		}
		if err != nil {
			return nil, err
		}
		return &storeReader{ctx: ctx, store: store, c: c}, nil
	}
}

// storeReader reads a UnixFS file of the content store from its start.
type storeReader struct {
	ctx   context.Context
	store *content.Store
	c     cid.Cid
	off   int64
	buf   []byte
}

const storeReadChunk = 4 << 20

func (r *storeReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		data, size, err := r.store.Read(r.ctx, r.c, r.off, storeReadChunk)
		if err != nil {
			return 0, err
		}
		if len(data) == 0 || r.off >= size {
			return 0, io.EOF
		}
		r.off += int64(len(data))
		r.buf = data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *storeReader) Close() error { return nil }
