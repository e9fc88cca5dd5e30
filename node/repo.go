package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Files and folders inside a repo.
const (
	ConfigFile   = "config.json"
	LockFile     = "repo.lock"
	KeysDir      = "keys"
	PeerKeyFile  = "keys/peer.key"
	WalletFile   = "keys/wallet.json"
	SwarmKeyFile = "swarm.key"
	ContentDir   = "content"
	JobsFile     = "jobs.db"
	JobsDir      = "jobs"
	WasmCacheDir = "wasm-cache"
)

// EnvRepo names the environment variable that overrides the default repo.
const EnvRepo = "CYXWIZ_PATH"

// ErrRepoLocked is returned by OpenRepo when another process holds the repo.
var ErrRepoLocked = errors.New("repo is in use by another daemon")

// ErrNoRepo is returned by OpenRepo when the folder holds no repo.
var ErrNoRepo = errors.New("no repo here")

// DefaultRepoDir returns $CYXWIZ_PATH, else ~/.cyxwiz.
func DefaultRepoDir() (string, error) {
	if dir := os.Getenv(EnvRepo); dir != "" {
		return dir, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home folder (set %s or --repo): %w", EnvRepo, err)
	}
	return filepath.Join(home, ".cyxwiz"), nil
}

// InitOptions are the choices made when a repo is created.
type InitOptions struct {
	// Config is written as the repo's config file.
	Config Config
	// SwarmKey, when set, is copied into the repo and makes the node private.
	SwarmKey []byte
}

// InitRepo creates a repo in dir: config, peer key, wallet keypair and API
// token. It returns the new peer ID. It refuses a folder that already holds a repo.
func InitRepo(dir string, opts InitOptions) (peer.ID, error) {
	if err := opts.Config.Validate(); err != nil {
		return "", fmt.Errorf("init repo: %w", err)
	}
	if opts.SwarmKey != nil {
		if _, err := p2p.ParseSwarmKey(opts.SwarmKey); err != nil {
			return "", fmt.Errorf("init repo: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		return "", fmt.Errorf("init repo: %s already holds a repo", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, KeysDir), 0o700); err != nil {
		return "", fmt.Errorf("init repo: %w", err)
	}
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("init repo: generate peer key: %w", err)
	}
	keyBytes, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("init repo: encode peer key: %w", err)
	}
	_, wallet, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("init repo: generate wallet key: %w", err)
	}
	walletJSON, err := json.Marshal(bytesAsInts(wallet))
	if err != nil {
		return "", fmt.Errorf("init repo: encode wallet key: %w", err)
	}
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return "", fmt.Errorf("init repo: generate api token: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{PeerKeyFile, keyBytes},
		{WalletFile, walletJSON},
		{api.TokenFile, []byte(hex.EncodeToString(token) + "\n")},
	}
	if opts.SwarmKey != nil {
		files = append(files, struct {
			name string
			data []byte
		}{SwarmKeyFile, opts.SwarmKey})
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return "", fmt.Errorf("init repo: %w", err)
		}
	}
	// The config goes last: its presence marks a complete repo.
	if err := WriteConfig(filepath.Join(dir, ConfigFile), opts.Config); err != nil {
		return "", fmt.Errorf("init repo: %w", err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("init repo: %w", err)
	}
	return id, nil
}

// bytesAsInts encodes bytes as a JSON array of numbers, the Solana CLI's
// keypair file format.
func bytesAsInts(b []byte) []int {
	out := make([]int, len(b))
	for i, v := range b {
		out[i] = int(v)
	}
	return out
}

// Repo is an open repo whose lock this process holds.
type Repo struct {
	Dir  string
	lock *os.File
}

// OpenRepo locks the repo in dir. A second daemon on the same repo gets
// ErrRepoLocked.
func OpenRepo(dir string) (*Repo, error) {
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err != nil {
		return nil, fmt.Errorf("open repo %s: %w (create one with 'cyxwiz init')", dir, ErrNoRepo)
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open repo %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(f.Name())
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open repo %s: %w (pid %s)", dir, ErrRepoLocked, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("open repo %s: lock: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Repo{Dir: dir, lock: f}, nil
}

// Close releases the lock.
func (r *Repo) Close() error {
	if r.lock == nil {
		return nil
	}
	_ = r.lock.Truncate(0)
	err := r.lock.Close() // closing the descriptor releases the flock
	r.lock = nil
	return err
}

// Path returns the path of a file inside the repo.
func (r *Repo) Path(name string) string { return filepath.Join(r.Dir, name) }

// Config loads the repo's config file.
func (r *Repo) Config() (Config, error) { return LoadConfig(r.Path(ConfigFile)) }

// PeerKey loads the node's identity.
func (r *Repo) PeerKey() (crypto.PrivKey, error) {
	data, err := readPrivateFile(r.Path(PeerKeyFile))
	if err != nil {
		return nil, fmt.Errorf("read peer key: %w", err)
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("decode peer key %s: %w", r.Path(PeerKeyFile), err)
	}
	return key, nil
}

// Token returns the API bearer token.
func (r *Repo) Token() (string, error) {
	data, err := readPrivateFile(r.Path(api.TokenFile))
	if err != nil {
		return "", fmt.Errorf("read api token: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if len(token) < 32 {
		return "", fmt.Errorf("api token in %s is too short", r.Path(api.TokenFile))
	}
	return token, nil
}

// SwarmKey returns the private swarm key, or nil when the node is public.
func (r *Repo) SwarmKey() (p2p.SwarmKey, error) {
	data, err := readPrivateFile(r.Path(SwarmKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read swarm key: %w", err)
	}
	key, err := p2p.ParseSwarmKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path(SwarmKeyFile), err)
	}
	return key, nil
}

// WriteAPIAddr records where the API listens, for clients.
func (r *Repo) WriteAPIAddr(addr string) error {
	return writeFileAtomic(r.Path(api.AddrFile), []byte(addr+"\n"), 0o600)
}

// RemoveAPIAddr removes the API address file.
func (r *Repo) RemoveAPIAddr() error {
	if err := os.Remove(r.Path(api.AddrFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// readPrivateFile reads a secret, refusing one that others can read.
func readPrivateFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v): run chmod 600 on it", path, info.Mode().Perm())
	}
	return os.ReadFile(path)
}

// writeFileAtomic writes data to a temporary file and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
