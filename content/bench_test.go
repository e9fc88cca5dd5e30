package content_test

import (
	"context"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/network"
)

// benchSize is the payload of the transfer benchmarks; CYXWIZ_BENCH_MIB
// overrides it.
func benchSize() int {
	if s := os.Getenv("CYXWIZ_BENCH_MIB"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n << 20
		}
	}
	return 64 << 20
}

// BenchmarkFetch moves a file between two stores over loopback bitswap.
func BenchmarkFetch(b *testing.B) {
	size := benchSize()
	ctx := context.Background()
	src := newPeerB(b)
	path := randomFileB(b, size)
	res, err := src.store.Add(ctx, path, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dst := newPeerB(b)
		if err := dst.host.Connect(ctx, p2ptest.AddrInfo(src.host)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := dst.store.Fetch(ctx, res.CID, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLibp2pStream is the baseline: one libp2p stream (TCP, Noise,
// Yamux) carrying the same bytes.
func BenchmarkLibp2pStream(b *testing.B) {
	size := benchSize()
	a := p2ptest.NewHost(b, p2ptest.Config(), nil)
	c := p2ptest.NewHost(b, p2ptest.Config(), nil)
	a.SetStreamHandler("/bench/1", func(s network.Stream) {
		io.Copy(io.Discard, s)
		s.Close()
	})
	ctx := context.Background()
	if err := c.Connect(ctx, p2ptest.AddrInfo(a)); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		s, err := c.NewStream(ctx, a.ID(), "/bench/1")
		if err != nil {
			b.Fatal(err)
		}
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := s.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		s.CloseWrite()
		io.Copy(io.Discard, s)
		s.Close()
	}
}
