package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

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
	// Blocks is the number of bytes of the blocks that hold it: the file
	// data and the nodes of its files and folders (a block stored twice
	// counts twice).
	Blocks int64
}

// cidBuilder makes CIDv1 dag-pb nodes, as `ipfs add --cid-version 1` does.
var cidBuilder = merkledag.V1CidPrefix()

// Add imports a file or a directory tree as UnixFS (default chunker, CIDv1,
// raw leaves), pins its root and announces it. Symbolic links, devices,
// FIFOs and sockets are refused, at the top or anywhere in the tree; none
// is followed or read.
func (s *Store) Add(ctx context.Context, path string, progress Progress) (AddResult, error) {
	return s.add(ctx, path, progress, true, true)
}

// AddUnannounced is Add without announcing the root to the DHT now: for
// content handed to a peer directly (job outputs); the reprovider
// announces it with the other pins later.
func (s *Store) AddUnannounced(ctx context.Context, path string) (AddResult, error) {
	return s.add(ctx, path, nil, false, true)
}

// add imports path; with quota, it first checks its size against the
// quota (an upload has reserved its room already).
func (s *Store) add(ctx context.Context, path string, progress Progress, announce, quota bool) (AddResult, error) {
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
	if quota {
		if err := s.checkQuota(ctx, total); err != nil {
			return AddResult{}, fmt.Errorf("add %s: %w", path, err)
		}
	}
	batch := ipld.NewBufferedDAG(ctx, s.local)
	counted := &countingDAG{DAGService: batch}
	im := &importer{dag: counted, progress: progress, total: total}
	var root ipld.Node
	switch {
	case info.IsDir():
		root, err = im.topDir(ctx, path, info)
	case info.Mode().IsRegular():
		root, err = im.topFile(path, info)
	default:
		err = ErrNotRegular
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
	return AddResult{CID: root.Cid(), Name: name, Size: total, Blocks: counted.bytes}, nil
}

// countingDAG counts the bytes of the nodes added through it.
type countingDAG struct {
	ipld.DAGService
	bytes int64
}

func (d *countingDAG) Add(ctx context.Context, nd ipld.Node) error {
	d.bytes += int64(len(nd.RawData()))
	return d.DAGService.Add(ctx, nd)
}

func (d *countingDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		d.bytes += int64(len(nd.RawData()))
	}
	return d.DAGService.AddMany(ctx, nds)
}

// ErrNotRegular: Add imports only regular files and directories, not
// links, devices, FIFOs or sockets.
var ErrNotRegular = errors.New("only regular files and directories can be added")

// TreeSize sums the sizes of the regular files under path (a file or a
// directory tree) and refuses anything else: links, devices, sockets.
// It follows no symlink and opens no file.
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
			if total > math.MaxInt64-info.Size() {
				total = math.MaxInt64 // sparse files can claim any size: saturate, never overflow
			} else {
				total += info.Size()
			}
		case d.IsDir():
		default:
			return fmt.Errorf("%s: %w", p, ErrNotRegular)
		}
		return nil
	})
	return total, err
}

// readFlags open a file for import: never through a symlink as its last
// component, and without blocking should a FIFO or a device have taken
// the place of the file that was checked.
const readFlags = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK

// importer builds the UnixFS DAG of a file or a tree. It lstats each entry
// before it opens it, and checks that what it opened is what it lstated,
// so that it never reads through a symlink nor opens anything but a
// regular file or a directory; a tree is read through handles on its
// folders, which no symlink can lead out of.
type importer struct {
	dag      ipld.DAGService
	progress Progress
	total    int64
	done     int64
}

// topFile imports the regular file at path, which info describes.
func (im *importer) topFile(path string, info fs.FileInfo) (ipld.Node, error) {
	f, err := os.OpenFile(path, readFlags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return im.opened(f, info)
}

// topDir imports the directory tree at path, which info describes.
func (im *importer) topDir(ctx context.Context, path string, info fs.FileInfo) (ipld.Node, error) {
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if err := sameDir(root, info); err != nil {
		return nil, err
	}
	return im.dir(ctx, root, path)
}

// sameDir fails unless root is the directory info describes.
func sameDir(root *os.Root, info fs.FileInfo) error {
	got, err := root.Stat(".")
	if err != nil {
		return err
	}
	if !os.SameFile(got, info) {
		return errors.New("changed while it was being added")
	}
	return nil
}

// opened imports f, opened for the regular file info describes.
func (im *importer) opened(f *os.File, info fs.FileInfo) (ipld.Node, error) {
	got, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !got.Mode().IsRegular() {
		return nil, ErrNotRegular
	}
	if !os.SameFile(got, info) {
		return nil, errors.New("changed while it was being added")
	}
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

// dir imports the directory root, found at path.
func (im *importer) dir(ctx context.Context, root *os.Root, path string) (ipld.Node, error) {
	dir, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	entries, err := dir.ReadDir(-1)
	dir.Close()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	d, err := uio.NewDirectory(im.dag, uio.WithCidBuilder(cidBuilder))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := filepath.Join(path, e.Name())
		child, err := im.entry(ctx, root, e.Name(), p)
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

// entry imports the entry name of root, found at path.
func (im *importer) entry(ctx context.Context, root *os.Root, name, path string) (ipld.Node, error) {
	info, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	switch {
	case info.IsDir():
		sub, err := root.OpenRoot(name)
		if err != nil {
			return nil, err
		}
		defer sub.Close()
		if err := sameDir(sub, info); err != nil {
			return nil, err
		}
		return im.dir(ctx, sub, path)
	case info.Mode().IsRegular():
		f, err := root.OpenFile(name, readFlags, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return im.opened(f, info)
	}
	return nil, ErrNotRegular
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
