package wasm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"sync"
	"syscall"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
)

// MaxOutEntries bounds the files and folders a guest may create in /out.
const MaxOutEntries = 100_000

// sandboxFS is a guest's view of one host folder. wazero's directory mount
// joins guest paths onto the folder and lets the host follow symlinks,
// relative ones out of the mount included (wazero#2321), so every call
// first resolves its path with an os.Root on the folder, which refuses to
// leave it. The guest cannot make links: symlinks and hard links are
// refused, so the only links it ever meets are the in-tree ones of its
// inputs. A writable mount also bounds the bytes and entries the guest
// creates (see quota).
type sandboxFS struct {
	experimentalsys.FS
	dir   string
	quota *quota // nil for a read-only mount

	mu      sync.Mutex
	root    *os.Root // opened at the first call that names a path
	rootErr error
}

// newSandboxFS gives a guest dir; quota is nil for a read-only mount.
func newSandboxFS(dir string, q *quota) *sandboxFS {
	var host experimentalsys.FS = sysfs.DirFS(dir)
	if q == nil {
		host = &sysfs.ReadFS{FS: host}
	}
	return &sandboxFS{FS: host, dir: dir, quota: q}
}

// openRoot opens the folder as an os.Root once; a guest that names no
// path costs no system call.
func (s *sandboxFS) openRoot() (*os.Root, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == nil && s.rootErr == nil {
		s.root, s.rootErr = os.OpenRoot(s.dir)
	}
	return s.root, s.rootErr
}

func (s *sandboxFS) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == nil {
		return nil
	}
	return s.root.Close()
}

// inside reports whether path resolves inside the folder: with follow,
// the last element is resolved too when it is a symlink. A path that does
// not exist (yet), or that a plain component makes invalid, is inside:
// the host call then fails the same way, or creates it inside. Anything
// else, an escape above all, is refused.
func (s *sandboxFS) inside(path string, follow bool) experimentalsys.Errno {
	root, err := s.openRoot()
	if err != nil {
		return experimentalsys.EPERM
	}
	if follow {
		_, err = root.Stat(rootPath(path))
	} else {
		_, err = root.Lstat(rootPath(path))
	}
	switch {
	case err == nil, errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ENAMETOOLONG):
		return 0
	}
	return experimentalsys.EPERM
}

// rootPath turns wazero's path within a mount ("" or "." for the mount
// itself, "a/b/" for a directory) into one os.Root takes.
func rootPath(p string) string {
	if p == "" || p == "/" {
		return "."
	}
	return p
}

// OpenFile implements experimentalsys.FS.
func (s *sandboxFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if errno := s.inside(path, flag&experimentalsys.O_NOFOLLOW == 0); errno != 0 {
		return nil, errno
	}
	writable := flag&(experimentalsys.O_WRONLY|experimentalsys.O_RDWR) != 0
	if s.quota == nil || !writable && flag&experimentalsys.O_CREAT == 0 {
		return s.FS.OpenFile(path, flag, perm)
	}
	if flag&experimentalsys.O_CREAT != 0 && s.quota.full() {
		if _, errno := s.FS.Lstat(path); errno == experimentalsys.ENOENT {
			return nil, experimentalsys.EIO
		}
	}
	f, errno := s.FS.OpenFile(path, flag, perm)
	if errno != 0 {
		return nil, errno
	}
	ino, errno := s.quota.opened(f)
	if errno != 0 {
		f.Close()
		return nil, errno
	}
	if !writable {
		s.quota.closed(ino)
		return f, 0
	}
	return &quotaFile{File: f, q: s.quota, ino: ino}, 0
}

// Lstat implements experimentalsys.FS.
func (s *sandboxFS) Lstat(path string) (sys.Stat_t, experimentalsys.Errno) {
	if errno := s.inside(path, false); errno != 0 {
		return sys.Stat_t{}, errno
	}
	return s.FS.Lstat(path)
}

// Stat implements experimentalsys.FS.
func (s *sandboxFS) Stat(path string) (sys.Stat_t, experimentalsys.Errno) {
	if errno := s.inside(path, true); errno != 0 {
		return sys.Stat_t{}, errno
	}
	return s.FS.Stat(path)
}

// isMount reports whether a path names the mount's folder itself, which
// the guest may not remove, move or make again.
func isMount(path string) bool { return rootPath(path) == "." }

// Mkdir implements experimentalsys.FS.
func (s *sandboxFS) Mkdir(path string, perm fs.FileMode) experimentalsys.Errno {
	if isMount(path) {
		return experimentalsys.EEXIST
	}
	if errno := s.inside(path, false); errno != 0 {
		return errno
	}
	if s.quota != nil && !s.quota.addDir() {
		return experimentalsys.EIO
	}
	errno := s.FS.Mkdir(path, perm)
	if errno != 0 && s.quota != nil {
		s.quota.removeDir()
	}
	return errno
}

// Chmod implements experimentalsys.FS: a guest keeps the modes it was
// given, so that the provider can always read and remove what it wrote.
func (s *sandboxFS) Chmod(string, fs.FileMode) experimentalsys.Errno { return experimentalsys.EPERM }

// Rename implements experimentalsys.FS.
func (s *sandboxFS) Rename(from, to string) experimentalsys.Errno {
	if isMount(from) || isMount(to) {
		return experimentalsys.EPERM
	}
	if errno := s.inside(from, false); errno != 0 {
		return errno
	}
	if errno := s.inside(to, false); errno != 0 {
		return errno
	}
	moved, _ := s.FS.Lstat(from)
	replaced, had := s.FS.Lstat(to)
	errno := s.FS.Rename(from, to)
	// A file renamed onto itself (or onto another name of itself) is
	// still there: only an entry that another one replaced is gone.
	if errno == 0 && had == 0 && s.quota != nil && (replaced.Ino != moved.Ino || replaced.Dev != moved.Dev) {
		s.quota.removed(replaced)
	}
	return errno
}

// Rmdir implements experimentalsys.FS.
func (s *sandboxFS) Rmdir(path string) experimentalsys.Errno {
	if isMount(path) {
		return experimentalsys.EPERM
	}
	if errno := s.inside(path, false); errno != 0 {
		return errno
	}
	errno := s.FS.Rmdir(path)
	if errno == 0 && s.quota != nil {
		s.quota.removeDir()
	}
	return errno
}

// Unlink implements experimentalsys.FS.
func (s *sandboxFS) Unlink(path string) experimentalsys.Errno {
	if isMount(path) {
		return experimentalsys.EPERM
	}
	if errno := s.inside(path, false); errno != 0 {
		return errno
	}
	st, stErr := s.FS.Lstat(path)
	errno := s.FS.Unlink(path)
	if errno == 0 && stErr == 0 && s.quota != nil {
		s.quota.removed(st)
	}
	return errno
}

// Link implements experimentalsys.FS: refused, a hard link could name a
// file of another mount or keep an input writable.
func (s *sandboxFS) Link(string, string) experimentalsys.Errno { return experimentalsys.EPERM }

// Symlink implements experimentalsys.FS: refused, a symlink is a way out
// of a directory mount.
func (s *sandboxFS) Symlink(string, string) experimentalsys.Errno { return experimentalsys.EPERM }

// Readlink implements experimentalsys.FS.
func (s *sandboxFS) Readlink(path string) (string, experimentalsys.Errno) {
	if errno := s.inside(path, false); errno != 0 {
		return "", errno
	}
	return s.FS.Readlink(path)
}

// Utimens implements experimentalsys.FS.
func (s *sandboxFS) Utimens(path string, atim, mtim int64) experimentalsys.Errno {
	if errno := s.inside(path, true); errno != 0 {
		return errno
	}
	return s.FS.Utimens(path, atim, mtim)
}

// quota bounds what a guest stores in its writable folder: the bytes of
// its regular files (their lengths, so a sparse file counts whole) and
// the number of files and folders. A write or an entry past the bound
// fails with EIO, and the job then fails as disk.
type quota struct {
	maxBytes, maxEntries int64

	mu       sync.Mutex
	used     int64
	dirs     int64
	files    map[uint64]*inode
	exceeded string // why the first refused call was refused
}

// inode is one regular file of the folder, by its inode number.
type inode struct {
	size   int64
	open   int
	linked bool
}

func newQuota(maxBytes, maxEntries int64) *quota {
	return &quota{maxBytes: maxBytes, maxEntries: maxEntries, files: map[uint64]*inode{}}
}

// over reports the first refusal, "" when the guest stayed within bounds.
func (q *quota) over() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.exceeded
}

func (q *quota) refuse(why string) {
	if q.exceeded == "" {
		q.exceeded = why
	}
}

func (q *quota) entries() int64 { return q.dirs + int64(len(q.files)) }

// full reports whether no entry may be added, noting the refusal.
func (q *quota) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.fullLocked()
}

func (q *quota) fullLocked() bool {
	if q.entries() >= q.maxEntries {
		q.refuse(fmt.Sprintf("made more than %d files and folders in /out", q.maxEntries))
		return true
	}
	return false
}

// addDir counts a folder about to be made, unless no entry may be added.
func (q *quota) addDir() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fullLocked() {
		return false
	}
	q.dirs++
	return true
}

func (q *quota) removeDir() {
	q.mu.Lock()
	q.dirs--
	q.mu.Unlock()
}

// opened starts tracking a regular file that was just opened, with its
// length now (0 after O_TRUNC).
func (q *quota) opened(f experimentalsys.File) (uint64, experimentalsys.Errno) {
	st, errno := f.Stat()
	if errno != 0 {
		return 0, errno
	}
	if st.Mode.IsDir() {
		return 0, 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.files[st.Ino]
	if n == nil {
		n = &inode{linked: true}
		q.files[st.Ino] = n
	}
	n.open++
	q.used += st.Size - n.size
	n.size = st.Size
	return st.Ino, 0
}

// closed stops tracking one open handle of a file; an unlinked file's
// bytes are given back with its last handle.
func (q *quota) closed(ino uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.files[ino]
	if n == nil {
		return
	}
	n.open--
	if n.open <= 0 && !n.linked {
		q.used -= n.size
		delete(q.files, ino)
	}
}

// removed notes that the entry st describes is no longer in the folder.
func (q *quota) removed(st sys.Stat_t) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if st.Mode.IsDir() {
		q.dirs--
		return
	}
	n := q.files[st.Ino]
	if n == nil || st.Nlink > 1 {
		return
	}
	n.linked = false
	if n.open <= 0 {
		q.used -= n.size
		delete(q.files, st.Ino)
	}
}

// grow checks that a file may reach length end. The sums are kept in
// range: end may be as large as a file system allows.
func (q *quota) grow(ino uint64, end int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.files[ino]
	if n == nil || end <= n.size {
		return true
	}
	if end > q.maxBytes || end-n.size > q.maxBytes-q.used {
		q.refuse(fmt.Sprintf("wrote more than %.1f MiB to /out, what its disk limit leaves after its inputs", float64(q.maxBytes)/(1<<20)))
		return false
	}
	return true
}

// resized records a file's length after a write or truncation.
func (q *quota) resized(ino uint64, size int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := q.files[ino]; n != nil {
		q.used += size - n.size
		n.size = size
	}
}

// quotaFile is a writable file of a bounded folder.
type quotaFile struct {
	experimentalsys.File
	q      *quota
	ino    uint64
	closed bool
}

// end is where a write of n bytes at the file's offset would end.
func (f *quotaFile) end(n int) (int64, experimentalsys.Errno) {
	if f.IsAppend() {
		st, errno := f.File.Stat()
		return addEnd(st.Size, n), errno
	}
	off, errno := f.File.Seek(0, io.SeekCurrent)
	return addEnd(off, n), errno
}

// addEnd is off+n, or the largest offset when that would overflow.
func addEnd(off int64, n int) int64 {
	if off > math.MaxInt64-int64(n) {
		return math.MaxInt64
	}
	return off + int64(n)
}

func (f *quotaFile) after() {
	if st, errno := f.File.Stat(); errno == 0 {
		f.q.resized(f.ino, st.Size)
	}
}

// Write implements experimentalsys.File.
func (f *quotaFile) Write(buf []byte) (int, experimentalsys.Errno) {
	end, errno := f.end(len(buf))
	if errno != 0 {
		return 0, errno
	}
	if !f.q.grow(f.ino, end) {
		return 0, experimentalsys.EIO
	}
	n, errno := f.File.Write(buf)
	f.after()
	return n, errno
}

// Pwrite implements experimentalsys.File.
func (f *quotaFile) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if off < 0 || !f.q.grow(f.ino, addEnd(off, len(buf))) {
		return 0, experimentalsys.EIO
	}
	n, errno := f.File.Pwrite(buf, off)
	f.after()
	return n, errno
}

// Truncate implements experimentalsys.File.
func (f *quotaFile) Truncate(size int64) experimentalsys.Errno {
	if size < 0 || !f.q.grow(f.ino, size) {
		return experimentalsys.EIO
	}
	errno := f.File.Truncate(size)
	f.after()
	return errno
}

// Close implements experimentalsys.File.
func (f *quotaFile) Close() experimentalsys.Errno {
	if !f.closed {
		f.closed = true
		f.q.closed(f.ino)
	}
	return f.File.Close()
}
