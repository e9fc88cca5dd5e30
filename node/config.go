package node

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/internal/strictjson"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/metrics"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Roles a node can take.
const (
	RolePeer    = "peer"
	RoleIndexer = "indexer"
	// RoleArbiter is an indexer that also co-signs escrow refunds.
	RoleArbiter = "arbiter"
)

// Config is the content of the repo's config file. Every key is documented
// in docs/config.md and can be overridden by a daemon flag named after its
// dotted path (for example --swarm.dht_mode=server).
type Config struct {
	// Role is peer, indexer or arbiter. An indexer also serves as a circuit
	// relay; an arbiter is an indexer that co-signs escrow refunds.
	Role string `json:"role"`
	// API configures the local JSON-RPC API.
	API APIConfig `json:"api"`
	// Swarm configures the libp2p host.
	Swarm p2p.Config `json:"swarm"`
	// Content configures the block store and transfers.
	Content content.Config `json:"content"`
	// Market configures the node's part in the compute market.
	Market MarketConfig `json:"market"`
	// Settlement configures payments through escrows on a ledger.
	Settlement SettlementConfig `json:"settlement"`
	// Indexer configures the swarm's history kept by the indexer and
	// arbiter roles.
	Indexer IndexerConfig `json:"indexer"`
	// Metrics configures the Prometheus endpoint.
	Metrics MetricsConfig `json:"metrics"`
	// Log configures logging.
	Log LogConfig `json:"log"`
	// ShutdownTimeoutSeconds is how long a clean shutdown may take before the
	// daemon exits anyway.
	ShutdownTimeoutSeconds int `json:"shutdown_timeout_seconds"`
}

// APIConfig configures the local JSON-RPC API.
type APIConfig struct {
	// Addr is the host:port the API listens on; port 0 picks a free port.
	Addr string `json:"addr"`
	// AllowedOrigins lists browser origins allowed besides the API's own.
	AllowedOrigins []string `json:"allowed_origins"`
	// MaxRequestBytes bounds one request body or WebSocket message.
	MaxRequestBytes int64 `json:"max_request_bytes"`
	// MaxConnections bounds the open API connections, WebSockets included.
	MaxConnections int `json:"max_connections"`
}

// Bounds of api.max_connections.
const (
	minAPIConnections = 8
	maxAPIConnections = 4096
)

// MetricsConfig configures the Prometheus endpoint (docs/metrics.md).
type MetricsConfig struct {
	// Addr is the host:port where Prometheus text is served at /metrics;
	// "" (the default) serves no metrics. It must be a loopback address
	// unless Public is set.
	Addr string `json:"addr"`
	// Public allows an Addr that other machines can reach. The metrics
	// carry no secret, but they tell anyone who reads them what the node
	// does.
	Public bool `json:"public"`
}

// Validate reports every setting that cannot work, each naming its key.
func (c MetricsConfig) Validate() error {
	if c.Addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr: %q: %w", c.Addr, err)
	}
	if !c.Public && !metrics.Loopback(c.Addr) {
		return fmt.Errorf("addr: %q is not a loopback address (127.0.0.1, [::1], localhost); set metrics.public to serve metrics to other machines", c.Addr)
	}
	return nil
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `json:"level"`
	// Libp2pLevel is the level for libp2p and IPFS library logs.
	Libp2pLevel string `json:"libp2p_level"`
	// Format is text or json.
	Format string `json:"format"`
}

// DefaultAPIAddr is where the API listens unless configured otherwise.
const DefaultAPIAddr = "127.0.0.1:5250"

// DefaultConfig returns the configuration of a new public node.
func DefaultConfig() Config {
	return Config{
		Role: RolePeer,
		API: APIConfig{
			Addr:            DefaultAPIAddr,
			AllowedOrigins:  []string{},
			MaxRequestBytes: 1 << 20,
			MaxConnections:  128,
		},
		Swarm:                  p2p.DefaultConfig(),
		Content:                content.DefaultConfig(),
		Market:                 DefaultMarketConfig(),
		Settlement:             DefaultSettlementConfig(),
		Indexer:                DefaultIndexerConfig(),
		Log:                    LogConfig{Level: "info", Libp2pLevel: "error", Format: "text"},
		ShutdownTimeoutSeconds: 30,
	}
}

// LocalConfig returns a configuration that keeps the node on loopback with
// free ports: for tests, benchmarks and devnets.
func LocalConfig() Config {
	c := DefaultConfig()
	c.API.Addr = "127.0.0.1:0"
	c.Swarm = p2p.LocalConfig()
	c.Market.Provider = true
	c.Indexer.ExplorerAddr = "127.0.0.1:0"
	return c
}

// Validate reports every setting that cannot work, each naming its key.
func (c Config) Validate() error {
	var errs []error
	if c.Role != RolePeer && c.Role != RoleIndexer && c.Role != RoleArbiter {
		errs = append(errs, fmt.Errorf("role: %q is not one of peer, indexer, arbiter", c.Role))
	}
	if c.Role == RoleArbiter && c.Settlement.Ledger == "" {
		errs = append(errs, errors.New("role: an arbiter needs settlement.ledger"))
	}
	if _, _, err := net.SplitHostPort(c.API.Addr); err != nil {
		errs = append(errs, fmt.Errorf("api.addr: %q: %w", c.API.Addr, err))
	}
	if c.API.MaxRequestBytes < 1024 {
		errs = append(errs, fmt.Errorf("api.max_request_bytes: %d is below the minimum of 1024", c.API.MaxRequestBytes))
	}
	if c.API.MaxConnections < minAPIConnections || c.API.MaxConnections > maxAPIConnections {
		errs = append(errs, fmt.Errorf("api.max_connections: %d is not between %d and %d", c.API.MaxConnections, minAPIConnections, maxAPIConnections))
	}
	if err := c.Swarm.Validate(); err != nil {
		errs = append(errs, prefixErrors("swarm.", err))
	}
	if err := c.Content.Validate(); err != nil {
		errs = append(errs, prefixErrors("content.", err))
	}
	if err := c.Market.Validate(); err != nil {
		errs = append(errs, prefixErrors("market.", err))
	}
	if err := c.Indexer.Validate(); err != nil {
		errs = append(errs, prefixErrors("indexer.", err))
	}
	if err := c.Settlement.Validate(); err != nil {
		errs = append(errs, prefixErrors("settlement.", err))
	}
	if err := c.Metrics.Validate(); err != nil {
		errs = append(errs, prefixErrors("metrics.", err))
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		errs = append(errs, fmt.Errorf("log.level: %w", err))
	}
	if _, err := ParseLevel(c.Log.Libp2pLevel); err != nil {
		errs = append(errs, fmt.Errorf("log.libp2p_level: %w", err))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format))
	}
	if c.ShutdownTimeoutSeconds < 1 {
		errs = append(errs, fmt.Errorf("shutdown_timeout_seconds: %d must be at least 1", c.ShutdownTimeoutSeconds))
	}
	return errors.Join(errs...)
}

func prefixErrors(prefix string, err error) error {
	var out []error
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			out = append(out, fmt.Errorf("%s%w", prefix, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s%w", prefix, err)
}

// ParseLevel parses a log level name.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
	}
	return l, nil
}

// LoadConfig reads and validates a config file. Unknown keys and values of
// the wrong type are errors that name the key.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes and validates config file content. Keys left out keep
// their defaults.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	if err := strictjson.Decode(data, &cfg); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// WriteConfig writes cfg to path, readable by its owner only.
func WriteConfig(path string, cfg Config) error {
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	return writeFileAtomic(path, append(data, '\n'), 0o600)
}

// ConfigKeys lists every config key as a dotted path, in file order.
func ConfigKeys() []string {
	var keys []string
	walkConfig(reflect.ValueOf(&Config{}).Elem(), "", func(key string, _ reflect.Value) {
		keys = append(keys, key)
	})
	return keys
}

// Overrides collects config values given as flags, one flag per config
// key named after its dotted path (--swarm.dht_mode=server). A list flag
// replaces the configured list; repeat it for several values.
type Overrides struct {
	vals  map[string][]string
	order []string
}

// BindOverrides adds a flag for every config key to fs.
func BindOverrides(fs *flag.FlagSet) *Overrides {
	o := &Overrides{vals: map[string][]string{}}
	cfg := DefaultConfig()
	walkConfig(reflect.ValueOf(&cfg).Elem(), "", func(key string, v reflect.Value) {
		fs.Var(&collectFlag{o: o, key: key, boolean: v.Kind() == reflect.Bool}, key, "override config key "+key+" (see docs/config.md)")
	})
	return o
}

// Set records a value for key as if given on the command line.
func (o *Overrides) Set(key, value string) {
	if _, seen := o.vals[key]; !seen {
		o.order = append(o.order, key)
	}
	o.vals[key] = append(o.vals[key], value)
}

// Apply writes the collected values into cfg and validates the result.
func (o *Overrides) Apply(cfg *Config) error {
	fields := map[string]reflect.Value{}
	walkConfig(reflect.ValueOf(cfg).Elem(), "", func(key string, v reflect.Value) { fields[key] = v })
	for _, key := range o.order {
		v, ok := fields[key]
		if !ok {
			return fmt.Errorf("unknown config key %q", key)
		}
		f := &fieldFlag{v: v}
		for _, val := range o.vals[key] {
			if err := f.Set(val); err != nil {
				return fmt.Errorf("--%s=%s: %w", key, val, err)
			}
		}
	}
	return cfg.Validate()
}

type collectFlag struct {
	o       *Overrides
	key     string
	boolean bool
}

func (c *collectFlag) String() string     { return "" }
func (c *collectFlag) IsBoolFlag() bool   { return c.boolean }
func (c *collectFlag) Set(s string) error { c.o.Set(c.key, s); return nil }

func walkConfig(v reflect.Value, prefix string, fn func(key string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			walkConfig(f, prefix+name+".", fn)
			continue
		}
		fn(prefix+name, f)
	}
}

// fieldFlag sets one config field from text.
type fieldFlag struct {
	v   reflect.Value
	set bool
}

func (f *fieldFlag) Set(s string) error {
	switch f.v.Kind() {
	case reflect.String:
		f.v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		f.v.SetInt(n)
	case reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return err
		}
		f.v.SetUint(n)
	case reflect.Slice:
		list := f.v.Interface().([]string)
		if !f.set {
			list = nil
		}
		if s != "" {
			list = append(list, s)
		}
		f.v.Set(reflect.ValueOf(append([]string{}, list...)))
	default:
		return fmt.Errorf("unsupported config type %s", f.v.Type())
	}
	f.set = true
	return nil
}

// MarketConfig configures the node's part in the market.
type MarketConfig struct {
	// Provider makes the node offer its capacity, bid for jobs and run them.
	Provider bool `json:"provider"`
	// Executors lists the job kinds the node runs.
	Executors []string `json:"executors"`
	// CPUCores offered; 0 offers every core.
	CPUCores int `json:"cpu_cores"`
	// MemoryMiB offered; 0 offers three quarters of the machine's memory.
	MemoryMiB int64 `json:"memory_mib"`
	// DiskMiB offered; 0 offers half of the free space under the repo.
	DiskMiB int64 `json:"disk_mib"`
	// PricePerCPUSecond is charged per CPU per second of a job's wall limit,
	// in base units of Mint.
	PricePerCPUSecond uint64 `json:"price_per_cpu_second"`
	// MinPrice is the least the node takes for a job.
	MinPrice uint64 `json:"min_price"`
	// PricePerCall is what one call to a model the node serves costs, in
	// base units of Mint; 0 serves calls for free.
	PricePerCall uint64 `json:"price_per_call"`
	// Mint is the token the node is paid in (base58 address); "" for none.
	Mint string `json:"mint"`
	// AdvertiseSeconds is how often the capacity record is refreshed; it
	// expires after three periods, so a dead provider disappears.
	AdvertiseSeconds int `json:"advertise_seconds"`
	// MaxConcurrent bounds the jobs the node runs at once.
	MaxConcurrent int `json:"max_concurrent"`
	// MaxLogMiB bounds the output kept of one job, as provider and as
	// requester.
	MaxLogMiB int `json:"max_log_mib"`
	// Allow, when not empty, is the only requesters (peer IDs) served.
	Allow []string `json:"allow"`
	// Deny lists requesters (peer IDs) never served.
	Deny []string `json:"deny"`
	// DetectGPUs looks for NVIDIA GPUs at start and offers them for train
	// jobs when the GPU worker is there too.
	DetectGPUs bool `json:"detect_gpus"`
	// GPUWorker is the path of the GPU worker binary (cyxwiz-cuda-worker);
	// "" looks next to this program, then on PATH.
	GPUWorker string `json:"gpu_worker"`
	// PublishReceipts publishes the signed receipt of each attempt of the
	// node's jobs on the receipts topic, where indexers keep them.
	PublishReceipts bool `json:"publish_receipts"`
	// ReceiptOutputs names a successful job's output CIDs in its receipt.
	ReceiptOutputs bool `json:"receipt_outputs"`
	// AloneSeconds fails a job that has waited this long for a provider
	// while this node knows of none but itself; 0 waits the full bid
	// timeout (10 minutes).
	AloneSeconds int `json:"alone_seconds"`
	// Attesters lists the indexers (peer IDs) whose capacity attestations
	// market.providers trusts to mark a provider verified or unverified.
	Attesters []string `json:"attesters"`
}

// DefaultMarketConfig returns the market settings of a new node: a
// requester only.
func DefaultMarketConfig() MarketConfig {
	return MarketConfig{Executors: []string{market.KindWASM, market.KindTrain, market.KindServe}, AdvertiseSeconds: 60, MaxConcurrent: 4, MaxLogMiB: 16,
		Allow: []string{}, Deny: []string{}, Attesters: []string{}, DetectGPUs: true, PublishReceipts: true, AloneSeconds: 30}
}

// Validate reports every setting that cannot work, each naming its key.
func (c MarketConfig) Validate() error {
	var errs []error
	for _, e := range c.Executors {
		if e != market.KindWASM && e != market.KindTrain && e != market.KindServe {
			errs = append(errs, fmt.Errorf("executors: %q is not an executor of this version (wasm, train, serve)", e))
		}
	}
	if c.Provider && len(c.Executors) == 0 {
		errs = append(errs, errors.New("executors: a provider needs at least one"))
	}
	if c.CPUCores < 0 || c.MemoryMiB < 0 || c.DiskMiB < 0 {
		errs = append(errs, errors.New("cpu_cores/memory_mib/disk_mib: must not be negative"))
	}
	if c.Mint != "" {
		if err := market.CheckMint(c.Mint); err != nil {
			errs = append(errs, fmt.Errorf("mint: %w", err))
		}
	}
	if c.MaxConcurrent < 1 || c.MaxConcurrent > 1024 {
		errs = append(errs, fmt.Errorf("max_concurrent: %d is outside 1..1024", c.MaxConcurrent))
	}
	if c.MaxLogMiB < 1 || c.MaxLogMiB > 4096 {
		errs = append(errs, fmt.Errorf("max_log_mib: %d is outside 1..4096", c.MaxLogMiB))
	}
	for _, list := range []struct {
		key string
		ids []string
	}{{"allow", c.Allow}, {"deny", c.Deny}, {"attesters", c.Attesters}} {
		for _, id := range list.ids {
			if _, err := peer.Decode(id); err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not a peer ID", list.key, id))
			}
		}
	}
	if c.AloneSeconds < 0 || c.AloneSeconds > 3600 {
		errs = append(errs, fmt.Errorf("alone_seconds: %d is outside 0..3600", c.AloneSeconds))
	}
	if c.AdvertiseSeconds < 1 || c.AdvertiseSeconds > 3600 {
		errs = append(errs, fmt.Errorf("advertise_seconds: %d is outside 1..3600", c.AdvertiseSeconds))
	}
	return errors.Join(errs...)
}
