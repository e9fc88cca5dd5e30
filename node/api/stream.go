package api

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrNotRegular: AddPath sends only regular files and folders, not
// symlinks, devices, FIFOs or sockets, at the top or anywhere below.
var ErrNotRegular = errors.New("only regular files and directories can be added")

// ErrBadDownload: a download that is not what it says: a folder archive
// with an entry that leads out of its folder, is neither folder, file nor
// symlink, or a symlink that leads out; or fewer bytes than announced.
var ErrBadDownload = errors.New("bad download")

// Bounds on a folder GetTo writes, as the daemon bounds what it writes.
const (
	maxDownloadEntries   = 1 << 20
	maxDownloadNameBytes = 64 << 20
	maxLinkTarget        = 4096
)

// errUploadEnded tells AddPath's archive writer that the upload is over.
var errUploadEnded = errors.New("upload ended")

// StreamOptions tune a content stream.
type StreamOptions struct {
	// Progress, when set, names the operation for content.progress: the
	// daemon's import of an upload, or its fetch from peers before a
	// download.
	Progress string
}

// AddReader uploads size bytes read from r as one file called name, and
// returns what the daemon added.
func (c *Client) AddReader(ctx context.Context, name string, r io.Reader, size int64, opts StreamOptions) (ContentAddResult, error) {
	return c.upload(ctx, name, r, size, false, opts)
}

// AddPath uploads the file or folder at path, on the client's machine,
// and returns what the daemon added: the same CID as content.add of the
// same path on the daemon's machine.
func (c *Client) AddPath(ctx context.Context, p string, opts StreamOptions) (ContentAddResult, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return ContentAddResult{}, fmt.Errorf("add %s: %w", p, err)
	}
	info, err := os.Lstat(p)
	if err != nil {
		return ContentAddResult{}, fmt.Errorf("add %s: %w", p, err)
	}
	name := filepath.Base(filepath.Clean(p))
	switch {
	case info.Mode().IsRegular():
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return ContentAddResult{}, fmt.Errorf("add %s: %w", p, err)
		}
		defer f.Close()
		return c.upload(ctx, name, f, info.Size(), false, opts)
	case info.IsDir():
	default:
		return ContentAddResult{}, fmt.Errorf("add %s: %w", p, ErrNotRegular)
	}
	size, err := folderSize(p)
	if err != nil {
		return ContentAddResult{}, fmt.Errorf("add %s: %w", p, err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := writeFolderTar(pw, p)
		pw.CloseWithError(err)
		done <- err
	}()
	res, err := c.upload(ctx, name, pr, size, true, opts)
	pr.CloseWithError(errUploadEnded)
	// The archive's own failure (a file that changed, one that cannot be
	// read) says more than the daemon's view of a cut upload.
	if terr := <-done; terr != nil && !errors.Is(terr, errUploadEnded) {
		return ContentAddResult{}, fmt.Errorf("add %s: %w", p, terr)
	}
	return res, err
}

// folderSize sums the regular files below dir and refuses anything but
// regular files and folders.
func folderSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
			return nil
		}
		return fmt.Errorf("%s: %w", p, ErrNotRegular)
	})
	return total, err
}

// writeFolderTar writes what dir holds as a tar archive, paths relative to
// dir. A file that changes size while it is read fails the archive.
func writeFolderTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, Format: tar.FormatPAX})
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: %w", p, ErrNotRegular)
		}
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s: %w", p, ErrNotRegular)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Size: info.Size(), Mode: 0o644, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func (c *Client) upload(ctx context.Context, name string, r io.Reader, size int64, folder bool, opts StreamOptions) (ContentAddResult, error) {
	q := url.Values{"name": {name}, "size": {strconv.FormatInt(size, 10)}}
	if opts.Progress != "" {
		q.Set("progress", opts.Progress)
	}
	if folder {
		q.Set("folder", "1")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.addr+PathContentAdd+"?"+q.Encode(), r)
	if err != nil {
		return ContentAddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	if !folder {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	var res ContentAddResult
	if err := c.stream(req, func(resp *http.Response) error { return decodeStreamReply(resp, &res) }); err != nil {
		return ContentAddResult{}, fmt.Errorf("add %s: %w", name, err)
	}
	return res, nil
}

// Cat writes length bytes of the file id (a CID, or a path below one)
// from offset to w (length < 0: to its end), and returns the bytes
// written.
func (c *Client) Cat(ctx context.Context, id string, offset, length int64, w io.Writer, opts StreamOptions) (int64, error) {
	q := url.Values{"cid": {id}, "offset": {strconv.FormatInt(offset, 10)}, "length": {strconv.FormatInt(length, 10)}}
	if opts.Progress != "" {
		q.Set("progress", opts.Progress)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+PathContentCat+"?"+q.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("cat %s: %w", id, err)
	}
	var n int64
	err = c.stream(req, func(resp *http.Response) error {
		if err := streamError(resp); err != nil {
			return err
		}
		n, err = copyExact(w, resp)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("cat %s: %w", id, err)
	}
	return n, nil
}

// GetTo writes the file or folder id (a CID, or a path below one) to out
// on the client's machine; out must not exist. A folder's entries are
// written through a handle on out, so that none leads out of it, and its
// symlinks last; on an error nothing is left at out. It returns the bytes
// of file data written.
func (c *Client) GetTo(ctx context.Context, id, out string, opts StreamOptions) (int64, error) {
	if _, err := os.Lstat(out); err == nil {
		return 0, fmt.Errorf("get %s: %s already exists", id, out)
	}
	q := url.Values{"cid": {id}}
	if opts.Progress != "" {
		q.Set("progress", opts.Progress)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+PathContentGet+"?"+q.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", id, err)
	}
	var n int64
	err = c.stream(req, func(resp *http.Response) error {
		if err := streamError(resp); err != nil {
			return err
		}
		if resp.Header.Get(ContentKindHeader) == "folder" {
			size, _ := strconv.ParseInt(resp.Header.Get(ContentSizeHeader), 10, 64)
			n, err = writeFolder(resp.Body, out, size)
			return err
		}
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o666)
		if err != nil {
			return err
		}
		n, err = copyExact(f, resp)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(out)
		}
		return err
	})
	if err != nil {
		return n, fmt.Errorf("get %s: %w", id, err)
	}
	return n, nil
}

// stream sends req with the client's token and hands the response to f.
func (c *Client) stream(req *http.Request, f func(*http.Response) error) error {
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return f(resp)
}

// streamError returns the error a stream route answered, nil on 200.
func streamError(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var r Response
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err := json.Unmarshal(data, &r); err != nil || r.Error == nil {
		return fmt.Errorf("HTTP %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	return r.Error
}

func decodeStreamReply(resp *http.Response, result any) error {
	if err := streamError(resp); err != nil {
		return err
	}
	var r Response
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(&r); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	if r.Error != nil {
		return r.Error
	}
	return json.Unmarshal(r.Result, result)
}

// copyExact copies the body to w and fails when it holds fewer bytes than
// its Content-Length.
func copyExact(w io.Writer, resp *http.Response) (int64, error) {
	// Through a large buffer, not the writer's own ReadFrom: some copy
	// in small pieces.
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, resp.Body, make([]byte, 256<<10))
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("%w: %d of %d bytes came", ErrBadDownload, n, resp.ContentLength)
	}
	return n, err
}

// writeFolder creates the folder out and unpacks the tar archive r into
// it, at most size bytes of file data when size > 0; on an error it
// removes out.
func writeFolder(r io.Reader, out string, size int64) (int64, error) {
	if err := os.Mkdir(out, 0o777); err != nil {
		return 0, err
	}
	n, err := untarInto(r, out, size)
	if err != nil {
		if rerr := os.RemoveAll(out); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return n, err
}

// badDownload marks err as ErrBadDownload.
func badDownload(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadDownload}, args...)...)
}

func untarInto(r io.Reader, out string, size int64) (int64, error) {
	root, err := os.OpenRoot(out)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	type link struct{ name, target string }
	var links []link
	isLink := map[string]bool{}
	var written int64
	nameBytes := 0
	tr := tar.NewReader(r)
	for entries := 0; ; entries++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return written, badDownload("%w", err)
		}
		if entries >= maxDownloadEntries {
			return written, badDownload("more than %d entries", maxDownloadEntries)
		}
		if nameBytes += len(h.Name) + len(h.Linkname); nameBytes > maxDownloadNameBytes {
			return written, badDownload("its names take more than %d bytes", maxDownloadNameBytes)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if name == "" || path.Clean(name) != name || !filepath.IsLocal(name) {
			return written, badDownload("entry %q is not a path inside the folder", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o777); err != nil {
				return written, badDownload("%w", err)
			}
		case tar.TypeReg:
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o666)
			if err != nil {
				return written, badDownload("%w", err)
			}
			src := io.Reader(tr)
			if size > 0 {
				src = io.LimitReader(tr, size-written+1)
			}
			n, err := io.Copy(f, src)
			written += n
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return written, fmt.Errorf("%s: %w", name, err)
			}
			if size > 0 && written > size {
				return written, badDownload("its files hold more than the %d bytes announced", size)
			}
		case tar.TypeSymlink:
			if len(h.Linkname) > maxLinkTarget {
				return written, badDownload("symlink %s: a target of more than %d bytes", name, maxLinkTarget)
			}
			links = append(links, link{name, h.Linkname})
			isLink[name] = true
		default:
			return written, badDownload("entry %q is neither folder, file nor symlink", h.Name)
		}
	}
	// Symlinks are made last, so that nothing is written through one; and
	// none may lead through another, so that each is judged on its own.
	for _, l := range links {
		if err := checkLink(l.name, l.target, isLink); err != nil {
			return written, err
		}
	}
	for _, l := range links {
		if err := root.Symlink(l.target, l.name); err != nil {
			return written, badDownload("%w", err)
		}
	}
	return written, nil
}

// checkLink refuses a symlink whose target is absolute or leads out of
// the folder, or whose name or target passes through another symlink of
// the folder (links).
func checkLink(name, target string, links map[string]bool) error {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if links[dir] {
			return badDownload("symlink %s lies below the symlink %s", name, dir)
		}
	}
	if target == "" || path.IsAbs(target) {
		return badDownload("symlink %s has the absolute or empty target %q", name, target)
	}
	cur := path.Dir(name)
	if cur == "." {
		cur = ""
	}
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
			continue
		case "..":
			if cur == "" {
				return badDownload("symlink %s leads out of the folder (to %q)", name, target)
			}
			cur = path.Dir(cur)
			if cur == "." {
				cur = ""
			}
		default:
			cur = path.Join(cur, part)
			if links[cur] {
				return badDownload("symlink %s leads through the symlink %s", name, cur)
			}
		}
	}
	return nil
}
