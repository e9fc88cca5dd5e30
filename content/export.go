package content

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
)

// Export is fetched content ready to be written to a stream: a file's
// bytes, or a folder as a tar archive. Get's checks have passed: the tree
// is known in full, and it holds no unsafe name or symlink.
type Export struct {
	s    *Store
	tree *tree
	root cid.Cid
}

// Export fetches the DAG under c within content.max_fetch_mib, reporting
// the fetch to progress (which may be nil), and checks it as Get does,
// before anything is written.
func (s *Store) Export(ctx context.Context, c cid.Cid, progress Progress) (*Export, error) {
	s.gc.RLock()
	defer s.gc.RUnlock()
	limit := s.cfg.MaxFetchMiB << 20
	if _, err := s.fetchWithin(ctx, c, progress, limit); err != nil {
		return nil, fmt.Errorf("export %s: %w", c, err)
	}
	t, err := s.scanDAG(ctx, c, c.String())
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", c, err)
	}
	if link, reason := t.badLink(); reason != nil {
		return nil, fmt.Errorf("export %s: %w: %s: symlink to %q %w", c, ErrUnsafe, t.path(link), t.entries[link].target, reason)
	}
	if t.entries[0].kind == kindSymlink {
		return nil, fmt.Errorf("export %s: %w: the content is a symlink", c, ErrUnsafe)
	}
	if limit > 0 && t.fileBytes > limit {
		return nil, fmt.Errorf("export %s: %w: its files hold %d bytes, more than %d", c, ErrTooLarge, t.fileBytes, limit)
	}
	return &Export{s: s, tree: t, root: c}, nil
}

// IsDir reports whether the content is a folder.
func (e *Export) IsDir() bool { return e.tree.entries[0].kind == kindDir }

// FileBytes is the sum of the sizes its files declare.
func (e *Export) FileBytes() int64 { return e.tree.fileBytes }

// WriteTo writes a file's bytes, or a folder as a tar archive of what it
// holds (folders, regular files and symlinks, with paths relative to it,
// each folder before what it holds). It reads this node's blocks only: a
// block removed since Export (by garbage collection) fails it at once. A
// file that holds other than its declared bytes fails.
func (e *Export) WriteTo(ctx context.Context, w io.Writer) (int64, error) {
	if !e.IsDir() {
		n, err := e.copyFile(ctx, w, e.tree.entries[0].cid, e.tree.fileBytes, -1)
		if err != nil {
			return n, fmt.Errorf("export %s: %w", e.root, err)
		}
		return n, nil
	}
	tw := tar.NewWriter(w)
	var written int64
	// All entries get one time, so that an archive of a CID is the same
	// bytes each time.
	mtime := time.Unix(0, 0)
	for i := 1; i < len(e.tree.entries); i++ {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		ent := e.tree.entries[i]
		name := e.tree.path(int32(i))
		h := &tar.Header{Name: name, ModTime: mtime, Format: tar.FormatPAX}
		switch ent.kind {
		case kindDir:
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, name+"/", 0o755
			if err := tw.WriteHeader(h); err != nil {
				return written, err
			}
		case kindSymlink:
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, ent.target, 0o777
			if err := tw.WriteHeader(h); err != nil {
				return written, err
			}
		case kindFile:
			n, err := e.copyFile(ctx, tw, ent.cid, -1, int64(i))
			written += n
			if err != nil {
				return written, fmt.Errorf("export %s: %s: %w", e.root, name, err)
			}
		}
	}
	return written, tw.Close()
}

// copyFile copies the UnixFS file c to w. With entry >= 0, w is a tar
// writer and the file is entry's, headed by its size. With size >= 0,
// the file must hold exactly size bytes.
func (e *Export) copyFile(ctx context.Context, w io.Writer, c cid.Cid, size, entry int64) (int64, error) {
	nd, err := e.s.local.Get(ctx, c)
	if err != nil {
		return 0, err
	}
	r, err := uio.NewDagReader(ctx, nd, e.s.local)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	if size < 0 {
		size = int64(r.Size())
	}
	if entry >= 0 {
		tw := w.(*tar.Writer)
		h := &tar.Header{Typeflag: tar.TypeReg, Name: e.tree.path(int32(entry)), Size: size, Mode: 0o644,
			ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return 0, err
		}
	}
	n, err := copyAll(w, r, size)
	if errors.Is(err, io.EOF) {
		return n, fmt.Errorf("%w: the file holds fewer bytes than the %d it declares", ErrUnsafe, size)
	}
	if err != nil {
		return n, err
	}
	return n, nil
}

// WriteRange writes length bytes of a file from offset (length < 0: to
// its end).
func (e *Export) WriteRange(ctx context.Context, w io.Writer, offset, length int64) (int64, error) {
	if e.IsDir() {
		return 0, fmt.Errorf("export %s: %w: it is a directory", e.root, ErrNotFile)
	}
	size := e.tree.fileBytes
	if offset < 0 || offset > size {
		return 0, fmt.Errorf("export %s: %w: offset %d outside 0..%d", e.root, ErrBadPath, offset, size)
	}
	if length < 0 || length > size-offset {
		length = size - offset
	}
	nd, err := e.s.local.Get(ctx, e.root)
	if err != nil {
		return 0, fmt.Errorf("export %s: %w", e.root, err)
	}
	r, err := uio.NewDagReader(ctx, nd, e.s.local)
	if err != nil {
		return 0, fmt.Errorf("export %s: %w", e.root, err)
	}
	defer r.Close()
	if _, err := r.Seek(offset, io.SeekStart); err != nil {
		return 0, fmt.Errorf("export %s: %w", e.root, err)
	}
	n, err := copyN(w, r, length)
	if err != nil {
		return n, fmt.Errorf("export %s: %w", e.root, err)
	}
	return n, nil
}

// copyBuffer is the size of the copies to a stream: large enough that the
// HTTP writer passes them through in few writes.
const copyBuffer = 256 << 10

// copyN copies exactly n bytes from r to w through a copyBuffer-sized
// buffer; fewer is io.EOF.
func copyN(w io.Writer, r io.Reader, n int64) (int64, error) {
	written, err := io.CopyBuffer(w, io.LimitReader(r, n), make([]byte, copyBuffer))
	if err == nil && written < n {
		err = io.EOF
	}
	return written, err
}

// copyAll is copyN for a whole file: a byte past n means the file holds
// more than it declares, an error too.
func copyAll(w io.Writer, r io.Reader, n int64) (int64, error) {
	written, err := copyN(w, r, n)
	if err != nil {
		return written, err
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return written, fmt.Errorf("%w: the file holds more than the %d bytes it declares", ErrUnsafe, n)
	}
	return written, nil
}
