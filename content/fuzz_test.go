package content

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// FuzzResolveLink builds a tree from lines as treeFrom reads them, writes
// it to a temporary folder, and checks every symlink the resolver lets
// through against the kernel and os.Root: one that leads somewhere leads
// exactly there, a dangling one finds nothing, none escapes.
func FuzzResolveLink(f *testing.F) {
	for _, seed := range []string{
		"sub/c -> ..\nsub/s -> c/../x",
		"sub/x\nsub/c -> ..\nsub/t -> c/sub/x",
		"a -> b\nb -> a",
		"x\na -> b\nb -> c\nc -> x",
		"d/\nl -> d/../d",
		"a/\nl -> a/../../x",
		"f\nl -> f/../x",
		"f\nl -> f/",
		"l -> m/../x",
		"d/e/\nd/e/l -> ../../d/./e//",
		"a -> b/x\nb -> ..",
		"l -> /etc",
		"a -> .\nb -> a/a/a/a/a/a/a/a/a/a",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		lines := strings.Split(spec, "\n")
		if len(lines) > 24 {
			lines = lines[:24]
		}
		// Keep the lines that make a tree with those kept before.
		var kept []string
		for _, line := range lines {
			if len(line) > 200 {
				continue
			}
			if _, _, err := treeFrom(append(kept, line)); err == nil {
				kept = append(kept, line)
			}
		}
		tr, _, err := treeFrom(kept)
		if err != nil {
			t.Fatal(err)
		}
		r := newLinkResolver(tr)
		results := make(map[int32]linkResult)
		for i, e := range tr.entries {
			if e.kind == kindSymlink {
				results[int32(i)] = r.resolve(int32(i))
			}
		}

		out := filepath.Join(t.TempDir(), "out")
		for i, e := range tr.entries {
			p := filepath.Join(out, tr.path(int32(i)))
			switch e.kind {
			case kindDir:
				err = os.MkdirAll(p, 0o755)
			case kindFile:
				err = os.WriteFile(p, nil, 0o644)
			case kindSymlink:
				if checkTarget(e.target) == nil || errors.Is(checkTarget(e.target), errLinkAbsolute) {
					err = os.Symlink(e.target, p)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		root, err := os.OpenRoot(out)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()

		for i, res := range results {
			if res.reason != nil {
				continue
			}
			name := tr.path(i)
			p := filepath.Join(out, name)
			got, err := os.Stat(p)
			rootInfo, rootErr := root.Stat(name)
			if res.to.dangling {
				if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
					t.Fatalf("%s -> %q: dangling, but stat gives %v", name, tr.entries[i].target, err)
				}
				if rootErr != nil && !errors.Is(rootErr, fs.ErrNotExist) && !errors.Is(rootErr, syscall.ENOTDIR) &&
					!(errors.Is(rootErr, syscall.ELOOP) && res.hops > 8) {
					t.Fatalf("%s -> %q: dangling, but os.Root gives %v", name, tr.entries[i].target, rootErr)
				}
				continue
			}
			want, werr := os.Stat(filepath.Join(out, tr.path(res.to.at)))
			if err != nil || werr != nil || !os.SameFile(got, want) {
				t.Fatalf("%s -> %q: should lead to %q; stat: %v, %v", name, tr.entries[i].target, tr.path(res.to.at), err, werr)
			}
			// os.Root follows at most 8 symlinks.
			if rootErr != nil && !(errors.Is(rootErr, syscall.ELOOP) && res.hops > 8) {
				t.Fatalf("%s -> %q: inside, but os.Root gives %v", name, tr.entries[i].target, rootErr)
			}
			if rootErr == nil && !os.SameFile(rootInfo, want) {
				t.Fatalf("%s -> %q: os.Root finds another file", name, tr.entries[i].target)
			}
		}
	})
}

// decodeAllocLimit bounds what decoding n bytes of a stream may allocate:
// a reader's buffer and a request's roots up front, then a bounded share
// per byte read, never anything sized by a length the bytes claim.
func decodeAllocLimit(n int) uint64 {
	return 4096 + maxRequestRoots*16 + 64<<10 + 512*uint64(n)
}

// FuzzDAGStream feeds arbitrary bytes to the DAG stream decoders: they
// never panic, return nothing over the protocol's limits and allocate no
// more than decodeAllocLimit.
func FuzzDAGStream(f *testing.F) {
	c, err := cidBuilder.Sum([]byte("block"))
	if err != nil {
		f.Fatal(err)
	}
	var req bytes.Buffer
	w := bufio.NewWriter(&req)
	if err := writeRequest(w, request{roots: []cid.Cid{c, c}, shallow: true}); err != nil {
		f.Fatal(err)
	}
	var resp bytes.Buffer
	w = bufio.NewWriter(&resp)
	writeBytes(w, c.Bytes())
	writeBytes(w, []byte("block"))
	writeUvarint(w, 0)
	w.WriteByte(statusIncomplete)
	w.Flush()
	f.Add(req.Bytes())
	f.Add(resp.Bytes())
	f.Add(resp.Bytes()[:len(resp.Bytes())/2])
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{byte(len(c.Bytes()))})
	f.Add([]byte{0xff, 0xff, 0xff, 0x0f})
	f.Add(append(append([]byte{byte(len(c.Bytes()))}, c.Bytes()...), 0x80, 0x80, 0x80, 0x80, 0x01))

	buf := make([]byte, maxBlockSize)
	f.Fuzz(func(t *testing.T, data []byte) {
		limit := decodeAllocLimit(len(data))
		var before, after runtime.MemStats

		runtime.ReadMemStats(&before)
		req, err := readRequest(bufio.NewReader(bytes.NewReader(data)))
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > limit {
			t.Fatalf("readRequest of %d bytes allocated %d, over %d", len(data), got, limit)
		}
		if err == nil {
			if len(req.roots) < 1 || len(req.roots) > maxRequestRoots {
				t.Fatalf("request with %d roots", len(req.roots))
			}
			var again bytes.Buffer
			if err := writeRequest(bufio.NewWriter(&again), req); err != nil {
				t.Fatal(err)
			}
			back, err := readRequest(bufio.NewReader(&again))
			if err != nil || back.shallow != req.shallow || len(back.roots) != len(req.roots) {
				t.Fatalf("request does not survive a round trip: %+v, %v", back, err)
			}
			for i := range req.roots {
				if !back.roots[i].Equals(req.roots[i]) {
					t.Fatalf("root %d: %s, want %s", i, back.roots[i], req.roots[i])
				}
			}
		}

		b, err := readBytes(bufio.NewReader(bytes.NewReader(data)), maxCIDSize)
		if err == nil && len(b) > maxCIDSize {
			t.Fatalf("readBytes returned %d bytes, over %d", len(b), maxCIDSize)
		}

		r := bufio.NewReader(bytes.NewReader(data))
		alloc := func(n int) []byte {
			if n < 0 || n > maxBlockSize {
				t.Fatalf("readFrame asked for %d bytes, over %d", n, maxBlockSize)
			}
			return buf[:n]
		}
		runtime.ReadMemStats(&before)
		var frames []blocks.Block
		for {
			fr, err := readFrame(r, alloc)
			if err != nil || fr.end {
				break
			}
			frames = append(frames, fr.block)
			if len(frames) > len(data) {
				t.Fatalf("%d frames from %d bytes", len(frames), len(data))
			}
		}
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > limit {
			t.Fatalf("readFrame over %d bytes allocated %d, over %d", len(data), got, limit)
		}
	})
}
