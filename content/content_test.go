package content_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/ipfs/go-cid"
)

type peer struct {
	host  *p2p.Host
	store *content.Store
	dir   string
}

func testConfig() content.Config {
	c := content.DefaultConfig()
	c.FetchTimeoutSeconds = 5
	return c
}

func newPeerB(b *testing.B) *peer {
	return newPeerTB(b, testConfig())
}

func randomFileB(b *testing.B, size int) string {
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(b.TempDir(), "data.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

func newPeer(t *testing.T, cfg content.Config) *peer {
	return newPeerTB(t, cfg)
}

func newPeerTB(t testing.TB, cfg content.Config) *peer {
	t.Helper()
	h := p2ptest.NewHost(t, p2ptest.Config(), nil)
	dir := t.TempDir()
	s, err := content.Open(content.Params{Dir: dir, Host: h, Routing: h.DHT, Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &peer{host: h, store: s, dir: dir}
}

func connect(t *testing.T, a, b *peer) {
	t.Helper()
	if err := a.host.Connect(context.Background(), p2ptest.AddrInfo(b.host)); err != nil {
		t.Fatal(err)
	}
}

func randomFile(t *testing.T, dir, name string, size int) string {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// randomTree makes a directory with nested files of assorted sizes,
// including an empty file and an empty directory.
func randomTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "dataset")
	randomFile(t, root, "a.bin", 3<<20+17)
	randomFile(t, root, "sub/b.txt", 1000)
	randomFile(t, root, "sub/deeper/c.bin", 700<<10)
	randomFile(t, root, "empty", 0)
	if err := os.MkdirAll(filepath.Join(root, "nothing-here"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// sameTree compares two trees byte for byte.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	count := 0
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		other := filepath.Join(got, rel)
		info, err := os.Stat(other)
		if err != nil {
			t.Errorf("%s missing from the copy: %v", rel, err)
			return nil
		}
		if d.IsDir() != info.IsDir() {
			t.Errorf("%s: directory in one tree, file in the other", rel)
			return nil
		}
		if !d.IsDir() {
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(other)
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs (%d bytes, want %d)", rel, len(b), len(a))
			}
			count++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count == 0 {
		t.Fatal("compared no files")
	}
}

func TestTwoNodeFileAndDirectory(t *testing.T) {
	a, b := newPeer(t, testConfig()), newPeer(t, testConfig())
	connect(t, b, a)
	ctx := context.Background()

	file := randomFile(t, t.TempDir(), "data.bin", 5<<20+123)
	var progressed int64
	res, err := a.store.Add(ctx, file, func(done, total int64) { progressed = done })
	if err != nil {
		t.Fatal(err)
	}
	if res.CID.Version() != 1 || res.Size != 5<<20+123 || progressed != res.Size || res.Name != "data.bin" {
		t.Fatalf("Add = %+v (progress %d)", res, progressed)
	}
	out := filepath.Join(t.TempDir(), "copy.bin")
	if _, err := b.store.Get(ctx, res.CID, out, nil); err != nil {
		t.Fatal(err)
	}
	sameFile(t, file, out)

	tree := randomTree(t)
	dres, err := a.store.Add(ctx, tree, nil)
	if err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(t.TempDir(), "copy")
	if _, err := b.store.Get(ctx, dres.CID, outDir, nil); err != nil {
		t.Fatal(err)
	}
	sameTree(t, tree, outDir)
	if _, err := os.Stat(filepath.Join(outDir, "nothing-here")); err != nil {
		t.Errorf("empty directory lost: %v", err)
	}

	// A file can be read in parts; a directory cannot be read as a file.
	data, size, err := b.store.Read(ctx, res.CID, 1000, 50)
	want, _ := os.ReadFile(file)
	if err != nil || size != int64(len(want)) || !bytes.Equal(data, want[1000:1050]) {
		t.Fatalf("Read(1000, 50) = %d bytes, size %d, %v", len(data), size, err)
	}
	if _, _, err := b.store.Read(ctx, dres.CID, 0, 10); !errors.Is(err, content.ErrNotFile) {
		t.Fatalf("Read(directory) = %v, want ErrNotFile", err)
	}
}

func sameFile(t *testing.T, want, got string) {
	t.Helper()
	a, _ := os.ReadFile(want)
	b, err := os.ReadFile(got)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("%s differs from %s (%d vs %d bytes, %v)", got, want, len(b), len(a), err)
	}
}

// TestFiveNodesFindProvidersThroughDHT: the fetching node is not connected
// to the one that holds the data and finds it through the DHT.
func TestFiveNodesFindProvidersThroughDHT(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	peers := make([]*peer, 5)
	for i := range peers {
		peers[i] = newPeer(t, testConfig())
	}
	for i := 1; i < len(peers); i++ {
		connect(t, peers[i], peers[0])
	}
	ctx := context.Background()
	for _, p := range peers {
		if err := p.host.DHT.Bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
	}
	holder, fetcher := peers[1], peers[4]
	holder.host.Network().ClosePeer(fetcher.host.ID())
	file := randomFile(t, t.TempDir(), "x.bin", 2<<20)
	res, err := holder.store.Add(ctx, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the provider record is in the DHT.
	deadline := time.Now().Add(10 * time.Second)
	for {
		provs, _ := fetcher.host.DHT.FindProviders(ctx, res.CID)
		if len(provs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("provider record never appeared in the DHT")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := filepath.Join(t.TempDir(), "x.bin")
	if _, err := fetcher.store.Get(ctx, res.CID, out, nil); err != nil {
		t.Fatal(err)
	}
	sameFile(t, file, out)
}

// TestSeveralProvidersAndOneKilled: three nodes hold the data; one is
// killed while the fetch runs and the fetch completes from the others.
func TestSeveralProvidersAndOneKilled(t *testing.T) {
	ctx := context.Background()
	src := randomFile(t, t.TempDir(), "big.bin", 24<<20)
	var holders []*peer
	var root cid.Cid
	for range 3 {
		p := newPeer(t, testConfig())
		res, err := p.store.Add(ctx, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		root = res.CID
		holders = append(holders, p)
	}
	fetcher := newPeer(t, testConfig())
	for _, h := range holders {
		connect(t, fetcher, h)
	}
	done := make(chan error, 1)
	var killed bool
	go func() {
		_, err := fetcher.store.Fetch(ctx, root, func(got, _ int64) {
			if got > 4<<20 && !killed {
				killed = true
				holders[0].store.Close()
				holders[0].host.Close()
			}
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("fetch with a provider killed midway: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("fetch did not finish")
	}
	if !killed {
		t.Fatal("the provider was never killed")
	}
	out := filepath.Join(t.TempDir(), "big.bin")
	if _, err := fetcher.store.Get(ctx, root, out, nil); err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, out)
}

func TestPinsSurviveRestartAndGC(t *testing.T) {
	ctx := context.Background()
	h := p2ptest.NewHost(t, p2ptest.Config(), nil)
	dir := t.TempDir()
	open := func() *content.Store {
		s, err := content.Open(content.Params{Dir: dir, Host: h, Config: testConfig(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	keep := randomFile(t, t.TempDir(), "keep.bin", 1<<20)
	drop := randomFile(t, t.TempDir(), "drop.bin", 1<<20)
	kres, err := s.Add(ctx, keep, nil)
	if err != nil {
		t.Fatal(err)
	}
	dres, err := s.Add(ctx, drop, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin(dres.CID); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin(dres.CID); !errors.Is(err, content.ErrNotPinned) {
		t.Fatalf("second Unpin = %v, want ErrNotPinned", err)
	}
	s.Close()

	s = open()
	defer s.Close()
	pins, err := s.Pins()
	if err != nil || len(pins) != 1 || !pins[0].CID.Equals(kres.CID) || pins[0].Name != "keep.bin" {
		t.Fatalf("pins after restart = %+v, %v", pins, err)
	}
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed == 0 || res.FreedBytes < 1<<20 {
		t.Fatalf("GC = %+v, want the unpinned file's blocks gone", res)
	}
	if has, _ := s.Has(ctx, dres.CID); has {
		t.Fatal("unpinned root survived GC")
	}
	out := filepath.Join(t.TempDir(), "keep.bin")
	if _, err := s.Get(ctx, kres.CID, out, nil); err != nil {
		t.Fatalf("get pinned content after GC: %v", err)
	}
	sameFile(t, keep, out)
	if again, err := s.GC(ctx); err != nil || again.Removed != 0 {
		t.Fatalf("second GC = %+v, %v; want nothing removed", again, err)
	}
}

// TestCorruptBlockIsRefetched damages a block on disk: the node must not
// serve it, and a get must fetch a good copy from a peer.
func TestCorruptBlockIsRefetched(t *testing.T) {
	ctx := context.Background()
	a, b := newPeer(t, testConfig()), newPeer(t, testConfig())
	src := randomFile(t, t.TempDir(), "f.bin", 2<<20)
	if _, err := a.store.Add(ctx, src, nil); err != nil {
		t.Fatal(err)
	}
	res, err := b.store.Add(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Corrupt every block file of b's copy.
	var damaged int
	filepath.WalkDir(filepath.Join(b.dir, "packs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".pack") {
			data, _ := os.ReadFile(p)
			if len(data) > 0 {
				data[mrand.IntN(len(data))] ^= 0xff
				os.WriteFile(p, data, 0o644)
				damaged++
			}
		}
		return nil
	})
	if damaged == 0 {
		t.Fatal("found no block files to damage")
	}
	connect(t, b, a)
	out := filepath.Join(t.TempDir(), "f.bin")
	if _, err := b.store.Get(ctx, res.CID, out, nil); err != nil {
		t.Fatalf("get with corrupt local blocks: %v", err)
	}
	sameFile(t, src, out)
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()
	cfg.FetchTimeoutSeconds = 1
	cfg.MaxFetchMiB = 1
	a, b := newPeer(t, cfg), newPeer(t, cfg)
	connect(t, b, a)

	if _, err := a.store.Add(ctx, "/does/not/exist", nil); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Add(missing path) = %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink("/etc/hostname", link)
	if _, err := a.store.Add(ctx, link, nil); err == nil || !strings.Contains(err.Error(), "only regular files") {
		t.Errorf("Add(symlink) = %v", err)
	}

	// Unknown content fails after the timeout, not never.
	missing, _ := cid.Decode("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
	start := time.Now()
	_, err := b.store.Get(ctx, missing, filepath.Join(t.TempDir(), "x"), nil)
	if !errors.Is(err, content.ErrNotFound) || time.Since(start) > 10*time.Second {
		t.Errorf("Get(unknown) = %v after %s, want ErrNotFound after about 1s", err, time.Since(start))
	}

	big := randomFile(t, t.TempDir(), "big.bin", 3<<20)
	res, err := a.store.Add(ctx, big, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Fetch(ctx, res.CID, nil); !errors.Is(err, content.ErrTooLarge) {
		t.Errorf("Fetch over max_fetch_mib = %v, want ErrTooLarge", err)
	}

	// A cancelled fetch leaves a consistent store: GC and a later get work.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.store.Fetch(cctx, res.CID, nil); err == nil {
		t.Error("cancelled Fetch succeeded")
	}
	if _, err := b.store.GC(ctx); err != nil {
		t.Errorf("GC after a cancelled fetch: %v", err)
	}
	small := randomFile(t, t.TempDir(), "small.bin", 100<<10)
	sres, err := a.store.Add(ctx, small, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "small.bin")
	if _, err := b.store.Get(ctx, sres.CID, out, nil); err != nil {
		t.Fatalf("get after a cancelled fetch: %v", err)
	}
	sameFile(t, small, out)
	if _, err := b.store.Get(ctx, sres.CID, out, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Get over an existing path = %v", err)
	}

	quota := testConfig()
	quota.QuotaMiB = 1
	q := newPeer(t, quota)
	if _, err := q.store.Add(ctx, big, nil); !errors.Is(err, content.ErrQuota) {
		t.Errorf("Add over quota = %v, want ErrQuota", err)
	}
}
