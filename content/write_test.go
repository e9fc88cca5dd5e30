package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// testStore opens a store with no peers: what a test puts in it is all
// there is to get.
func testStore(t *testing.T) *Store {
	t.Helper()
	h := p2ptest.NewHost(t, p2ptest.Config(), nil)
	cfg := DefaultConfig()
	cfg.FetchTimeoutSeconds = 5
	s, err := Open(Params{Dir: t.TempDir(), Host: h, Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t *testing.T, s *Store, nd ipld.Node) ipld.Node {
	t.Helper()
	if err := s.local.Add(context.Background(), nd); err != nil {
		t.Fatal(err)
	}
	return nd
}

// fileNode stores a UnixFS file holding data.
func fileNode(t *testing.T, s *Store, data string) ipld.Node {
	t.Helper()
	im := &importer{dag: s.local}
	nd, err := im.reader(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

// symlinkNode stores a UnixFS symlink to target, as anyone can make one.
func symlinkNode(t *testing.T, s *Store, target string) ipld.Node {
	t.Helper()
	data, err := unixfs.SymlinkData(target)
	if err != nil {
		t.Fatal(err)
	}
	nd := merkledag.NodeWithData(data)
	nd.SetCidBuilder(cidBuilder)
	return put(t, s, nd)
}

type namedNode struct {
	name string
	nd   ipld.Node
}

// dirNode stores a UnixFS folder made with boxo's directory builder.
func dirNode(t *testing.T, s *Store, entries ...namedNode) ipld.Node {
	t.Helper()
	ctx := context.Background()
	d, err := uio.NewDirectory(s.local, uio.WithCidBuilder(cidBuilder))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := d.AddChild(ctx, e.name, e.nd); err != nil {
			t.Fatal(err)
		}
	}
	nd, err := d.GetNode()
	if err != nil {
		t.Fatal(err)
	}
	return put(t, s, nd)
}

// rawDirNode stores a UnixFS folder with exactly the links given, names
// boxo's builder would refuse or merge included.
func rawDirNode(t *testing.T, s *Store, entries ...namedNode) ipld.Node {
	t.Helper()
	nd := merkledag.NodeWithData(unixfs.FolderPBData())
	nd.SetCidBuilder(cidBuilder)
	for _, e := range entries {
		if err := nd.AddRawLink(e.name, &ipld.Link{Cid: e.nd.Cid()}); err != nil {
			t.Fatal(err)
		}
	}
	return put(t, s, nd)
}

// dagFrom stores the tree of specs (as treeFrom reads them) as a UnixFS
// DAG in which each file holds its own path.
func dagFrom(t *testing.T, s *Store, specs []string) cid.Cid {
	t.Helper()
	tr, _, err := treeFrom(specs)
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]ipld.Node, len(tr.entries))
	children := map[int32][]namedNode{}
	for i := len(tr.entries) - 1; i >= 0; i-- {
		e := tr.entries[i]
		switch e.kind {
		case kindFile:
			nodes[i] = fileNode(t, s, tr.path(int32(i)))
		case kindSymlink:
			nodes[i] = symlinkNode(t, s, e.target)
		case kindDir:
			nodes[i] = dirNode(t, s, children[int32(i)]...)
		}
		if i > 0 {
			children[e.parent] = append(children[e.parent], namedNode{e.name, nodes[i]})
		}
	}
	return nodes[0].Cid()
}

// get writes c to a new folder "in" and returns its path.
func get(t *testing.T, s *Store, c cid.Cid) (string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "in")
	_, err := s.Get(context.Background(), c, out, nil)
	return out, err
}

func nothingAt(t *testing.T, out string) {
	t.Helper()
	if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed get left %s behind (lstat: %v)", out, err)
	}
}

func TestGetRefusesEscapingSymlinks(t *testing.T) {
	s := testStore(t)
	type test struct {
		name    string
		specs   []string
		culprit string // the symlink named in the error
		target  string
	}
	tests := []test{
		{"absolute", []string{"wallet -> /root/.cyxwiz/wallet.key"}, "wallet", "/root/.cyxwiz/wallet.key"},
		{"absolute in a subfolder", []string{"data/x", "data/etc -> /etc"}, "data/etc", "/etc"},
		{"the example", []string{"data/x", "data/up -> ../../.."}, "data/up", "../../.."},
		{"through a symlink", []string{"sub/x", "sub/c -> ..", "sub/s -> c/../x"}, "sub/s", "c/../x"},
		{"hard to spot", []string{"a/x", "l -> a/../../x"}, "l", "a/../../x"},
		{"out and back in", []string{"x", "l -> ../in/x"}, "l", "../in/x"},
		{"through a missing folder", []string{"l -> m/../../x"}, "l", "m/../../x"},
		{"through a file", []string{"f", "l -> f/../../x"}, "l", "f/../../x"},
		{"a chain out", []string{"a -> b", "b -> c/d", "c/d -> ../.."}, "c/d", "../.."},
		{"a loop", []string{"a -> b", "b -> a"}, "a", "b"},
		{"a self loop", []string{"d/s -> s/x"}, "d/s", "s/x"},
		{"empty target", []string{"l -> "}, "l", ""},
	}
	// ".." one to five levels too far, from the root and from subfolders.
	for _, depth := range []int{0, 1, 2, 4} {
		for levels := 1; levels <= 5; levels++ {
			folder := strings.Repeat("d/", depth)
			target := strings.Repeat("../", depth+levels) + "wallet.key"
			tests = append(tests, test{
				name:    fmt.Sprintf("%d levels out from depth %d", levels, depth),
				specs:   []string{folder + "x", folder + "up -> " + target},
				culprit: folder + "up",
				target:  target,
			})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := get(t, s, dagFrom(t, s, tt.specs))
			want := fmt.Sprintf("%s: symlink to %s ", filepath.Join(out, tt.culprit), strconv.Quote(tt.target))
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Get = %v, want ErrUnsafe naming %q", err, want)
			}
			nothingAt(t, out)
		})
	}
}

// TestGetWritesSymlinksInside: symlinks that stay inside are written as
// they came and lead where they should.
func TestGetWritesSymlinksInside(t *testing.T) {
	s := testStore(t)
	links := []struct {
		link, target string
		leads        string // the entry it leads to; "." the root, "" nothing
	}{
		{"data/same", "x", "data/x"},
		{"data/up", "..", "."},
		{"data/deep/back", "../../data/x", "data/x"},
		{"top", "data/x", "data/x"},
		{"chain", "top", "data/x"},
		{"dir", "data", "data"},
		{"through", "dir/x", "data/x"},
		{"sub/c", "..", "."},
		{"sub/ok", "c/data/x", "data/x"},
		{"dot", "./data/./x", "data/x"},
		{"dangling", "data/missing", ""},
	}
	specs := []string{"data/x", "data/deep/", "sub/"}
	for _, l := range links {
		specs = append(specs, l.link+" -> "+l.target)
	}
	out, err := get(t, s, dagFrom(t, s, specs))
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(out, "data/x")); err != nil || string(data) != "data/x" {
		t.Fatalf("data/x = %q, %v", data, err)
	}
	for _, l := range links {
		p := filepath.Join(out, l.link)
		if got, err := os.Readlink(p); err != nil || got != l.target {
			t.Errorf("readlink %s = %q, %v; want %q", l.link, got, err, l.target)
			continue
		}
		got, err := os.Stat(p)
		if l.leads == "" {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("stat %s = %v, want not found", l.link, err)
			}
			continue
		}
		want, werr := os.Stat(filepath.Join(out, l.leads))
		if err != nil || werr != nil || !os.SameFile(got, want) {
			t.Errorf("%s does not lead to %s (%v, %v)", l.link, l.leads, err, werr)
		}
	}
}

func TestGetRefusesBadTrees(t *testing.T) {
	s := testStore(t)
	file := fileNode(t, s, "hello")
	link := symlinkNode(t, s, "/etc/passwd")
	metaData, err := unixfs.BytesForMetadata(&unixfs.Metadata{MimeType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	meta := merkledag.NodeWithData(metaData)
	meta.SetCidBuilder(cidBuilder)
	put(t, s, meta)
	junk := merkledag.NodeWithData([]byte{0xff, 0xff, 0xff})
	junk.SetCidBuilder(cidBuilder)
	put(t, s, junk)

	tests := []struct {
		name string
		root ipld.Node
		want string
	}{
		{"a file after a symlink of its name", rawDirNode(t, s, namedNode{"x", link}, namedNode{"x", file}), "x: two entries of that name"},
		{"a symlink after a file of its name", rawDirNode(t, s, namedNode{"x", file}, namedNode{"x", link}), "x: two entries of that name"},
		{"name ..", rawDirNode(t, s, namedNode{"..", file}), `entry name ".."`},
		{"name .", rawDirNode(t, s, namedNode{".", file}), `entry name "."`},
		{"empty name", rawDirNode(t, s, namedNode{"", file}), `entry name ""`},
		{"name with a slash", rawDirNode(t, s, namedNode{"a/b", file}), `entry name "a/b"`},
		{"name with a NUL", rawDirNode(t, s, namedNode{"a\x00b", file}), `entry name "a\x00b"`},
		{"deep name with a slash", dirNode(t, s, namedNode{"d", rawDirNode(t, s, namedNode{"../../x", file})}), `in/d: entry name "../../x"`},
		{"metadata node", dirNode(t, s, namedNode{"m", meta}), "m: a UnixFS Metadata node is not a file, folder or symlink"},
		{"not UnixFS", dirNode(t, s, namedNode{"j", junk}), "is not UnixFS"},
		{"the root a symlink", link, `in: symlink to "/etc/passwd"`},
		{"the root a relative symlink", symlinkNode(t, s, "."), `in: symlink to "." leads outside the folder`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := get(t, s, tt.root.Cid())
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Get = %v, want ErrUnsafe with %q", err, tt.want)
			}
			nothingAt(t, out)
		})
	}
}

// TestGetBounds: a tree deeper than MaxGetDepth or with more than
// MaxGetEntries entries fails before anything is written.
func TestGetBounds(t *testing.T) {
	s := testStore(t)
	file := fileNode(t, s, "bottom")
	deep := func(levels int) ipld.Node {
		nd := file
		for range levels - 1 {
			nd = dirNode(t, s, namedNode{"d", nd})
		}
		return dirNode(t, s, namedNode{"d", nd})
	}
	out, err := get(t, s, deep(MaxGetDepth).Cid())
	if err != nil {
		t.Fatalf("get a tree %d deep: %v", MaxGetDepth, err)
	}
	bottom := filepath.Join(out, strings.Repeat("d/", MaxGetDepth-1)+"d")
	if data, err := os.ReadFile(bottom); err != nil || string(data) != "bottom" {
		t.Fatalf("the file %d deep = %q, %v", MaxGetDepth, data, err)
	}
	out, err = get(t, s, deep(MaxGetDepth+1).Cid())
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d folders deep", MaxGetDepth)) {
		t.Errorf("get a tree %d deep = %v, want ErrUnsafe", MaxGetDepth+1, err)
	}
	nothingAt(t, out)

	// A small DAG that names one empty file over a million times.
	empty := fileNode(t, s, "")
	var names []namedNode
	for i := range 1024 {
		names = append(names, namedNode{strconv.Itoa(i), empty})
	}
	wide := rawDirNode(t, s, names...)
	names = names[:0]
	for i := range MaxGetEntries/1024 + 1 {
		names = append(names, namedNode{strconv.Itoa(i), wide})
	}
	out, err = get(t, s, rawDirNode(t, s, names...).Cid())
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d entries", MaxGetEntries)) {
		t.Errorf("get a tree of more than %d entries = %v, want ErrUnsafe", MaxGetEntries, err)
	}
	nothingAt(t, out)
}

// TestGetHAMTFolder: a sharded folder is a folder, its symlinks checked
// like any other.
func TestGetHAMTFolder(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	sharded := func(extra namedNode) ipld.Node {
		d, err := uio.NewHAMTDirectory(s.local, 0, uio.WithCidBuilder(cidBuilder), uio.WithMaxHAMTFanout(8))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			name := fmt.Sprintf("f%d", i)
			if err := d.AddChild(ctx, name, fileNode(t, s, name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.AddChild(ctx, extra.name, extra.nd); err != nil {
			t.Fatal(err)
		}
		nd, err := d.GetNode()
		if err != nil {
			t.Fatal(err)
		}
		return put(t, s, nd)
	}
	out, err := get(t, s, sharded(namedNode{"l", symlinkNode(t, s, "f7")}).Cid())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"f0", "f99", "l"} {
		if data, err := os.ReadFile(filepath.Join(out, name)); err != nil || !strings.HasPrefix(string(data), "f") {
			t.Errorf("%s = %q, %v", name, data, err)
		}
	}
	out, err = get(t, s, sharded(namedNode{"l", symlinkNode(t, s, "../x")}).Cid())
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), `l: symlink to "../x" leads outside`) {
		t.Errorf("Get = %v, want ErrUnsafe", err)
	}
	nothingAt(t, out)
}

// TestGetRemovesAPartialWrite: a file that fails while being written
// takes every file written before it away.
func TestGetRemovesAPartialWrite(t *testing.T) {
	s := testStore(t)
	badFile := merkledag.NodeWithData(unixfs.FilePBData(nil, 5))
	badFile.SetCidBuilder(cidBuilder)
	if err := badFile.AddNodeLink("", symlinkNode(t, s, "x")); err != nil {
		t.Fatal(err)
	}
	put(t, s, badFile)
	for _, tt := range []struct {
		name string
		root ipld.Node
	}{
		{"a folder", dirNode(t, s, namedNode{"a", fileNode(t, s, "first")}, namedNode{"b", badFile})},
		{"a file", badFile},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := get(t, s, tt.root.Cid())
			if err == nil || !strings.Contains(err.Error(), "write "+out) {
				t.Fatalf("Get = %v, want a write error", err)
			}
			nothingAt(t, out)
		})
	}
}

// repeatedFile stores a UnixFS file whose root links one raw block of
// blockSize bytes n times: a small DAG that is a large file.
func repeatedFile(t *testing.T, s *Store, blockSize, n int) cid.Cid {
	t.Helper()
	leaf := merkledag.NewRawNode(bytes.Repeat([]byte{'x'}, blockSize))
	put(t, s, leaf)
	fsn := unixfs.NewFSNode(unixfs.TFile)
	root := new(merkledag.ProtoNode)
	root.SetCidBuilder(cidBuilder)
	for range n {
		if err := root.AddRawLink("", &ipld.Link{Cid: leaf.Cid(), Size: uint64(blockSize)}); err != nil {
			t.Fatal(err)
		}
		fsn.AddBlockSize(uint64(blockSize))
	}
	data, err := fsn.GetBytes()
	if err != nil {
		t.Fatal(err)
	}
	root.SetData(data)
	put(t, s, root)
	return root.Cid()
}

// TestGetWithinBoundsExpansion: a file made of one block linked many
// times is refused before anything is written when it passes the bound;
// within it, it is written whole.
func TestGetWithinBoundsExpansion(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	bomb := repeatedFile(t, s, 256<<10, 4096) // 1 GiB as a file, 256 KiB as blocks
	out := filepath.Join(t.TempDir(), "in")
	if _, err := s.GetWithin(ctx, bomb, out, 16<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("GetWithin(1 GiB file, 16 MiB) = %v, want ErrTooLarge", err)
	}
	nothingAt(t, out)
	small := repeatedFile(t, s, 1<<10, 8)
	n, err := s.GetWithin(ctx, small, out, 16<<20)
	if err != nil || n != 8<<10 {
		t.Fatalf("GetWithin(8 KiB file) = %d, %v", n, err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() != 8<<10 {
		t.Fatalf("written: %v, %v", fi, err)
	}
	// Get bounds what it writes by content.max_fetch_mib.
	s.cfg.MaxFetchMiB = 1
	if _, err := s.Get(ctx, bomb, filepath.Join(t.TempDir(), "get"), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Get(1 GiB file) with max_fetch_mib 1 = %v, want ErrTooLarge", err)
	}
}

// TestGetBoundsShardWalks: a HAMT folder whose shards link one child
// shard many times is a small DAG and an endless walk; Get stops it, and
// stops when its context ends.
func TestGetBoundsShardWalks(t *testing.T) {
	s := testStore(t)
	data, err := unixfs.HAMTShardData([]byte{0xff}, 8, hamt.HashMurmur3)
	if err != nil {
		t.Fatal(err)
	}
	below := merkledag.NodeWithData(data)
	below.SetCidBuilder(cidBuilder)
	put(t, s, below)
	for range 6 {
		nd := merkledag.NodeWithData(data)
		nd.SetCidBuilder(cidBuilder)
		for range 100 {
			if err := nd.AddRawLink("0", &ipld.Link{Cid: below.Cid()}); err != nil {
				t.Fatal(err)
			}
		}
		put(t, s, nd)
		below = nd
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "in")
	start := time.Now()
	if _, err := s.GetWithin(ctx, below.Cid(), out, 1<<20); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("GetWithin(a shard walk of 100^6 nodes) = %v after %s, want ErrUnsafe", err, time.Since(start))
	}
	nothingAt(t, out)
}

// TestGetBoundsNames: a name longer than a file name may be, and many
// long names reached through a small DAG, are refused before they take
// memory.
func TestGetBoundsNames(t *testing.T) {
	s := testStore(t)
	long := rawDirNode(t, s, namedNode{strings.Repeat("n", 1<<20), fileNode(t, s, "")})
	if _, err := get(t, s, long.Cid()); !errors.Is(err, ErrUnsafe) || len(err.Error()) > 1000 {
		t.Fatalf("Get(a 1 MiB name) = %.200v, want a short ErrUnsafe", err)
	}
	nd := rawDirNode(t, s, namedNode{strings.Repeat("n", 255), fileNode(t, s, "")})
	for range 20 {
		nd = rawDirNode(t, s, namedNode{strings.Repeat("a", 255), nd}, namedNode{strings.Repeat("b", 255), nd})
	}
	if _, err := get(t, s, nd.Cid()); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Get(2^20 long names) = %v, want ErrUnsafe", err)
	}
}
