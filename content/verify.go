package content

import (
	"context"
	"log/slog"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// verifyingBlockstore checks every block read against its CID. A block
// that no longer matches (disk corruption, a torn write) is deleted and
// reported as missing, so the block service fetches it again from peers
// and the bitswap server never sends it.
type verifyingBlockstore struct {
	blockstore.Blockstore
	log *slog.Logger
}

func (bs *verifyingBlockstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := bs.Blockstore.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	if c.Prefix().MhType == 0x00 { // identity hashes carry their data
		return b, nil
	}
	sum, err := c.Prefix().Sum(b.RawData())
	if err != nil {
		return nil, err
	}
	if !sum.Equals(c) {
		bs.log.Warn("block on disk does not match its hash; deleting it to fetch it again", "cid", c)
		if err := bs.Blockstore.DeleteBlock(ctx, c); err != nil {
			bs.log.Error("delete corrupt block", "cid", c, "error", err)
		}
		return nil, ipld.ErrNotFound{Cid: c}
	}
	return b, nil
}
