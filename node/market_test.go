package node

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestProvidersThroughDHT: providers publish signed capacity records; a
// requester that knows only one peer lists them all; a stopped provider's
// record expires and it drops out.
func TestProvidersThroughDHT(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	cfg := testConfig()
	cfg.Market.AdvertiseSeconds = 1
	requesterCfg := cfg
	requesterCfg.Market.Provider = false

	boot := startNode(t, requesterCfg, 0)
	bootInfo, err := boot.client.NodeInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Swarm.Bootstrap = bootInfo.Addresses
	var providers []*testNode
	for range 4 {
		providers = append(providers, startNode(t, cfg, 0))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]bool{}
	for _, p := range providers {
		want[p.Host().ID().String()] = true
	}
	var list []api.ProviderInfo
	for {
		list, err = boot.client.MarketProviders(ctx, api.ProvidersParams{})
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, p := range list {
			if want[p.ID] {
				found++
			}
		}
		if found == len(want) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("found %d of %d providers: %+v", found, len(want), list)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range list {
		if p.CPUCores < 1 || p.MemoryMiB < 1 || p.BenchScore <= 0 || len(p.Executors) == 0 || !p.ExpiresAt.After(time.Now()) {
			t.Errorf("implausible record %+v", p)
		}
	}
	if gpus, err := boot.client.MarketProviders(ctx, api.ProvidersParams{GPU: true}); err != nil || len(gpus) != 0 {
		t.Errorf("--gpu listed %d providers without GPUs (%v)", len(gpus), err)
	}

	gone := providers[0].Host().ID().String()
	providers[0].Close()
	for {
		list, err = boot.client.MarketProviders(ctx, api.ProvidersParams{})
		if err != nil {
			t.Fatal(err)
		}
		still := false
		for _, p := range list {
			still = still || p.ID == gone
		}
		if !still {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("a stopped provider is still listed after its record expired")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestCapacityValidator(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, _ := peer.IDFromPrivateKey(key)
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	otherID, _ := peer.IDFromPrivateKey(other)
	now := time.Now()
	record := market.Capacity{Peer: id.String(), CPUCores: 2, MemoryMiB: 1024, Executors: []string{"wasm"},
		Seq: 1, IssuedAt: now, ExpiresAt: now.Add(time.Minute)}
	seal := func(k crypto.PrivKey, c market.Capacity) []byte {
		env, err := market.Seal(k, market.TypeCapacity, c)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := env.Marshal()
		return data
	}
	v := capacityValidator{}
	good := seal(key, record)
	if err := v.Validate(capacityKey(id), good); err != nil {
		t.Fatalf("good record: %v", err)
	}
	if err := v.Validate(capacityKey(otherID), good); err == nil {
		t.Error("a record stored under another peer's key was accepted")
	}
	forged := record
	forged.Peer = otherID.String()
	if err := v.Validate(capacityKey(otherID), seal(key, forged)); err == nil {
		t.Error("a record for another peer signed by this one was accepted")
	}
	expired := record
	expired.ExpiresAt = now.Add(-time.Second)
	if err := v.Validate(capacityKey(id), seal(key, expired)); err == nil {
		t.Error("an expired record was accepted")
	}
	if err := v.Validate(capacityKey(id), []byte("garbage")); err == nil {
		t.Error("garbage was accepted")
	}
	newer := record
	newer.Seq = 2
	if i, err := v.Select(capacityKey(id), [][]byte{good, seal(key, newer), []byte("x")}); err != nil || i != 1 {
		t.Errorf("Select = %d, %v; want the newer record (1)", i, err)
	}
}

// TestLoneNodeFailsFast: a node alone in its swarm (a provider, which
// does not take its own jobs) fails a job after market.alone_seconds with
// a message that says how to get a second node, and lists itself as this
// node among the providers.
func TestLoneNodeFailsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node")
	}
	cfg := testConfig()
	cfg.Market.AloneSeconds = 1
	n := startNode(t, cfg, 0)
	ctx := t.Context()
	waitProviders(t, n.client, 1)
	ps, err := n.client.MarketProviders(ctx, api.ProvidersParams{})
	if err != nil || len(ps) != 1 || !ps[0].Self {
		t.Fatalf("providers %+v, %v; want this node, marked", ps, err)
	}
	module := addFile(t, n.client, "guest.wasm", []byte("\\x00asm\\x01\\x00\\x00\\x00"))
	job, err := n.client.JobSubmit(ctx, spec(module, module, nil))
	if err != nil {
		t.Fatal(err)
	}
	// Well before the bid timeout of 10 minutes.
	done := waitJob(t, n.client, job.ID, time.Minute)
	if done.State != "failed" || !strings.Contains(done.Reason, "no provider but itself") || !strings.Contains(done.Reason, "cyxwiz devnet") {
		t.Fatalf("a lone node's job: %s %q", done.State, done.Reason)
	}
}
