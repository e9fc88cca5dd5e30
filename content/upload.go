package content

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	ipld "github.com/ipfs/go-ipld-format"
)

// uploadDir is the folder below the store's own where uploaded folders are
// unpacked before they are added.
const uploadDir = "uploads"

// MaxUploadEntries bounds the folders and files of one uploaded folder.
const MaxUploadEntries = 1 << 16

// ErrBadUpload: an upload that is not what it declares: a name that is not
// a plain name, more or fewer bytes than its declared size, a folder
// archive with an entry that is not a plain folder or regular file, a path
// that leads out of the folder, or two entries of one path.
var ErrBadUpload = errors.New("bad upload")

// AddReader imports one file of exactly size bytes read from r, named
// name, as Add imports a file from disk: the same CID for the same bytes.
// Its root is pinned and announced.
func (s *Store) AddReader(ctx context.Context, name string, r io.Reader, size int64, progress Progress) (AddResult, error) {
	if err := checkUpload(name, size); err != nil {
		return AddResult{}, err
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	if err := s.checkQuota(ctx, size); err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	batch := ipld.NewBufferedDAG(ctx, s.local)
	counted := &countingDAG{DAGService: batch}
	im := &importer{dag: counted, progress: progress, total: size}
	exact := &exactReader{r: r, left: size}
	root, err := im.reader(exact)
	if err == nil {
		err = exact.finish()
	}
	if err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	if err := batch.Commit(); err != nil {
		return AddResult{}, fmt.Errorf("add %s: store blocks: %w", name, err)
	}
	if err := s.putPin(root.Cid(), name, size); err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	s.provide(root.Cid())
	return AddResult{CID: root.Cid(), Name: name, Size: size, Blocks: counted.bytes}, nil
}

// AddTar imports a folder named name from r, a tar archive of what it
// holds: plain folders and regular files only, whose files hold size
// bytes in all. The folder is unpacked below the store's folder and then
// added as Add adds a folder from disk (the same CID for the same tree);
// the unpacked copy is removed.
func (s *Store) AddTar(ctx context.Context, name string, r io.Reader, size int64, progress Progress) (AddResult, error) {
	if err := checkUpload(name, size); err != nil {
		return AddResult{}, err
	}
	if err := s.checkQuota(ctx, size); err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	parent := filepath.Join(s.dir, uploadDir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	tmp, err := os.MkdirTemp(parent, "upload-")
	if err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	top := filepath.Join(tmp, name)
	if err := os.Mkdir(top, 0o700); err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	if err := untar(ctx, r, top, size); err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	return s.Add(ctx, top, progress)
}

// checkUpload checks an upload's name and declared size.
func checkUpload(name string, size int64) error {
	if !validName(name) {
		return fmt.Errorf("%w: name %q is not a plain name of at most %d bytes", ErrBadUpload, name, maxNameBytes)
	}
	if size < 0 {
		return fmt.Errorf("%w: size %d is negative", ErrBadUpload, size)
	}
	return nil
}

// untar unpacks the archive r into the folder top, which exists and is
// empty, writing at most size bytes of file data. Each entry is created
// through a handle on top, so that no entry can lead out of it.
func untar(ctx context.Context, r io.Reader, top string, size int64) error {
	root, err := os.OpenRoot(top)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	left := size
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: read archive: %w", ErrBadUpload, err)
		}
		if n >= MaxUploadEntries {
			return fmt.Errorf("%w: more than %d entries", ErrBadUpload, MaxUploadEntries)
		}
		name, err := entryPath(h.Name)
		if err != nil {
			return err
		}
		if seen[name] {
			return fmt.Errorf("%w: %q: two entries of that path", ErrBadUpload, name)
		}
		seen[name] = true
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil {
				return fmt.Errorf("%w: %q: %w", ErrBadUpload, name, err)
			}
		case tar.TypeReg:
			if h.Size < 0 || h.Size > left {
				return fmt.Errorf("%w: its files hold more than the %d bytes declared", ErrBadUpload, size)
			}
			left -= h.Size
			if err := writeEntry(root, name, tr, h.Size); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: %q is not a plain folder or regular file (tar type %q)", ErrBadUpload, name, h.Typeflag)
		}
	}
	if left != 0 {
		return fmt.Errorf("%w: its files hold %d bytes, not the %d declared", ErrBadUpload, size-left, size)
	}
	return nil
}

// entryPath checks an archive entry's path: relative, slash-separated
// plain names, none of which is . or ..; a trailing slash is dropped.
func entryPath(p string) (string, error) {
	clean := strings.TrimSuffix(p, "/")
	if clean == "" || path.Clean(clean) != clean || !filepath.IsLocal(clean) {
		return "", fmt.Errorf("%w: archive entry %q is not a relative path inside the folder", ErrBadUpload, p)
	}
	for _, part := range strings.Split(clean, "/") {
		if !validName(part) {
			return "", fmt.Errorf("%w: archive entry %q holds a name that is not plain", ErrBadUpload, p)
		}
	}
	return clean, nil
}

// writeEntry creates the file name below root, which must not exist, with
// the n bytes r holds.
func writeEntry(root *os.Root, name string, r io.Reader, n int64) error {
	f, err := root.OpenFile(name, createFlags, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrBadUpload, name, err)
	}
	_, err = io.CopyN(f, r, n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrBadUpload, name, err)
	}
	return nil
}

// exactReader reads exactly left bytes from r: an early end and a byte past
// it are both errors.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		return n, fmt.Errorf("%w: the upload ended %d bytes short of its declared size", ErrBadUpload, e.left)
	}
	if e.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// finish fails when more bytes follow the declared size.
func (e *exactReader) finish() error {
	if e.left > 0 {
		return fmt.Errorf("%w: the upload ended %d bytes short of its declared size", ErrBadUpload, e.left)
	}
	var one [1]byte
	if n, _ := io.ReadFull(e.r, one[:]); n > 0 {
		return fmt.Errorf("%w: the upload is longer than its declared size", ErrBadUpload)
	}
	return nil
}
