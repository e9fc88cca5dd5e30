package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestContentBetweenDaemons adds a file and a directory on one daemon and
// fetches them on another through the CLI; pins survive a restart.
func TestContentBetweenDaemons(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	repoA, repoB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cli(t, "--repo", repoA, "init", "--profile", "local")
	cli(t, "--repo", repoB, "init", "--profile", "local")
	startDaemon(t, repoA)
	b := startDaemon(t, repoB)

	data := make([]byte, 6<<20+1)
	rand.Read(data)
	src := filepath.Join(dir, "input.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
	os.WriteFile(filepath.Join(tree, "sub", "x.txt"), []byte("hello\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "y.bin"), data[:1000], 0o644)

	fileCID := strings.TrimSpace(cli(t, "--repo", repoA, "add", "-q", src))
	treeCID := strings.TrimSpace(cli(t, "--repo", repoA, "add", "-q", tree))
	if !strings.HasPrefix(fileCID, "bafy") || !strings.HasPrefix(treeCID, "bafy") {
		t.Fatalf("add -q printed %q and %q, want CIDv1s", fileCID, treeCID)
	}

	var info struct {
		Addresses []string `json:"addresses"`
	}
	json.Unmarshal([]byte(cli(t, "--repo", repoA, "id", "--json")), &info)
	cli(t, "--repo", repoB, "swarm", "connect", info.Addresses[0])

	out := filepath.Join(dir, "out.bin")
	cli(t, "--repo", repoB, "get", fileCID, "-o", out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("get wrote different bytes")
	}
	if got := cli(t, "--repo", repoB, "cat", fileCID); got != string(data) {
		t.Fatalf("cat returned %d bytes, want %d", len(got), len(data))
	}
	outTree := filepath.Join(dir, "out-tree")
	cli(t, "--repo", repoB, "get", treeCID, "-o", outTree)
	if got, _ := os.ReadFile(filepath.Join(outTree, "sub", "x.txt")); string(got) != "hello\n" {
		t.Fatalf("directory get: sub/x.txt = %q", got)
	}

	cli(t, "--repo", repoB, "pin", "add", treeCID, "--name", "tree")
	b.stop(t)
	startDaemon(t, repoB)
	var pins []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(cli(t, "--repo", repoB, "pin", "ls", "--json")), &pins); err != nil {
		t.Fatal(err)
	}
	if len(pins) != 1 || pins[0].ID != treeCID || pins[0].Name != "tree" {
		t.Fatalf("pins after restart = %+v", pins)
	}
	cli(t, "--repo", repoB, "repo", "gc")
	if got := cli(t, "--repo", repoB, "cat", treeCID+"/sub/x.txt"); got != "hello\n" {
		t.Fatalf("cat CID/sub/x.txt after gc = %q, want hello", got)
	}

	// Bad input: clear errors, the daemon keeps serving.
	for _, args := range [][]string{{"cat", "not-a-cid"}, {"get", "bafy-broken"}, {"add", filepath.Join(dir, "missing")}, {"cat", treeCID}, {"cat", treeCID + "/nope"}} {
		if _, errOut, err := run(append([]string{"--repo", repoB}, args...)...); err == nil || errOut == "" {
			t.Errorf("cyxwiz %v: err %v, stderr %q; want a failure with a message", args, err, errOut)
		}
	}
	cli(t, "--repo", repoB, "pin", "ls")
}
