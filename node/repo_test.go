package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
)

func TestInitAndOpenRepo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	key, err := p2p.GenerateSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	id, err := InitRepo(dir, InitOptions{Config: LocalConfig(), SwarmKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitRepo(dir, InitOptions{Config: LocalConfig()}); err == nil {
		t.Fatal("second InitRepo on the same folder succeeded")
	}
	for _, name := range []string{ConfigFile, PeerKeyFile, WalletFile, api.TokenFile, SwarmKeyFile} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, perm)
		}
	}

	r, err := OpenRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	priv, err := r.PeerKey()
	if err != nil {
		t.Fatal(err)
	}
	if !priv.GetPublic().Equals(mustPub(t, id.String())) {
		t.Error("peer key does not match the ID InitRepo returned")
	}
	if psk, err := r.SwarmKey(); err != nil || len(psk) != 32 {
		t.Errorf("SwarmKey() = %d bytes, %v", len(psk), err)
	}
	if tok, err := r.Token(); err != nil || len(tok) != 64 {
		t.Errorf("Token() = %q, %v", tok, err)
	}
	wallet, err := os.ReadFile(filepath.Join(dir, WalletFile))
	if err != nil || !strings.HasPrefix(string(wallet), "[") || strings.Count(string(wallet), ",") != 63 {
		t.Errorf("wallet file is not a 64-number JSON array: %s", wallet)
	}

	_, err = OpenRepo(dir)
	if !errors.Is(err, ErrRepoLocked) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second OpenRepo = %v, want ErrRepoLocked naming the pid", err)
	}
	r.Close()
	r2, err := OpenRepo(dir)
	if err != nil {
		t.Fatalf("OpenRepo after Close = %v", err)
	}
	r2.Close()
}

func TestOpenRepoErrors(t *testing.T) {
	if _, err := OpenRepo(t.TempDir()); !errors.Is(err, ErrNoRepo) {
		t.Fatalf("OpenRepo(empty) = %v, want ErrNoRepo", err)
	}
	dir := t.TempDir()
	if _, err := InitRepo(dir, InitOptions{Config: LocalConfig()}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, api.TokenFile), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Token(); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("Token() with mode 0644 = %v, want a refusal", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"swarm":{"dht_mode":"x"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Config(); err == nil || !strings.Contains(err.Error(), "swarm.dht_mode") {
		t.Fatalf("Config() with a bad key = %v, want an error naming swarm.dht_mode", err)
	}
	if _, err := InitRepo(t.TempDir(), InitOptions{Config: LocalConfig(), SwarmKey: []byte("junk")}); err == nil {
		t.Fatal("InitRepo accepted a junk swarm key")
	}
}

func TestDefaultRepoDir(t *testing.T) {
	t.Setenv(EnvRepo, "/somewhere/else")
	if dir, _ := DefaultRepoDir(); dir != "/somewhere/else" {
		t.Errorf("DefaultRepoDir() = %q with %s set", dir, EnvRepo)
	}
	t.Setenv(EnvRepo, "")
	t.Setenv("HOME", "/home/x")
	if dir, _ := DefaultRepoDir(); dir != "/home/x/.cyxwiz" {
		t.Errorf("DefaultRepoDir() = %q, want /home/x/.cyxwiz", dir)
	}
}
