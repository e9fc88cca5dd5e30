package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
)

// Bounds on what one Get writes, so that a tree made to be deep or wide
// fails before anything is written.
const (
	// MaxGetDepth bounds how many folders deep below its root a tree that
	// Get writes may go.
	MaxGetDepth = 256
	// MaxGetEntries bounds the folders, files and symlinks one Get writes,
	// its root included.
	MaxGetEntries = 1 << 20
)

// maxShardDepth bounds the levels of shards in one HAMT-sharded folder: a
// 64-bit hash taken one bit per level is spent after 64.
const maxShardDepth = 64

// ErrUnsafe: content that Get refuses to write: a symlink that is absolute,
// leads outside the folder written or loops, an entry name that is not a
// plain name, two entries of one name, a tree deeper or wider than
// MaxGetDepth and MaxGetEntries, a node that is not a UnixFS file, folder
// or symlink.
var ErrUnsafe = errors.New("unsafe content")

// createFlags create a file that did not exist, never through a symlink.
const createFlags = os.O_WRONLY | os.O_CREATE | os.O_EXCL | syscall.O_NOFOLLOW

// writeDAG writes the UnixFS DAG under c to out, which must not exist.
// The whole tree is read and checked first; then its folders and files are
// written, each through a handle on the folder holding it, and its
// symlinks last. On an error nothing written is left.
// Its files hold at most limit bytes (0: no bound); it returns the bytes
// of file data written.
func (s *Store) writeDAG(ctx context.Context, c cid.Cid, out string, limit int64) (int64, error) {
	out = filepath.Clean(out)
	t, err := s.scanDAG(ctx, c, out)
	if err != nil {
		return 0, err
	}
	if link, reason := t.badLink(); reason != nil {
		return 0, fmt.Errorf("%w: %s: symlink to %q %w", ErrUnsafe, filepath.Join(out, t.path(link)), t.entries[link].target, reason)
	}
	if limit > 0 && t.fileBytes > limit {
		return 0, fmt.Errorf("%w: its files hold %d bytes, more than %d", ErrTooLarge, t.fileBytes, limit)
	}
	b := &budget{left: limit, unbounded: limit <= 0}
	err = s.writeTree(ctx, t, out, b)
	return b.used, err
}

// budget counts the file data written against a limit.
type budget struct {
	left, used int64
	unbounded  bool
}

// copy copies r to w within the budget.
func (b *budget) copy(w io.Writer, r io.Reader) error {
	if b.unbounded {
		n, err := io.Copy(w, r)
		b.used += n
		return err
	}
	n, err := io.Copy(w, io.LimitReader(r, b.left+1))
	b.used += n
	if b.left -= n; b.left < 0 {
		return fmt.Errorf("%w: its files hold more than their declared sizes", ErrTooLarge)
	}
	return err
}

// scanner reads a DAG into the tree that Get will write.
type scanner struct {
	s   *Store
	t   *tree
	out string
	// nodes counts the nodes read, HAMT shards included: a shard can link
	// one child shard many times, which makes a small DAG a long walk.
	nodes int
	// nameBytes counts the bytes of the names kept.
	nameBytes int
}

// Bounds on the names of what Get writes: a name longer than a system's
// file name, or many long names (a folder reached many times through a
// small DAG), would take memory before anything is written.
const (
	maxNameBytes     = 255
	maxTreeNameBytes = 64 << 20
	maxScannedNodes  = 2 * MaxGetEntries
)

// visit counts a node read, and checks ctx.
func (sc *scanner) visit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if sc.nodes++; sc.nodes > maxScannedNodes {
		return fmt.Errorf("%w: more than %d nodes to read", ErrUnsafe, maxScannedNodes)
	}
	return nil
}

func (s *Store) scanDAG(ctx context.Context, c cid.Cid, out string) (*tree, error) {
	sc := &scanner{s: s, t: newTree(), out: out}
	if err := sc.entry(ctx, entry{parent: -1}, c); err != nil {
		return nil, err
	}
	return sc.t, nil
}

// where names the entry called name in folder dir, for errors; with an
// empty name, the folder itself.
func (sc *scanner) where(dir int32, name string) string {
	return filepath.Join(sc.out, sc.t.path(dir), name)
}

// entry adds e, whose node is c, and what it holds.
func (sc *scanner) entry(ctx context.Context, e entry, c cid.Cid) error {
	if err := sc.visit(ctx); err != nil {
		return err
	}
	if sc.nameBytes += len(e.name); sc.nameBytes > maxTreeNameBytes {
		return fmt.Errorf("%w: its names take more than %d bytes", ErrUnsafe, maxTreeNameBytes)
	}
	if len(sc.t.entries) >= MaxGetEntries {
		return fmt.Errorf("%w: more than %d entries", ErrUnsafe, MaxGetEntries)
	}
	if e.depth > MaxGetDepth {
		return fmt.Errorf("%w: %s: more than %d folders deep", ErrUnsafe, sc.where(e.parent, e.name), MaxGetDepth)
	}
	var (
		nd  *merkledag.ProtoNode
		fsn *unixfs.FSNode
	)
	switch c.Prefix().Codec {
	case cid.Raw:
		e.kind, e.cid = kindFile, c
		size, err := sc.s.bstore.GetSize(ctx, c)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.where(e.parent, e.name), err)
		}
		sc.t.addFile(int64(size))
	case cid.DagProtobuf:
		var err error
		if nd, fsn, err = sc.node(ctx, c); err != nil {
			return fmt.Errorf("%s: %w", sc.where(e.parent, e.name), err)
		}
		switch fsn.Type() {
		case unixfs.TFile, unixfs.TRaw:
			e.kind, e.cid = kindFile, c
			sc.t.addFile(int64(min(fsn.FileSize(), 1<<62)))
		case unixfs.TDirectory, unixfs.THAMTShard:
			e.kind = kindDir
		case unixfs.TSymlink:
			e.kind, e.target = kindSymlink, string(fsn.Data())
		default:
			return fmt.Errorf("%w: %s: a UnixFS %s node is not a file, folder or symlink", ErrUnsafe, sc.where(e.parent, e.name), fsn.Type())
		}
	default:
		return fmt.Errorf("%w: %s: codec %#x is not UnixFS", ErrUnsafe, sc.where(e.parent, e.name), c.Prefix().Codec)
	}
	i, ok := sc.t.add(e)
	if !ok {
		return fmt.Errorf("%w: %s: two entries of that name", ErrUnsafe, sc.where(e.parent, e.name))
	}
	if e.kind != kindDir {
		return nil
	}
	return sc.dirLinks(ctx, i, nd, fsn, 0, cid.NewSet(), func(name string, c cid.Cid) error {
		if !validName(name) {
			if len(name) > 64 {
				name = name[:64] + "..."
			}
			return fmt.Errorf("%w: %s: entry name %q is not a plain name of at most %d bytes", ErrUnsafe, sc.where(i, ""), name, maxNameBytes)
		}
		return sc.entry(ctx, entry{parent: i, depth: e.depth + 1, name: name}, c)
	})
}

// node gets the dag-pb node c and its UnixFS data.
func (sc *scanner) node(ctx context.Context, c cid.Cid) (*merkledag.ProtoNode, *unixfs.FSNode, error) {
	n, err := sc.s.dag.Get(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	nd, ok := n.(*merkledag.ProtoNode)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s is not a dag-pb node", ErrUnsafe, c)
	}
	fsn, err := unixfs.FSNodeFromBytes(nd.Data())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s is not UnixFS: %w", ErrUnsafe, c, err)
	}
	return nd, fsn, nil
}

// dirLinks calls f with the name and CID of each entry of the folder
// dir, whose node is nd: a plain folder, or a HAMT shard at the given
// level below the folder's top shard.
// A HAMT folder never holds one shard twice (each covers its own hashes),
// so shards holds those already read and a second link to one is refused.
func (sc *scanner) dirLinks(ctx context.Context, dir int32, nd *merkledag.ProtoNode, fsn *unixfs.FSNode, level int, shards *cid.Set, f func(string, cid.Cid) error) error {
	if fsn.Type() == unixfs.TDirectory {
		for _, l := range nd.Links() {
			if err := f(l.Name, l.Cid); err != nil {
				return err
			}
		}
		return nil
	}
	where := func() string { return sc.where(dir, "") }
	if _, err := hamt.NewHamtFromDag(sc.s.dag, nd); err != nil {
		return fmt.Errorf("%w: %s: bad HAMT shard %s: %w", ErrUnsafe, where(), nd.Cid(), err)
	}
	// A link named by the child's index alone leads to a shard below;
	// a longer one is an entry, named after the index.
	pad := len(fmt.Sprintf("%X", fsn.Fanout()-1))
	for _, l := range nd.Links() {
		switch {
		case len(l.Name) > pad:
			if err := f(l.Name[pad:], l.Cid); err != nil {
				return err
			}
		case len(l.Name) == pad:
			if level >= maxShardDepth {
				return fmt.Errorf("%w: %s: HAMT shards more than %d levels deep", ErrUnsafe, where(), maxShardDepth)
			}
			if l.Cid.Prefix().Codec != cid.DagProtobuf {
				return fmt.Errorf("%w: %s: HAMT shard %s is not dag-pb", ErrUnsafe, where(), l.Cid)
			}
			if !shards.Visit(l.Cid) {
				return fmt.Errorf("%w: %s: HAMT shard %s is linked twice", ErrUnsafe, where(), l.Cid)
			}
			if err := sc.visit(ctx); err != nil {
				return fmt.Errorf("%s: %w", where(), err)
			}
			child, cfsn, err := sc.node(ctx, l.Cid)
			if err != nil {
				return fmt.Errorf("%s: %w", where(), err)
			}
			if cfsn.Type() != unixfs.THAMTShard {
				return fmt.Errorf("%w: %s: HAMT shard %s is a UnixFS %s node", ErrUnsafe, where(), l.Cid, cfsn.Type())
			}
			if err := sc.dirLinks(ctx, dir, child, cfsn, level+1, shards, f); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: %s: HAMT link name %q is shorter than its index", ErrUnsafe, where(), l.Name)
		}
	}
	return nil
}

// validName refuses what boxo refuses: names that are empty, . or .., or
// that hold a slash or a NUL byte; and names longer than a file name may be.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= maxNameBytes && !strings.ContainsAny(name, "/\x00")
}

// writeTree writes t to out, through a handle on out's parent folder.
func (s *Store) writeTree(ctx context.Context, t *tree, out string, b *budget) error {
	parent, err := os.OpenRoot(filepath.Dir(out))
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	defer parent.Close()
	base := filepath.Base(out)
	switch root := t.entries[0]; root.kind {
	case kindFile:
		f, err := parent.OpenFile(base, createFlags, 0o666)
		if err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
		if err := s.writeFile(ctx, f, root.cid, b); err != nil {
			parent.Remove(base)
			return fmt.Errorf("write %s: %w", out, err)
		}
		return nil
	case kindSymlink:
		return fmt.Errorf("%w: %s: the content is a symlink", ErrUnsafe, out)
	}
	if err := parent.Mkdir(base, 0o777); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := s.writeDir(ctx, t, parent, base, out, b); err != nil {
		if rerr := parent.RemoveAll(base); rerr != nil {
			s.log.Warn("remove a partly written folder", "path", out, "error", rerr)
		}
		return err
	}
	return nil
}

// writeDir writes what t's root holds into the folder base of parent,
// just made: folders and files in tree order, each through a handle on
// the folder holding it, then the symlinks.
func (s *Store) writeDir(ctx context.Context, t *tree, parent *os.Root, base, out string, b *budget) error {
	top, err := parent.OpenRoot(base)
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	defer top.Close()
	type openDir struct {
		entry int32
		dir   *os.Root
	}
	// The folders from the root down to the one written last.
	stack := []openDir{{0, top}}
	defer func() {
		for _, o := range stack[1:] {
			o.dir.Close()
		}
	}()
	for i := 1; i < len(t.entries); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := t.entries[i]
		for len(stack) > 1 && stack[len(stack)-1].entry != e.parent {
			stack[len(stack)-1].dir.Close()
			stack = stack[:len(stack)-1]
		}
		dir := stack[len(stack)-1]
		if dir.entry != e.parent {
			return fmt.Errorf("write %s: entry %d out of tree order", out, i)
		}
		switch e.kind {
		case kindDir:
			if err := dir.dir.Mkdir(e.name, 0o777); err != nil {
				return fmt.Errorf("write %s: %w", filepath.Join(out, t.path(int32(i))), err)
			}
			sub, err := dir.dir.OpenRoot(e.name)
			if err != nil {
				return fmt.Errorf("write %s: %w", filepath.Join(out, t.path(int32(i))), err)
			}
			stack = append(stack, openDir{int32(i), sub})
		case kindFile:
			f, err := dir.dir.OpenFile(e.name, createFlags, 0o666)
			if err != nil {
				return fmt.Errorf("write %s: %w", filepath.Join(out, t.path(int32(i))), err)
			}
			if err := s.writeFile(ctx, f, e.cid, b); err != nil {
				return fmt.Errorf("write %s: %w", filepath.Join(out, t.path(int32(i))), err)
			}
		}
	}
	for i, e := range t.entries {
		if e.kind != kindSymlink {
			continue
		}
		if err := top.Symlink(e.target, t.path(int32(i))); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(out, t.path(int32(i))), err)
		}
	}
	return nil
}

// writeFile copies the UnixFS file c into f within the budget, and
// closes f.
func (s *Store) writeFile(ctx context.Context, f *os.File, c cid.Cid, b *budget) error {
	nd, err := s.dag.Get(ctx, c)
	if err != nil {
		f.Close()
		return err
	}
	r, err := uio.NewDagReader(ctx, nd, s.dag)
	if err != nil {
		f.Close()
		return err
	}
	err = b.copy(f, r)
	return errors.Join(err, f.Close())
}
