package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Progress reports bytes done out of total (total is 0 when unknown).
type Progress func(done, total int64)

// AddResult describes content added to the store.
type AddResult struct {
	// CID is the root of the UnixFS DAG.
	CID cid.Cid
	// Name is the base name of the added path.
	Name string
	// Size is the number of bytes of file data added.
	Size int64
}

// cidBuilder makes CIDv1 dag-pb nodes, as `ipfs add --cid-version 1` does.
var cidBuilder = merkledag.V1CidPrefix()

// Add imports a file or a directory tree as UnixFS (default chunker, CIDv1,
// raw leaves), pins its root and announces it. Symbolic links are refused.
func (s *Store) Add(ctx context.Context, path string, progress Progress) (AddResult, error) {
	return s.add(ctx, path, progress, true)
}

// AddUnannounced is Add without announcing the root to the DHT now: for
// content handed to a peer directly (job outputs); the reprovider
// announces it with the other pins later.
func (s *Store) AddUnannounced(ctx context.Context, path string) (AddResult, error) {
	return s.add(ctx, path, nil, false)
}

func (s *Store) add(ctx context.Context, path string, progress Progress, announce bool) (AddResult, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", path, err)
	}
	total, err := TreeSize(path)
	if err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", path, err)
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	if err := s.checkQuota(ctx, total); err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", path, err)
	}
	batch := ipld.NewBufferedDAG(ctx, s.local)
	im := &importer{dag: batch, progress: progress, total: total}
	var root ipld.Node
	if info.IsDir() {
		root, err = im.dir(ctx, path)
	} else {
		root, err = im.file(path)
	}
	if err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", path, err)
	}
	if err := batch.Commit(); err != nil {
		return AddResult{}, fmt.Errorf("add %s: store blocks: %w", path, err)
	}
	name := filepath.Base(filepath.Clean(path))
	if err := s.putPin(root.Cid(), name, total); err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", path, err)
	}
	if announce {
		s.provide(root.Cid())
	}
	return AddResult{CID: root.Cid(), Name: name, Size: total}, nil
}

// TreeSize sums the sizes of the regular files under path (a file or a
// directory tree) and refuses anything else: links, devices, sockets.
func TreeSize(path string) (int64, error) {
	var total int64
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		case d.IsDir():
		default:
			return fmt.Errorf("%s: only regular files and directories can be added", p)
		}
		return nil
	})
	return total, err
}

type importer struct {
	dag      ipld.DAGService
	progress Progress
	total    int64
	done     int64
}

func (im *importer) file(path string) (ipld.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return im.reader(f)
}

func (im *importer) reader(r io.Reader) (ipld.Node, error) {
	params := helpers.DagBuilderParams{
		Dagserv:    im.dag,
		RawLeaves:  true,
		Maxlinks:   helpers.DefaultLinksPerBlock,
		CidBuilder: cidBuilder,
	}
	db, err := params.New(chunker.DefaultSplitter(&countingReader{r: r, im: im}))
	if err != nil {
		return nil, err
	}
	return balanced.Layout(db)
}

func (im *importer) dir(ctx context.Context, path string) (ipld.Node, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	d, err := uio.NewDirectory(im.dag, uio.WithCidBuilder(cidBuilder))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := filepath.Join(path, e.Name())
		var child ipld.Node
		switch {
		case e.IsDir():
			child, err = im.dir(ctx, p)
		case e.Type().IsRegular():
			child, err = im.file(p)
		default:
			err = errors.New("only regular files and directories can be added")
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if err := d.AddChild(ctx, e.Name(), child); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	nd, err := d.GetNode()
	if err != nil {
		return nil, err
	}
	return nd, im.dag.Add(ctx, nd)
}

type countingReader struct {
	r  io.Reader
	im *importer
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.im.done += int64(n)
	if c.im.progress != nil && n > 0 {
		c.im.progress(c.im.done, c.im.total)
	}
	return n, err
}
