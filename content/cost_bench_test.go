package content_test

import (
	"crypto/sha256"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// The per-byte costs that bound a transfer on this machine, measured
// beside the transfer benchmarks: SHA-256 (each block is checked once on
// receive and once when served) and ChaCha20-Poly1305, the cipher of the
// libp2p Noise channel (sealed by the sender, opened by the receiver).

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
