package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestContentCommandsStream: add reads the CLI's own paths, and get and
// cat write where the CLI runs, through the API's streams; a folder comes
// back as it went in, and a file holding a symlink is refused before
// anything is sent.
func TestContentCommandsStream(t *testing.T) {
	repo := startOneNode(t)
	dir := t.TempDir()

	tree := filepath.Join(dir, "tree")
	files := map[string]string{"a.txt": "alpha\n", "sub/b.txt": strings.Repeat("beta ", 10000)}
	for name, body := range files {
		p := filepath.Join(tree, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runCLI(t, "--repo", repo, "--json", "add", tree)
	var added struct{ CID, Name string }
	if err := json.Unmarshal([]byte(out), &added); code != 0 || err != nil || added.Name != "tree" {
		t.Fatalf("add folder: exit %d, %q, %s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "--repo", repo, "cat", added.CID+"/sub/b.txt")
	if code != 0 || out != files["sub/b.txt"] {
		t.Fatalf("cat: exit %d, %d bytes, %s", code, len(out), errOut)
	}
	copyDir := filepath.Join(dir, "copy")
	if code, _, errOut := runCLI(t, "--repo", repo, "get", added.CID, "-o", copyDir); code != 0 {
		t.Fatalf("get: exit %d, %s", code, errOut)
	}
	for name, body := range files {
		if got, err := os.ReadFile(filepath.Join(copyDir, filepath.FromSlash(name))); err != nil || !bytes.Equal(got, []byte(body)) {
			t.Errorf("get: %s differs (%v)", name, err)
		}
	}
	if code, _, errOut := runCLI(t, "--repo", repo, "get", added.CID, "-o", copyDir); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Errorf("get over an existing path: exit %d, %q", code, errOut)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(tree, "pw")); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "--repo", repo, "add", tree); code != 1 || !strings.Contains(errOut, "only regular files and directories") {
		t.Errorf("add of a folder with a symlink: exit %d, %q", code, errOut)
	}
}
