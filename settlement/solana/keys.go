package solana

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	sol "github.com/gagliardetto/solana-go"
)

// LoadKeypair reads a keypair file in the Solana CLI's format (a JSON array
// of the 64 bytes of the secret key, as a repo's keys/wallet.json holds).
func LoadKeypair(path string) (sol.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load keypair: %w", err)
	}
	var ints []int
	if err := json.Unmarshal(b, &ints); err != nil {
		return nil, fmt.Errorf("load keypair %s: %w", path, err)
	}
	if len(ints) != 64 {
		return nil, fmt.Errorf("load keypair %s: %d bytes, want 64", path, len(ints))
	}
	key := make(sol.PrivateKey, 64)
	for i, v := range ints {
		if v < 0 || v > 255 {
			return nil, fmt.Errorf("load keypair %s: byte %d is %d", path, i, v)
		}
		key[i] = byte(v)
	}
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("load keypair %s: %w", path, err)
	}
	return key, nil
}

// SaveKeypair writes a keypair file in the Solana CLI's format, readable by
// its owner only. It replaces the file atomically.
func SaveKeypair(path string, key sol.PrivateKey) error {
	if err := key.Validate(); err != nil {
		return fmt.Errorf("save keypair: %w", err)
	}
	ints := make([]int, len(key))
	for i, b := range key {
		ints[i] = int(b)
	}
	data, err := json.Marshal(ints)
	if err != nil {
		return fmt.Errorf("save keypair: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keypair-*")
	if err != nil {
		return fmt.Errorf("save keypair: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save keypair: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save keypair: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save keypair: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save keypair: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save keypair: %w", err)
	}
	return nil
}
