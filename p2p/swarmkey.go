package p2p

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/libp2p/go-libp2p/core/pnet"
)

// SwarmKey is the pre-shared key of a private swarm: only hosts holding the
// same key can connect to each other.
type SwarmKey = pnet.PSK

// GenerateSwarmKey returns a new random key in the file format that IPFS
// tools also use (/key/swarm/psk/1.0.0/, base16).
func GenerateSwarmKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("read random bytes: %w", err)
	}
	return []byte("/key/swarm/psk/1.0.0/\n/base16/\n" + hex.EncodeToString(key) + "\n"), nil
}

// ParseSwarmKey decodes a swarm key file.
func ParseSwarmKey(data []byte) (SwarmKey, error) {
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode swarm key: %w", err)
	}
	if len(psk) != 32 {
		return nil, fmt.Errorf("decode swarm key: got %d bytes, want 32", len(psk))
	}
	return psk, nil
}
