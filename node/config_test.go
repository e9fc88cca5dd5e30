package node

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestParseConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		json string
		want string
	}{
		{"unknown key", `{"swarm": {"listen_addrs": []}}`, "swarm.listen_addrs: unknown field"},
		{"unknown top-level key", `{"colour": "blue"}`, "colour: unknown field"},
		{"wrong type", `{"swarm": {"conn_low_water": "many"}}`, "swarm.conn_low_water"},
		{"wrong type at top", `{"role": 7}`, "role"},
		{"bad value", `{"swarm": {"dht_mode": "sometimes"}}`, "swarm.dht_mode"},
		{"bad api addr", `{"api": {"addr": "nowhere"}}`, "api.addr"},
		{"too few api connections", `{"api": {"max_connections": 2}}`, "api.max_connections: 2 is not between 8 and 4096"},
		{"duplicate key", `{"api": {"addr": "127.0.0.1:1", "addr": "127.0.0.1:2"}}`, "api.addr: duplicate key"},
		{"key in the wrong case", `{"swarm": {"DHT_mode": "client"}}`, `swarm.DHT_mode: unknown field (names are case-sensitive: "dht_mode")`},
		{"bad level", `{"log": {"level": "loud"}}`, "log.level"},
		{"bad role", `{"role": "king"}`, "role"},
		{"malformed", `{"role": `, "malformed JSON"},
		{"trailing", `{} {}`, "trailing data"},
	}
	for _, tt := range tests {
		_, err := ParseConfig([]byte(tt.json))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ParseConfig(%q) error = %v, want one containing %q", tt.name, tt.json, err, tt.want)
		}
	}
}

func TestParseConfigKeepsDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"swarm": {"dht_mode": "client"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Swarm.DHTMode = "client"
	if cfg.Swarm.DHTMode != "client" || cfg.API.Addr != want.API.Addr || cfg.Swarm.ConnHighWater != want.Swarm.ConnHighWater {
		t.Fatalf("ParseConfig = %+v, want defaults plus dht_mode=client", cfg)
	}
}

func TestOverrides(t *testing.T) {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	o := BindOverrides(fs)
	err := fs.Parse([]string{
		"--swarm.dht_mode=client",
		"--swarm.mdns=false",
		"--swarm.conn_high_water", "500",
		"--swarm.listen", "/ip4/127.0.0.1/tcp/1234",
		"--swarm.listen", "/ip4/127.0.0.1/tcp/1235",
		"--api.addr", "127.0.0.1:9999",
		"--market.price_per_cpu_second", "7",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := o.Apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Swarm.DHTMode != "client" || cfg.Swarm.MDNS || cfg.Swarm.ConnHighWater != 500 || cfg.API.Addr != "127.0.0.1:9999" || cfg.Market.PricePerCPUSecond != 7 {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
	if got := strings.Join(cfg.Swarm.Listen, " "); got != "/ip4/127.0.0.1/tcp/1234 /ip4/127.0.0.1/tcp/1235" {
		t.Fatalf("list override = %q, want the two flags replacing the default", got)
	}

	bad := &Overrides{vals: map[string][]string{}}
	bad.Set("swarm.conn_high_water", "lots")
	if err := bad.Apply(&cfg); err == nil || !strings.Contains(err.Error(), "swarm.conn_high_water") {
		t.Fatalf("bad number: %v", err)
	}
	invalid := &Overrides{vals: map[string][]string{}}
	invalid.Set("swarm.dht_mode", "never")
	if err := invalid.Apply(&cfg); err == nil || !strings.Contains(err.Error(), "swarm.dht_mode") {
		t.Fatalf("invalid value: %v", err)
	}
}

// TestEveryKeyDocumented guards docs/config.md: each key must appear there
// in backticks, and every key must have a flag.
func TestEveryKeyDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	BindOverrides(fs)
	keys := ConfigKeys()
	if len(keys) < 20 {
		t.Fatalf("ConfigKeys() = %v: too few, the walk is broken", keys)
	}
	for _, key := range keys {
		if !strings.Contains(string(doc), "`"+key+"`") {
			t.Errorf("config key %s is not documented in docs/config.md", key)
		}
		if fs.Lookup(key) == nil {
			t.Errorf("config key %s has no flag", key)
		}
	}
	// And the doc names no key that does not exist.
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
	}
	for _, m := range regexp.MustCompile("`((?:api|swarm|content|log)\\.[a-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		if !known[m[1]] {
			t.Errorf("docs/config.md documents %s, which is not a config key", m[1])
		}
	}
}
