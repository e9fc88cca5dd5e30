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
)

// uploadDir is the folder below the store's own where uploads are spooled
// before they are added.
const uploadDir = "uploads"

// Bounds on one uploaded folder, as Get bounds what it writes.
const (
	// MaxUploadEntries bounds the folders and files of one upload.
	MaxUploadEntries = MaxGetEntries
	// maxUploadPath bounds an entry's path below the folder: what fits a
	// system's path length below the spool folder.
	maxUploadPath = 3072
)

// maxUploads bounds the uploads spooled at once; more wait.
const maxUploads = 4

// ErrBadUpload: an upload that is not what it declares: a name that is not
// a plain name, more or fewer bytes than its declared size, a folder
// archive with an entry that is not a plain folder or regular file, a path
// that leads out of the folder, two entries of one path, or more entries,
// depth or name bytes than a folder may have.
var ErrBadUpload = errors.New("bad upload")

// AddReader imports one file of exactly size bytes read from r, named
// name, as Add imports a file from disk: the same CID for the same bytes.
// The bytes are spooled below the store's folder first, without holding up
// garbage collection however slowly they come; the spool and the blocks
// both count against the quota while the upload runs.
func (s *Store) AddReader(ctx context.Context, name string, r io.Reader, size int64, progress Progress) (AddResult, error) {
	return s.upload(ctx, name, size, progress, func(top string) error {
		return writeEntry(top, name, r, size)
	})
}

// AddTar imports a folder named name from r, a tar archive of what it
// holds: plain folders and regular files only, whose files hold size
// bytes in all. The folder is unpacked below the store's folder and then
// added as Add adds a folder from disk (the same CID for the same tree).
func (s *Store) AddTar(ctx context.Context, name string, r io.Reader, size int64, progress Progress) (AddResult, error) {
	return s.upload(ctx, name, size, progress, func(top string) error {
		dir := filepath.Join(top, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		return untar(ctx, r, dir, size)
	})
}

// upload reserves room for an upload of size bytes (its spool and its
// blocks), spools it into a fresh folder with spool, adds top/name and
// removes the spool.
func (s *Store) upload(ctx context.Context, name string, size int64, progress Progress, spool func(top string) error) (AddResult, error) {
	if !validName(name) {
		return AddResult{}, fmt.Errorf("%w: name %q is not a plain name of at most %d bytes", ErrBadUpload, name, maxNameBytes)
	}
	if size < 0 {
		return AddResult{}, fmt.Errorf("%w: size %d is negative", ErrBadUpload, size)
	}
	select {
	case s.uploads <- struct{}{}:
		defer func() { <-s.uploads }()
	case <-ctx.Done():
		return AddResult{}, ctx.Err()
	}
	release, err := s.reserve(ctx, 2*size)
	if err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	defer release()
	parent := filepath.Join(s.dir, uploadDir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	top, err := os.MkdirTemp(parent, "upload-")
	if err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	defer os.RemoveAll(top)
	if err := spool(top); err != nil {
		return AddResult{}, hideSpool(fmt.Errorf("add %s: %w", name, err), top)
	}
	// The room is reserved already: the add does not count it again.
	res, err := s.add(ctx, filepath.Join(top, name), progress, true, false)
	if err != nil {
		return AddResult{}, hideSpool(err, top)
	}
	return res, nil
}

// spoolError is an error whose text names an upload rather than its spool
// folder on this machine.
type spoolError struct {
	msg string
	err error
}

func (e *spoolError) Error() string { return e.msg }
func (e *spoolError) Unwrap() error { return e.err }

func hideSpool(err error, top string) error {
	return &spoolError{msg: strings.ReplaceAll(err.Error(), top+string(filepath.Separator), ""), err: err}
}

// reserve counts n bytes against the quota until release is called, so
// that uploads running at once cannot pass it together.
func (s *Store) reserve(ctx context.Context, n int64) (release func(), err error) {
	s.resMu.Lock()
	defer s.resMu.Unlock()
	if err := s.checkQuotaLocked(ctx, n); err != nil {
		return nil, err
	}
	s.reserved += n
	return func() {
		s.resMu.Lock()
		s.reserved -= n
		s.resMu.Unlock()
	}, nil
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
	left, nameBytes := size, 0
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
		if nameBytes += len(name); nameBytes > maxTreeNameBytes {
			return fmt.Errorf("%w: its paths take more than %d bytes", ErrBadUpload, maxTreeNameBytes)
		}
		if seen[name] {
			return fmt.Errorf("%w: %q: two entries of that path", ErrBadUpload, short(name))
		}
		seen[name] = true
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil {
				return fmt.Errorf("%w: %q: %w", ErrBadUpload, short(name), err)
			}
		case tar.TypeReg:
			if h.Size < 0 || h.Size > left {
				return fmt.Errorf("%w: its files hold more than the %d bytes declared", ErrBadUpload, size)
			}
			left -= h.Size
			if err := writeEntryIn(root, name, tr, h.Size); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: %q is not a plain folder or regular file (tar type %q)", ErrBadUpload, short(name), h.Typeflag)
		}
	}
	if left != 0 {
		return fmt.Errorf("%w: its files hold %d bytes, not the %d declared", ErrBadUpload, size-left, size)
	}
	return nil
}

// short cuts a long path for an error message.
func short(p string) string {
	if len(p) > 80 {
		return p[:77] + "..."
	}
	return p
}

// entryPath checks an archive entry's path: relative, slash-separated
// plain names, none of which is . or .., at most MaxGetDepth deep and
// maxUploadPath long; a trailing slash is dropped.
func entryPath(p string) (string, error) {
	clean := strings.TrimSuffix(p, "/")
	if len(clean) > maxUploadPath {
		return "", fmt.Errorf("%w: archive entry %q is longer than %d bytes", ErrBadUpload, short(p), maxUploadPath)
	}
	if clean == "" || path.Clean(clean) != clean || !filepath.IsLocal(clean) {
		return "", fmt.Errorf("%w: archive entry %q is not a relative path inside the folder", ErrBadUpload, short(p))
	}
	parts := strings.Split(clean, "/")
	if len(parts) > MaxGetDepth+1 {
		return "", fmt.Errorf("%w: archive entry %q is more than %d folders deep", ErrBadUpload, short(p), MaxGetDepth)
	}
	for _, part := range parts {
		if !validName(part) {
			return "", fmt.Errorf("%w: archive entry %q holds a name that is not plain", ErrBadUpload, short(p))
		}
	}
	return clean, nil
}

// writeEntry creates the file name in the folder dir with the n bytes r
// holds, failing when r holds fewer or more.
func writeEntry(dir, name string, r io.Reader, n int64) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := writeEntryIn(root, name, r, n); err != nil {
		return err
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return fmt.Errorf("%w: the upload is longer than its declared size", ErrBadUpload)
	}
	return nil
}

// writeEntryIn creates the file name below root, which must not exist,
// with the n bytes r holds.
func writeEntryIn(root *os.Root, name string, r io.Reader, n int64) error {
	f, err := root.OpenFile(name, createFlags, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrBadUpload, short(name), err)
	}
	k, err := io.CopyN(f, r, n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the upload ended %d bytes short of its declared size", ErrBadUpload, n-k)
	}
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrBadUpload, short(name), err)
	}
	return nil
}
