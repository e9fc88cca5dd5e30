package node

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
)

// writeTree makes a small folder: files at two depths, an empty folder.
func writeTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{"a.txt": []byte("alpha\n"), "sub/b.bin": make([]byte, 1<<20+3), "sub/deeper/c": []byte("c")}
	rand.Read(files["sub/b.bin"])
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	return files
}

// TestContentStreams moves files and folders through the API as streams:
// uploads make the same CIDs as content.add of the same paths, downloads
// the same bytes as content.get.
func TestContentStreams(t *testing.T) {
	n := startNode(t, testConfig(), 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()

	data := make([]byte, 3<<20+5)
	rand.Read(data)
	file := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(dir, "tree")
	files := writeTree(t, folder)

	for _, p := range []string{file, folder} {
		streamed, err := n.client.AddPath(ctx, p, api.StreamOptions{})
		if err != nil {
			t.Fatalf("AddPath(%s): %v", p, err)
		}
		local, err := n.client.ContentAdd(ctx, api.ContentAddParams{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		if streamed != local {
			t.Errorf("AddPath(%s) = %+v, content.add = %+v", filepath.Base(p), streamed, local)
		}
	}
	fileCID, err := n.client.AddReader(ctx, "data.bin", bytes.NewReader(data), int64(len(data)), api.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	folderRes, err := n.client.AddPath(ctx, folder, api.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(n.dir, ContentDir, "uploads")); len(entries) > 0 {
		t.Errorf("uploads left behind: %v", entries)
	}

	var buf bytes.Buffer
	if got, err := n.client.Cat(ctx, fileCID.CID, 0, -1, &buf, api.StreamOptions{}); err != nil || got != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("Cat whole = %d bytes, %v; equal %v", got, err, bytes.Equal(buf.Bytes(), data))
	}
	buf.Reset()
	if _, err := n.client.Cat(ctx, fileCID.CID, 1<<20, 100, &buf, api.StreamOptions{}); err != nil || !bytes.Equal(buf.Bytes(), data[1<<20:1<<20+100]) {
		t.Fatalf("Cat range: %v", err)
	}
	buf.Reset()
	if _, err := n.client.Cat(ctx, folderRes.CID+"/sub/deeper/c", 0, -1, &buf, api.StreamOptions{}); err != nil || buf.String() != "c" {
		t.Fatalf("Cat of a path below a folder = %q, %v", buf.String(), err)
	}

	out := filepath.Join(t.TempDir(), "copy.bin")
	if _, err := n.client.GetTo(ctx, fileCID.CID, out, api.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("GetTo wrote other bytes")
	}
	outDir := filepath.Join(t.TempDir(), "copy")
	written, err := n.client.GetTo(ctx, folderRes.CID, outDir, api.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for name, data := range files {
		want += int64(len(data))
		if got, err := os.ReadFile(filepath.Join(outDir, filepath.FromSlash(name))); err != nil || !bytes.Equal(got, data) {
			t.Errorf("GetTo: %s differs (%v)", name, err)
		}
	}
	if written != want {
		t.Errorf("GetTo wrote %d bytes, want %d", written, want)
	}
	if info, err := os.Stat(filepath.Join(outDir, "empty")); err != nil || !info.IsDir() {
		t.Errorf("GetTo: the empty folder is missing (%v)", err)
	}
	// The copy adds back to the same CID.
	if again, err := n.client.AddPath(ctx, outDir, api.StreamOptions{}); err != nil || again.CID != folderRes.CID {
		t.Errorf("the folder written by GetTo adds as %+v, %v; want %s", again, err, folderRes.CID)
	}
	if _, err := n.client.GetTo(ctx, folderRes.CID, outDir, api.StreamOptions{}); err == nil {
		t.Error("GetTo over an existing path succeeded")
	}
	var ae *api.Error
	if _, err := n.client.Cat(ctx, folderRes.CID, 0, -1, &buf, api.StreamOptions{}); !errors.As(err, &ae) || ae.Code != api.CodeInvalidParams {
		t.Errorf("Cat of a folder: %v, want invalid params", err)
	}
}

// rawUpload posts body to the add route with the given query and token.
func rawUpload(t *testing.T, n *testNode, token string, q url.Values, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+n.client.Addr()+api.PathContentAdd+"?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var msg bytes.Buffer
	msg.ReadFrom(resp.Body)
	return resp.StatusCode, msg.String()
}

// tarOf builds an archive from entries given as name, type, body or
// link target.
func tarOf(t *testing.T, entries ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := h.Linkname
		if h.Typeflag == tar.TypeReg {
			h.Linkname = ""
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// TestContentUploadAttacks sends uploads made to escape, lie or overfill,
// and finds each refused with a clear error, nothing written outside the
// store, and the node still serving.
func TestContentUploadAttacks(t *testing.T) {
	cfg := testConfig()
	cfg.Content.QuotaMiB = 64
	n := startNode(t, cfg, 0)
	file := func(name, body string) tar.Header {
		return tar.Header{Typeflag: tar.TypeReg, Name: name, Linkname: body, Mode: 0o644}
	}
	outside := filepath.Join(filepath.Dir(n.dir), "escaped")
	cases := []struct {
		name   string
		q      url.Values
		body   []byte
		status int
		want   string
	}{
		{"dot-dot entry", url.Values{"name": {"x"}, "size": {"2"}, "folder": {"1"}}, tarOf(t, file("../escaped", "hi")), 400, "not a relative path"},
		{"absolute entry", url.Values{"name": {"x"}, "size": {"2"}, "folder": {"1"}}, tarOf(t, file(outside, "hi")), 400, "not a relative path"},
		{"symlink entry", url.Values{"name": {"x"}, "size": {"0"}, "folder": {"1"}}, tarOf(t, tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/etc"}), 400, "not a plain folder or regular file"},
		{"hard link entry", url.Values{"name": {"x"}, "size": {"0"}, "folder": {"1"}}, tarOf(t, tar.Header{Typeflag: tar.TypeLink, Name: "l", Linkname: "a"}), 400, "not a plain folder or regular file"},
		{"device entry", url.Values{"name": {"x"}, "size": {"0"}, "folder": {"1"}}, tarOf(t, tar.Header{Typeflag: tar.TypeChar, Name: "tty"}), 400, "not a plain folder or regular file"},
		{"duplicate entry", url.Values{"name": {"x"}, "size": {"4"}, "folder": {"1"}}, tarOf(t, file("a", "hi"), file("a", "hi")), 400, "two entries"},
		{"files larger than declared", url.Values{"name": {"x"}, "size": {"1"}, "folder": {"1"}}, tarOf(t, file("a", "hello")), 400, "more than the 1 bytes declared"},
		{"files smaller than declared", url.Values{"name": {"x"}, "size": {"9"}, "folder": {"1"}}, tarOf(t, file("a", "hello")), 400, "not the 9 declared"},
		{"not an archive", url.Values{"name": {"x"}, "size": {"5"}, "folder": {"1"}}, bytes.Repeat([]byte("garbage"), 100), 400, "read archive"},
		{"file longer than declared", url.Values{"name": {"f"}, "size": {"3"}}, []byte("hello"), 400, "longer than its declared size"},
		{"file shorter than declared", url.Values{"name": {"f"}, "size": {"30"}}, []byte("hello"), 400, "short of its declared size"},
		{"name with a slash", url.Values{"name": {"../f"}, "size": {"5"}}, []byte("hello"), 400, "not a plain name"},
		{"dot-dot name", url.Values{"name": {".."}, "size": {"5"}}, []byte("hello"), 400, "not a plain name"},
		{"negative size", url.Values{"name": {"f"}, "size": {"-1"}}, nil, 400, "not a byte count"},
		{"over the quota", url.Values{"name": {"f"}, "size": {strconv.Itoa(65 << 20)}}, []byte("x"), 413, "quota"},
	}
	for _, c := range cases {
		status, msg := rawUpload(t, n, n.token, c.q, c.body)
		if status != c.status || !strings.Contains(msg, c.want) {
			t.Errorf("%s: HTTP %d %s; want %d with %q", c.name, status, strings.TrimSpace(msg), c.status, c.want)
		}
	}
	if _, err := os.Lstat(outside); err == nil {
		t.Fatal("an upload wrote outside the store")
	}
	if status, _ := rawUpload(t, n, "wrong-token", url.Values{"name": {"f"}, "size": {"5"}}, []byte("hello")); status != http.StatusUnauthorized {
		t.Errorf("upload with a wrong token: HTTP %d, want 401", status)
	}
	pins, err := n.client.ContentPins(context.Background())
	if err != nil || len(pins) != 0 {
		t.Errorf("refused uploads left pins %+v (%v)", pins, err)
	}
	// The node still takes a good upload.
	if _, err := n.client.AddReader(context.Background(), "ok.txt", strings.NewReader("fine"), 4, api.StreamOptions{}); err != nil {
		t.Fatalf("a good upload after the attacks: %v", err)
	}
}
