package content

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAddRefusesLinksAndSpecialFiles: Add follows no symlink and opens
// nothing but regular files and folders, at the top or inside a tree.
func TestAddRefusesLinksAndSpecialFiles(t *testing.T) {
	s := testStore(t)
	write := func(t *testing.T, p string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	symlink := func(t *testing.T, target, p string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := func(t *testing.T, p string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		make func(t *testing.T, dir string) string // returns the path to add
	}{
		{"symlink to a file", func(t *testing.T, dir string) string {
			return symlink(t, write(t, filepath.Join(dir, "wallet.key")), filepath.Join(dir, "link"))
		}},
		{"symlink to a folder", func(t *testing.T, dir string) string {
			write(t, filepath.Join(dir, "tree/a"))
			return symlink(t, filepath.Join(dir, "tree"), filepath.Join(dir, "link"))
		}},
		{"symlink inside to a file outside", func(t *testing.T, dir string) string {
			symlink(t, write(t, filepath.Join(dir, "wallet.key")), filepath.Join(dir, "out/sub/key"))
			write(t, filepath.Join(dir, "out/a"))
			return filepath.Join(dir, "out")
		}},
		{"relative symlink inside to a file inside", func(t *testing.T, dir string) string {
			write(t, filepath.Join(dir, "out/a"))
			symlink(t, "a", filepath.Join(dir, "out/b"))
			return filepath.Join(dir, "out")
		}},
		{"symlink inside to a folder", func(t *testing.T, dir string) string {
			write(t, filepath.Join(dir, "home/.ssh/id"))
			symlink(t, filepath.Join(dir, "home"), filepath.Join(dir, "out/home"))
			return filepath.Join(dir, "out")
		}},
		{"FIFO", func(t *testing.T, dir string) string {
			return fifo(t, filepath.Join(dir, "fifo"))
		}},
		{"FIFO inside", func(t *testing.T, dir string) string {
			write(t, filepath.Join(dir, "out/a"))
			fifo(t, filepath.Join(dir, "out/z/fifo"))
			return filepath.Join(dir, "out")
		}},
		{"socket inside", func(t *testing.T, _ string) string {
			dir, err := os.MkdirTemp("", "sock") // socket paths must be short
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			l, err := net.Listen("unix", filepath.Join(dir, "s"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return dir
		}},
		{"device", func(t *testing.T, _ string) string { return os.DevNull }},
		{"device inside", func(t *testing.T, dir string) string {
			out := filepath.Join(dir, "out")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			// The same device as /dev/null; making one needs privileges.
			if err := syscall.Mknod(filepath.Join(out, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
				t.Skipf("cannot make a device: %v", err)
			}
			return out
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.make(t, t.TempDir())
			done := make(chan error, 1)
			go func() {
				_, err := s.Add(context.Background(), p, nil)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrNotRegular) {
					t.Fatalf("Add(%s) = %v, want %v", p, err, ErrNotRegular)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("Add(%s) blocked", p)
			}
		})
	}
}

// TestImporterChecksWhatItOpened: should an entry change between its
// lstat and its open (a symlink or a FIFO put in its place), the importer
// neither blocks nor reads what it did not check.
func TestImporterChecksWhatItOpened(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"file", "other", "outside"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("other", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "outside"), filepath.Join(dir, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub", filepath.Join(dir, "sublink")); err != nil {
		t.Fatal(err)
	}
	// What was checked: a regular file and a folder.
	checked, err := os.Lstat(filepath.Join(dir, "file"))
	if err != nil {
		t.Fatal(err)
	}
	checkedDir, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	im := &importer{dag: testStore(t).local}

	for _, name := range []string{"fifo", "link", "abs"} {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				f, err := root.OpenFile(name, readFlags, 0)
				if err == nil {
					_, err = im.opened(f, checked)
					f.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("importing %s in place of a checked file succeeded", name)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("opening %s blocked", name)
			}
		})
	}
	t.Run("symlink at the top", func(t *testing.T) {
		if _, err := im.topFile(filepath.Join(dir, "link"), checked); !errors.Is(err, syscall.ELOOP) {
			t.Errorf("topFile(symlink) = %v, want ELOOP", err)
		}
	})
	t.Run("folder symlink at the top", func(t *testing.T) {
		_, err := im.topDir(context.Background(), filepath.Join(dir, "sublink"), checkedDir)
		if err == nil || !strings.Contains(err.Error(), "changed") {
			t.Errorf("topDir(symlink) = %v, want a change refused", err)
		}
	})
}
