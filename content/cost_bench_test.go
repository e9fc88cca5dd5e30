package content_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/cyxwiz/cyxwiz/content/packstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"
)

// The per-byte costs that bound a transfer on this machine, measured
// beside the transfer benchmarks: SHA-256 (each block is checked once on
// receive and once when served) and ChaCha20-Poly1305, the cipher of the
// libp2p Noise channel (sealed by the sender, opened by the receiver), and
// the receiver's appends to its pack files.

// noiseFrame is the plaintext of one full Noise frame (65535 bytes less
// the 16-byte tag).
const noiseFrame = 65535 - 16

// BenchmarkCostSHA256 hashes 256 KiB blocks, the size of a UnixFS leaf.
func BenchmarkCostSHA256(b *testing.B) {
	data := make([]byte, 256<<10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sha256.Sum256(data)
	}
}

// BenchmarkCostNoiseSeal seals full Noise frames.
func BenchmarkCostNoiseSeal(b *testing.B) {
	aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSize)
	msg := make([]byte, noiseFrame)
	out := make([]byte, 0, noiseFrame+aead.Overhead())
	b.SetBytes(noiseFrame)
	for b.Loop() {
		out = aead.Seal(out[:0], nonce, msg, nil)
	}
}

// BenchmarkCostNoiseOpen opens full Noise frames.
func BenchmarkCostNoiseOpen(b *testing.B) {
	aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSize)
	sealed := aead.Seal(nil, nonce, make([]byte, noiseFrame), nil)
	out := make([]byte, 0, noiseFrame)
	b.SetBytes(noiseFrame)
	for b.Loop() {
		if out, err = aead.Open(out[:0], nonce, sealed, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCostPackAppend appends batches of 32 blocks of 256 KiB to a
// pack store, as a receiver does (the page-cache write and the index).
func BenchmarkCostPackAppend(b *testing.B) {
	dir := b.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.NoSync = true
	s, err := packstore.Open(filepath.Join(dir, "packs"), db, packstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// Every batch is new blocks, whose data comes round from 64 MiB.
	data := make([]byte, 64<<20)
	rand.Read(data)
	const batch, size = 32, 256 << 10
	b.SetBytes(batch * size)
	var off, seq int
	for b.Loop() {
		bs := make([]blocks.Block, batch)
		for i := range bs {
			if off+size > len(data) {
				off = 0
			}
			d := data[off : off+size]
			off += size
			// A CID of the sequence number alone: the store does not
			// check hashes, and hashing the data is measured above.
			seq++
			mh, err := multihash.Sum(binary.AppendUvarint(nil, uint64(seq)), multihash.SHA2_256, -1)
			if err != nil {
				b.Fatal(err)
			}
			if bs[i], err = blocks.NewBlockWithCid(d, cid.NewCidV1(cid.Raw, mh)); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.PutMany(ctx, bs); err != nil {
			b.Fatal(err)
		}
	}
}
