package api_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/node/api"
)

// hostileDaemon answers every download with a folder archive of entries.
func hostileDaemon(t *testing.T, entries ...tar.Header) *api.Client {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(make([]byte, h.Size))
	}
	tw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.ContentKindHeader, "folder")
		w.Write(buf.Bytes())
	}))
	t.Cleanup(srv.Close)
	return api.NewClient(strings.TrimPrefix(srv.URL, "http://"), "token")
}

// TestGetToRefusesHostileArchives: a folder download whose entries would
// lead out of the folder, or that is not folders, files and inner
// symlinks, fails and leaves nothing, inside or outside.
func TestGetToRefusesHostileArchives(t *testing.T) {
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	cases := map[string][]tar.Header{
		"dot-dot":         {{Typeflag: tar.TypeReg, Name: "../victim", Size: 3}},
		"absolute":        {{Typeflag: tar.TypeReg, Name: victim, Size: 3}},
		"absolute link":   {{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/etc"}},
		"escaping link":   {{Typeflag: tar.TypeDir, Name: "d/"}, {Typeflag: tar.TypeSymlink, Name: "d/l", Linkname: "../../victim"}},
		"through a link":  {{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "."}, {Typeflag: tar.TypeReg, Name: "l/../../victim", Size: 3}},
		"device":          {{Typeflag: tar.TypeChar, Name: "tty"}},
		"hard link":       {{Typeflag: tar.TypeLink, Name: "h", Linkname: "/etc/passwd"}},
		"duplicate files": {{Typeflag: tar.TypeReg, Name: "a", Size: 1}, {Typeflag: tar.TypeReg, Name: "a", Size: 1}},
		// Each target alone stays inside; through the other link it does not.
		"chained links": {{Typeflag: tar.TypeDir, Name: "d/"}, {Typeflag: tar.TypeSymlink, Name: "d/l", Linkname: ".."},
			{Typeflag: tar.TypeSymlink, Name: "e", Linkname: "d/l/.."}},
		"link below a link": {{Typeflag: tar.TypeDir, Name: "x/"}, {Typeflag: tar.TypeSymlink, Name: "x/up", Linkname: ".."},
			{Typeflag: tar.TypeSymlink, Name: "x/up/s", Linkname: "../victim"}},
		"looping link": {{Typeflag: tar.TypeSymlink, Name: "a", Linkname: "a"}},
		"long target":  {{Typeflag: tar.TypeSymlink, Name: "a", Linkname: strings.Repeat("b/", 3000)}},
	}
	for name, entries := range cases {
		c := hostileDaemon(t, entries...)
		out := filepath.Join(base, "out")
		if _, err := c.GetTo(context.Background(), "bafyany", out, api.StreamOptions{}); err == nil {
			t.Errorf("%s: GetTo succeeded", name)
		} else if !errors.Is(err, api.ErrBadDownload) {
			t.Errorf("%s: %v, want ErrBadDownload", name, err)
		}
		if _, err := os.Lstat(out); err == nil {
			t.Errorf("%s: GetTo left %s", name, out)
			os.RemoveAll(out)
		}
		if _, err := os.Lstat(victim); err == nil {
			t.Fatalf("%s: GetTo wrote outside its folder", name)
		}
	}
	// A good archive, for contrast, is written.
	c := hostileDaemon(t, tar.Header{Typeflag: tar.TypeDir, Name: "d/"}, tar.Header{Typeflag: tar.TypeReg, Name: "d/f", Size: 4},
		tar.Header{Typeflag: tar.TypeSymlink, Name: "d/l", Linkname: "f"})
	out := filepath.Join(base, "good")
	if n, err := c.GetTo(context.Background(), "bafyany", out, api.StreamOptions{}); err != nil || n != 4 {
		t.Fatalf("good archive: %d bytes, %v", n, err)
	}
	if target, err := os.Readlink(filepath.Join(out, "d", "l")); err != nil || target != "f" {
		t.Errorf("good archive's symlink = %q, %v", target, err)
	}
}

// TestGetToShortFile: a file download cut short of its Content-Length
// fails and leaves no partial file.
func TestGetToShortFile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.ContentKindHeader, "file")
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("only a part"))
		panic(http.ErrAbortHandler)
	}))
	defer srv.Close()
	c := api.NewClient(strings.TrimPrefix(srv.URL, "http://"), "token")
	out := filepath.Join(t.TempDir(), "f")
	if _, err := c.GetTo(context.Background(), "bafyany", out, api.StreamOptions{}); err == nil {
		t.Fatal("GetTo of a cut download succeeded")
	}
	if _, err := os.Lstat(out); err == nil {
		t.Error("GetTo left a partial file")
	}
}

// TestAddPathRefusesSymlinks: a folder holding a symlink is not sent.
func TestAddPathRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "pw")); err != nil {
		t.Fatal(err)
	}
	c := api.NewClient("127.0.0.1:1", "token")
	if _, err := c.AddPath(context.Background(), dir, api.StreamOptions{}); !errors.Is(err, api.ErrNotRegular) {
		t.Errorf("AddPath of a folder with a symlink: %v, want ErrNotRegular", err)
	}
	if _, err := c.AddPath(context.Background(), filepath.Join(dir, "pw"), api.StreamOptions{}); !errors.Is(err, api.ErrNotRegular) {
		t.Errorf("AddPath of a symlink: %v, want ErrNotRegular", err)
	}
}
