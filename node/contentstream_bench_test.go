package node

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
)

// BenchmarkContentStreams moves a 256 MiB file out of a daemon's store
// three ways in the same run: content.get (the daemon writes the file),
// a streamed cat (the client reads the bytes over HTTP) and a streamed
// get (the client writes the file). It reports each speed and cat's
// against content.get's; the target is cat/get >= 0.8.
func BenchmarkContentStreams(b *testing.B) {
	const size = 256 << 20
	n := startNodeEdit(b, testConfig(), 0, func(*Params) {})
	ctx := context.Background()
	dir := b.TempDir()
	src := filepath.Join(dir, "payload")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	added, err := n.client.ContentAdd(ctx, api.ContentAddParams{Path: src})
	if err != nil {
		b.Fatal(err)
	}
	var get, cat, getTo time.Duration
	b.ResetTimer()
	for range b.N {
		out := filepath.Join(dir, "get", "out")
		os.MkdirAll(filepath.Dir(out), 0o755)
		t0 := time.Now()
		if _, err := n.client.ContentGet(ctx, api.ContentGetParams{CID: added.CID, Output: out}); err != nil {
			b.Fatal(err)
		}
		get += time.Since(t0)
		os.RemoveAll(filepath.Dir(out))

		t0 = time.Now()
		if got, err := n.client.Cat(ctx, added.CID, 0, -1, io.Discard, api.StreamOptions{}); err != nil || got != size {
			b.Fatalf("cat: %d bytes, %v", got, err)
		}
		cat += time.Since(t0)

		out = filepath.Join(dir, "getto", "out")
		os.MkdirAll(filepath.Dir(out), 0o755)
		t0 = time.Now()
		if _, err := n.client.GetTo(ctx, added.CID, out, api.StreamOptions{}); err != nil {
			b.Fatal(err)
		}
		getTo += time.Since(t0)
		os.RemoveAll(filepath.Dir(out))
	}
	mibps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / (1 << 20) / d.Seconds() }
	b.ReportMetric(mibps(get), "get-MiB/s")
	b.ReportMetric(mibps(cat), "cat-MiB/s")
	b.ReportMetric(mibps(getTo), "streamed-get-MiB/s")
	b.ReportMetric(get.Seconds()/cat.Seconds(), "cat/get")
}

// BenchmarkNodeTransfer pins a file added on one node from another, two
// whole nodes in one process talking over loopback: the data path of a
// daemon-to-daemon transfer, where a CPU profile sees both sides.
// CYXWIZ_BENCH_MIB sets the size (64 MiB by default).
func BenchmarkNodeTransfer(b *testing.B) {
	size := int64(64 << 20)
	if s := os.Getenv("CYXWIZ_BENCH_MIB"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			size = int64(n) << 20
		}
	}
	ctx := context.Background()
	src := startNodeEdit(b, testConfig(), 0, func(*Params) {})
	path := filepath.Join(b.TempDir(), "payload")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	added, err := src.client.ContentAdd(ctx, api.ContentAddParams{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	info, err := src.client.NodeInfo(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dst := startNodeEdit(b, testConfig(), 0, func(*Params) {})
		if _, err := dst.client.SwarmConnect(ctx, info.Addresses[0]); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := dst.client.ContentPin(ctx, api.ContentPinParams{CID: added.CID}); err != nil {
			b.Fatal(err)
		}
	}
}
