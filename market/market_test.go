package market

import (
	"crypto/rand"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	testCID  = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	testMint = "So11111111111111111111111111111111111111112"
)

func validSpec() string {
	return `{"kind":"wasm","wasm":{"module":"` + testCID + `","args":["--n","3"],"env":{"MODE":"fast"}},
	"inputs":[{"name":"data.csv","cid":"` + testCID + `"}],
	"outputs":[{"name":"result","path":"/out/result.txt","max_bytes":1048576}],
	"resources":{"cpu":1,"memory_mib":256,"disk_mib":64},
	"limits":{"wall_seconds":60},
	"price":{"max":"1000000","mint":"` + testMint + `"},
	"verification":{"mode":"none"}}`
}

func TestParseSpec(t *testing.T) {
	s, err := ParseSpec([]byte(validSpec()))
	if err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	if s.MaxPrice() != 1000000 || len(s.Contents()) != 2 {
		t.Fatalf("parsed %+v", s)
	}
	minimal, err := ParseSpec([]byte(`{"kind":"wasm","wasm":{"module":"` + testCID + `"}}`))
	if err != nil {
		t.Fatalf("minimal spec: %v", err)
	}
	if minimal.Resources.CPU != DefaultCPU || minimal.Limits.WallSeconds != DefaultWallSeconds || minimal.Verification.Mode != VerifyNone {
		t.Fatalf("defaults not filled: %+v", minimal)
	}
	for _, rate := range []string{"0.2", "1", "0.001"} {
		in := strings.Replace(validSpec(), `"mode":"none"`, `"mode":"spot","rate":`+rate, 1)
		spot, err := ParseSpec([]byte(in))
		if err != nil || spot.Verification.Mode != VerifySpot || spot.Replicas() != 1 {
			t.Errorf("spot rate %s: %+v, %v", rate, spot.Verification, err)
		}
	}

	tests := []struct {
		name, from, to, want string
	}{
		{"unknown field", `"limits":{"wall_seconds":60}`, `"limits":{"wall_seconds":60,"cpu_seconds":5}`, "limits.cpu_seconds: unknown field"},
		{"unknown top-level", `"kind":"wasm"`, `"kind":"wasm","priority":9`, "priority: unknown field"},
		{"bad kind", `"kind":"wasm"`, `"kind":"docker"`, `kind: "docker" is not a job kind`},
		{"train without its section", `"kind":"wasm"`, `"kind":"train"`, "train: required for kind train"},
		{"bad module", `"module":"` + testCID + `"`, `"module":"nope"`, "wasm.module"},
		{"bad input cid", `{"name":"data.csv","cid":"` + testCID + `"}`, `{"name":"data.csv","cid":"Qm123"}`, "inputs[0].cid"},
		{"input name with slash", `"name":"data.csv"`, `"name":"../etc/passwd"`, "inputs[0].name"},
		{"output outside /out", `"path":"/out/result.txt"`, `"path":"/etc/result.txt"`, "outputs[0].path"},
		{"output unclean", `"path":"/out/result.txt"`, `"path":"/out/../x"`, "outputs[0].path"},
		{"too much memory", `"memory_mib":256`, `"memory_mib":999999`, "resources.memory_mib"},
		{"negative cpu", `"cpu":1`, `"cpu":-1`, "resources.cpu"},
		{"wall too long", `"wall_seconds":60`, `"wall_seconds":99999999`, "limits.wall_seconds"},
		{"price not a number", `"max":"1000000"`, `"max":"1e6"`, "price.max"},
		{"bad mint", `"mint":"` + testMint + `"`, `"mint":"not-base58-0OIl"`, "price.mint"},
		{"bad env name", `"MODE":"fast"`, `"1MODE":"fast"`, "wasm.env.1MODE"},
		{"replicate without replicas", `"mode":"none"`, `"mode":"replicate"`, "verification.replicas"},
		{"too many replicas", `"mode":"none"`, `"mode":"replicate","replicas":6`, "verification.replicas"},
		{"one replica", `"mode":"none"`, `"mode":"replicate","replicas":1`, "verification.replicas"},
		{"replicas without replicate", `"mode":"none"`, `"mode":"none","replicas":3`, "verification.replicas"},
		{"spot without rate", `"mode":"none"`, `"mode":"spot"`, "verification.rate"},
		{"spot rate above 1", `"mode":"none"`, `"mode":"spot","rate":1.5`, "verification.rate"},
		{"spot rate negative", `"mode":"none"`, `"mode":"spot","rate":-0.1`, "verification.rate"},
		{"spot with replicas", `"mode":"none"`, `"mode":"spot","rate":0.2,"replicas":2`, "verification.replicas"},
		{"rate without spot", `"mode":"none"`, `"mode":"replicate","replicas":2,"rate":0.2`, "verification.rate"},
		{"unknown mode", `"mode":"none"`, `"mode":"audit"`, `verification.mode: "audit" is not one of none, replicate, spot`},
		{"wrong type", `"cpu":1`, `"cpu":"one"`, "resources.cpu: got JSON string"},
		{"gpu for wasm", `"disk_mib":64`, `"disk_mib":64,"gpu":{"count":1}`, "resources.gpu"},
	}
	for _, tt := range tests {
		in := strings.Replace(validSpec(), tt.from, tt.to, 1)
		if in == validSpec() {
			t.Fatalf("%s: replacement %q not found", tt.name, tt.from)
		}
		_, err := ParseSpec([]byte(in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ParseSpec = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := ParseSpec([]byte(strings.Repeat(" ", MaxSpecBytes+1))); err == nil {
		t.Error("oversized spec accepted")
	}
}

func newKeyB(b *testing.B) (crypto.PrivKey, peer.ID) { return newKeyTB(b) }

func newKey(t *testing.T) (crypto.PrivKey, peer.ID) { return newKeyTB(t) }

func newKeyTB(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return k, id
}

func TestEnvelope(t *testing.T) {
	key, id := newKey(t)
	bid := Bid{JobID: "01J0000000000000000000000A", Attempt: 1, Provider: id.String(), Price: 5}
	env, err := Seal(key, TypeBid, bid)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := env.Marshal()
	parsed, err := ParseEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	var got Bid
	signer, err := parsed.Open(TypeBid, &got)
	if err != nil || signer != id || got.Price != 5 {
		t.Fatalf("Open = %v, %v, %+v", signer, err, got)
	}

	if _, err := parsed.Open(TypeAward, &got); err == nil {
		t.Error("a bid opened as an award")
	}
	tampered := parsed
	tampered.Payload = []byte(strings.Replace(string(parsed.Payload), `"price":5`, `"price":1`, 1))
	if _, err := tampered.Open(TypeBid, &got); err == nil {
		t.Error("tampered payload accepted")
	}
	_, other := newKey(t)
	forged := parsed
	forged.Signer = other.String()
	if _, err := forged.Open(TypeBid, &got); err == nil {
		t.Error("envelope with a swapped signer accepted")
	}
	if _, err := ParseEnvelope(make([]byte, MaxEnvelopeBytes+1)); err == nil {
		t.Error("oversized envelope accepted")
	}
}

func testAnnouncement(t *testing.T, requester peer.ID, now time.Time) Announcement {
	t.Helper()
	spec, err := ParseSpec([]byte(validSpec()))
	if err != nil {
		t.Fatal(err)
	}
	return Announcement{JobID: "01J0000000000000000000000A", Requester: requester.String(), Attempt: 1, Spec: spec,
		IssuedAt: now, BidsUntil: now.Add(200 * time.Millisecond)}
}

func TestChecks(t *testing.T) {
	now := time.Now()
	_, req := newKey(t)
	_, prov := newKey(t)
	_, stranger := newKey(t)
	a := testAnnouncement(t, req, now)
	if err := CheckAnnouncement(a, req, now); err != nil {
		t.Fatalf("good announcement: %v", err)
	}
	stale := a
	stale.IssuedAt = now.Add(-time.Hour)
	future := a
	future.IssuedAt = now.Add(time.Hour)
	future.BidsUntil = future.IssuedAt.Add(time.Second)
	badID := a
	badID.JobID = "x"
	for name, tc := range map[string]struct {
		a      Announcement
		signer peer.ID
	}{"stale": {stale, req}, "future": {future, req}, "bad id": {badID, req}, "wrong signer": {a, stranger}} {
		if err := CheckAnnouncement(tc.a, tc.signer, now); err == nil {
			t.Errorf("%s announcement accepted", name)
		}
	}

	bid := Bid{JobID: a.JobID, Attempt: 1, Provider: prov.String(), Price: 10, Mint: testMint, ExpiresAt: now.Add(time.Minute)}
	if err := CheckBid(bid, prov, a, now); err != nil {
		t.Fatalf("good bid: %v", err)
	}
	for name, mutate := range map[string]func(*Bid){
		"other job":     func(b *Bid) { b.JobID = "01J0000000000000000000000B" },
		"old attempt":   func(b *Bid) { b.Attempt = 2 },
		"expired":       func(b *Bid) { b.ExpiresAt = now.Add(-time.Second) },
		"too expensive": func(b *Bid) { b.Price = 2000000 },
		"other mint":    func(b *Bid) { b.Mint = "" },
		"negative":      func(b *Bid) { b.QueueDepth = -1 },
	} {
		b := bid
		mutate(&b)
		if err := CheckBid(b, prov, a, now); err == nil {
			t.Errorf("bid with %s accepted", name)
		}
	}
	if err := CheckBid(bid, stranger, a, now); err == nil {
		t.Error("bid signed by someone else accepted")
	}

	award := Award{JobID: a.JobID, Attempt: 1, Requester: req.String(), Provider: prov.String(), Spec: a.Spec, IssuedAt: now, Deadline: now.Add(time.Minute)}
	if err := CheckAward(award, req, prov, now); err != nil {
		t.Fatalf("good award: %v", err)
	}
	if err := CheckAward(award, req, stranger, now); err == nil {
		t.Error("award for another provider accepted")
	}
	if err := CheckAward(award, stranger, prov, now); err == nil {
		t.Error("award signed by someone else accepted")
	}

	res := Result{JobID: a.JobID, Attempt: 1, Provider: prov.String(), Status: StatusSucceeded,
		Outputs: []OutputRef{{Name: "result", CID: testCID}}, StartedAt: now, FinishedAt: now.Add(time.Second)}
	if err := CheckResult(res, prov, award); err != nil {
		t.Fatalf("good result: %v", err)
	}
	for name, mutate := range map[string]func(*Result){
		"unknown output": func(r *Result) { r.Outputs = []OutputRef{{Name: "other", CID: testCID}} },
		"output twice": func(r *Result) {
			r.Outputs = []OutputRef{{Name: "result", CID: testCID}, {Name: "result", CID: testCID}}
		},
		"bad status":    func(r *Result) { r.Status = "great" },
		"other attempt": func(r *Result) { r.Attempt = 3 },
		"time travel":   func(r *Result) { r.FinishedAt = now.Add(-time.Hour) },
	} {
		r := res
		mutate(&r)
		if err := CheckResult(r, prov, award); err == nil {
			t.Errorf("result with %s accepted", name)
		}
	}
	if err := CheckResult(res, stranger, award); err == nil {
		t.Error("result signed by someone other than the awarded provider accepted")
	}
}

func TestRankAndReputation(t *testing.T) {
	if got := (Outcomes{}).Reputation(); got != 0.5 {
		t.Errorf("stranger reputation = %v, want 0.5", got)
	}
	good, bad := Outcomes{Succeeded: 8}, Outcomes{Failed: 8}
	if good.Reputation() <= 0.8 || bad.Reputation() >= 0.2 {
		t.Errorf("reputations %v / %v", good.Reputation(), bad.Reputation())
	}
	cands := []Candidate{
		{Bid: Bid{Provider: "cheap-unreliable", Price: 100}, Reputation: bad.Reputation()},
		{Bid: Bid{Provider: "fair", Price: 300}, Reputation: good.Reputation()},
		{Bid: Bid{Provider: "busy", Price: 250, QueueDepth: 20}, Reputation: good.Reputation()},
		{Bid: Bid{Provider: "expensive", Price: 900}, Reputation: good.Reputation()},
	}
	ranked := Rank(cands, 1000)
	if ranked[0].Bid.Provider != "fair" || ranked[len(ranked)-1].Bid.Provider != "expensive" {
		var order []string
		for _, c := range ranked {
			order = append(order, c.Bid.Provider)
		}
		t.Errorf("rank order %v", order)
	}
	tie := Rank([]Candidate{{Bid: Bid{Provider: "b", Price: 1}}, {Bid: Bid{Provider: "a", Price: 1}}}, 0)
	if tie[0].Bid.Provider != "a" {
		t.Error("ties are not broken by provider ID")
	}
}

func TestStrategies(t *testing.T) {
	now := time.Now()
	_, req := newKey(t)
	a := testAnnouncement(t, req, now)
	capacity := Capacity{CPUCores: 4, MemoryMiB: 8192, DiskMiB: 10000, Executors: []string{KindWASM},
		Prices: PriceList{PerCPUSecond: 10, Mint: testMint}}
	strategy := All(ExecutorSupported(), FreeCapacity(), MinPrice(), AllowDeny(nil, []string{"blocked"}), MaxConcurrent(2))
	if d := strategy.ShouldBid(BidRequest{Announcement: a, Capacity: capacity}); !d.Bid {
		t.Fatalf("fitting job refused: %s", d.Reason)
	}
	tests := []struct {
		name   string
		mutate func(*BidRequest)
		want   string
	}{
		{"no executor", func(r *BidRequest) { r.Capacity.Executors = []string{"train"} }, "no wasm executor"},
		{"busy cpus", func(r *BidRequest) { r.Load.CPUInUse = 4 }, "CPUs"},
		{"no memory", func(r *BidRequest) { r.Capacity.MemoryMiB = 100 }, "memory"},
		{"too cheap", func(r *BidRequest) { r.Capacity.Prices.PerCPUSecond = 1000000 }, "quote"},
		{"other mint", func(r *BidRequest) { r.Capacity.Prices.Mint = "Other" }, "mint"},
		{"denied", func(r *BidRequest) { r.Announcement.Requester = "blocked" }, "denied"},
		{"full", func(r *BidRequest) { r.Load.Running, r.Load.Queued = 1, 1 }, "limit is 2"},
	}
	for _, tt := range tests {
		r := BidRequest{Announcement: a, Capacity: capacity}
		tt.mutate(&r)
		if d := strategy.ShouldBid(r); d.Bid || !strings.Contains(d.Reason, tt.want) {
			t.Errorf("%s: decision %+v, want a refusal mentioning %q", tt.name, d, tt.want)
		}
	}
	queueing := All(Fits(), QueueRoom(2, 2))
	if d := queueing.ShouldBid(BidRequest{Announcement: a, Capacity: capacity, Load: Load{Running: 2, Queued: 1, CPUInUse: 4}}); !d.Bid {
		t.Errorf("a busy provider with queue room refused: %s", d.Reason)
	}
	if d := queueing.ShouldBid(BidRequest{Announcement: a, Capacity: capacity, Load: Load{Running: 2, Queued: 2}}); d.Bid {
		t.Error("a provider with a full queue bid")
	}
	// A serve job is not queued behind others: it bids only with a slot free.
	serve := a
	serve.Spec.Kind = KindServe
	startsNow := ServeStartsNow(2)
	if d := startsNow.ShouldBid(BidRequest{Announcement: serve, Load: Load{Running: 1, Queued: 1}}); d.Bid || !strings.Contains(d.Reason, "starts at once") {
		t.Errorf("a serve job with both slots taken: %+v", d)
	}
	if d := startsNow.ShouldBid(BidRequest{Announcement: serve, Load: Load{Running: 1}}); !d.Bid {
		t.Errorf("a serve job with a slot free refused: %s", d.Reason)
	}
	if d := startsNow.ShouldBid(BidRequest{Announcement: a, Load: Load{Running: 2, Queued: 1}}); !d.Bid {
		t.Errorf("a wasm job refused by the serve rule: %s", d.Reason)
	}
	if d := AllowDeny([]string{"friend"}, nil).ShouldBid(BidRequest{Announcement: a}); d.Bid {
		t.Error("requester not on the allow list got a bid")
	}
}

func TestStateMachine(t *testing.T) {
	path := []State{StateSubmitted, StateBidding, StateAwarded, StateBidding, StateAwarded, StateRunning, StateFetching, StateSucceeded}
	for i := 1; i < len(path); i++ {
		if err := CanMove(path[i-1], path[i]); err != nil {
			t.Errorf("requester path step %d: %v", i, err)
		}
	}
	provider := []State{StateAccepted, StateExecuting, StateReporting, StateSucceeded}
	for i := 1; i < len(provider); i++ {
		if err := CanMove(provider[i-1], provider[i]); err != nil {
			t.Errorf("provider path step %d: %v", i, err)
		}
	}
	for _, bad := range [][2]State{{StateSucceeded, StateRunning}, {StateSubmitted, StateRunning}, {StateFailed, StateBidding}, {StateCancelled, StateSucceeded}} {
		if err := CanMove(bad[0], bad[1]); err == nil {
			t.Errorf("%s -> %s allowed", bad[0], bad[1])
		}
	}
	if !StateCancelled.Final() || StateRunning.Final() {
		t.Error("Final is wrong")
	}
}

// TestNoNetworkImports keeps the market logic free of network and chain code.
func TestNoNetworkImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/cyxwiz/cyxwiz/market").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"net/http", "go-libp2p/p2p/", "go-libp2p-kad-dht", "go-libp2p-pubsub", "boxo", "solana", "cyxwiz/node", "cyxwiz/p2p", "cyxwiz/content"} {
			if strings.Contains(dep, banned) {
				t.Errorf("market depends on %s", dep)
			}
		}
	}
}

func TestReplicatedSpec(t *testing.T) {
	for _, n := range []int{MinReplicas, 3, MaxReplicas} {
		in := strings.Replace(validSpec(), `"mode":"none"`, fmt.Sprintf(`"mode":"replicate","replicas":%d`, n), 1)
		s, err := ParseSpec([]byte(in))
		if err != nil {
			t.Fatalf("replicas %d: %v", n, err)
		}
		if got := s.Replicas(); got != n {
			t.Errorf("Replicas() = %d, want %d", got, n)
		}
	}
	s, err := ParseSpec([]byte(validSpec()))
	if err != nil || s.Replicas() != 1 {
		t.Errorf("Replicas() of an unreplicated spec = %d, %v; want 1", s.Replicas(), err)
	}
}
