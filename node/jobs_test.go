package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/compute/wasm"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/libp2p/go-libp2p/core/peer"
)

var (
	guestOnce sync.Once
	guestPath string
	guestErr  error

	wasmCacheOnce sync.Once
	wasmCacheDir  string
	wasmCacheErr  error
)

// sharedWasmCache returns the compilation cache folder every test node's
// WASM executor shares, so that a guest is compiled once per test run
// rather than once per provider (minutes under the race detector).
func sharedWasmCache(t testing.TB) string {
	t.Helper()
	wasmCacheOnce.Do(func() {
		wasmCacheDir, wasmCacheErr = os.MkdirTemp("", "cyxwiz-wasm-cache")
	})
	if wasmCacheErr != nil {
		t.Fatalf("wasm cache: %v", wasmCacheErr)
	}
	return wasmCacheDir
}

// guestModule builds the executor tests' WASI guest once per test run and
// compiles it into the shared compilation cache.
func guestModule(t *testing.T) string {
	t.Helper()
	cacheDir := sharedWasmCache(t)
	guestOnce.Do(func() {
		guestPath = filepath.Join(cacheDir, "guest.wasm")
		cmd := exec.Command("go", "build", "-o", guestPath, "../compute/wasm/testdata/guest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			guestErr = errors.New(string(out))
			return
		}
		guestErr = precompile(guestPath, cacheDir)
	})
	if guestErr != nil {
		t.Fatalf("build guest: %v", guestErr)
	}
	return guestPath
}

// precompile runs the module once on an executor caching into cacheDir.
func precompile(module, cacheDir string) error {
	program, err := os.ReadFile(module)
	if err != nil {
		return err
	}
	e, err := wasm.New(wasm.Options{CacheDir: cacheDir})
	if err != nil {
		return err
	}
	defer e.Close(context.Background())
	work, err := os.MkdirTemp("", "cyxwiz-precompile")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	in, out := filepath.Join(work, "in"), filepath.Join(work, "out")
	if err := errors.Join(os.Mkdir(in, 0o700), os.Mkdir(out, 0o700)); err != nil {
		return err
	}
	outcome, err := e.Run(context.Background(), compute.Job{
		ID: "precompile", Program: program, InDir: in, OutDir: out,
		CPU: 1, MemoryMiB: 64, OutBytes: 1 << 20, Wall: 10 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("precompile guest: %w", err)
	}
	if outcome.ExitCode != 0 {
		return fmt.Errorf("precompile guest: exit %d", outcome.ExitCode)
	}
	return nil
}

// swarm starts n nodes in one process, all bootstrapped to the first; the
// first is a requester only.
func swarm(t *testing.T, n int) []*testNode {
	t.Helper()
	return swarmWith(t, n, func(*Config) {})
}

// waitJob waits for the job to reach a final state.
func waitJob(t *testing.T, c *api.Client, id string, timeout time.Duration) api.JobInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		info, err := c.JobStatus(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		switch info.State {
		case "succeeded", "failed", "cancelled":
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %s: %+v", id, info.State, timeout, info.Events)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitProviders waits until the requester sees n providers' records, so
// that the first auction has bidders.
func waitProviders(t *testing.T, c *api.Client, n int) {
	t.Helper()
	for range 200 {
		if ps, _ := c.MarketProviders(context.Background(), api.ProvidersParams{}); len(ps) >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("fewer than %d providers found", n)
}

func addFile(t *testing.T, c *api.Client, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := c.ContentAdd(context.Background(), api.ContentAddParams{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return res.CID
}

func spec(module, input string, extra map[string]any) json.RawMessage {
	s := map[string]any{
		"kind":    "wasm",
		"wasm":    map[string]any{"module": module, "args": []string{"copy", "/in/data.txt", "/out/result.txt"}},
		"inputs":  []map[string]string{{"name": "data.txt", "cid": input}},
		"outputs": []map[string]any{{"name": "result", "path": "/out/result.txt"}},
		"limits":  map[string]int{"wall_seconds": 30},
	}
	for k, v := range extra {
		s[k] = v
	}
	data, _ := json.Marshal(s)
	return data
}

func TestJobEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	nodes := swarm(t, 10)
	req := nodes[0].client
	ctx := context.Background()
	guest, err := os.ReadFile(guestModule(t))
	if err != nil {
		t.Fatal(err)
	}
	module := addFile(t, req, "guest.wasm", guest)
	input := addFile(t, req, "data.txt", []byte("the quick brown fox\n"))

	waitProviders(t, req, 9)

	// Ten jobs at once spread over the nine providers.
	var ids []string
	for range 10 {
		job, err := req.JobSubmit(ctx, spec(module, input, nil))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, job.ID)
	}
	used := map[string]bool{}
	for _, id := range ids[1:] {
		done := waitJob(t, req, id, 120*time.Second)
		if done.State != "succeeded" {
			t.Fatalf("job %s ended %s: %+v", id, done.State, done)
		}
		used[done.Provider] = true
	}
	if len(used) < 2 {
		t.Errorf("ten jobs ran on %d provider(s); want them spread", len(used))
	}
	job := api.JobInfo{ID: ids[0]}
	done := waitJob(t, req, job.ID, 120*time.Second)
	if done.State != "succeeded" || done.Result == nil || len(done.Result.Outputs) != 1 {
		t.Fatalf("job ended %s: %+v", done.State, done)
	}
	out := filepath.Join(t.TempDir(), "results")
	if _, err := req.JobResult(ctx, api.JobResultParams{ID: job.ID, Output: out}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "result")); string(got) != "the quick brown fox\n" {
		t.Fatalf("output = %q", got)
	}
	logs, err := req.JobLogs(ctx, api.JobLogsParams{ID: job.ID})
	if err != nil || !logs.Final {
		t.Fatalf("logs %+v %v", logs, err)
	}

	// A job whose program fails ends failed with the reason, not re-auctioned.
	bad, err := req.JobSubmit(ctx, spec(module, input, map[string]any{"wasm": map[string]any{"module": module, "args": []string{"exit", "7"}}}))
	if err != nil {
		t.Fatal(err)
	}
	failed := waitJob(t, req, bad.ID, 60*time.Second)
	if failed.State != "failed" || failed.Result == nil || failed.Result.ExitCode != 7 {
		t.Fatalf("failing job: %+v", failed)
	}

	// A spec that does not validate is refused at submit, naming the field.
	var ae *api.Error
	if _, err := req.JobSubmit(ctx, json.RawMessage(`{"kind":"wasm","wasm":{"module":"nope"}}`)); !errors.As(err, &ae) || ae.Code != api.CodeInvalidParams {
		t.Fatalf("bad spec: %v", err)
	}
}

// runNode starts a node on an existing repo; stop closes it and the repo.
func runNode(t *testing.T, dir string, cfg Config) (n *testNode, stop func()) {
	t.Helper()
	repo, err := OpenRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := New(t.Context(), Params{Repo: repo, Config: cfg, Logger: testLogger(t)})
	if err != nil {
		repo.Close()
		t.Fatal(err)
	}
	if err := nd.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, err := api.FromRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			nd.Close()
			repo.Close()
		})
	}
	t.Cleanup(stop)
	return &testNode{Node: nd, client: c}, stop
}

func newRepo(t *testing.T, cfg Config) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := InitRepo(dir, InitOptions{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitState waits until the job is in state.
func waitState(t *testing.T, c *api.Client, id, state string, timeout time.Duration) api.JobInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		info, err := c.JobStatus(context.Background(), id)
		if err == nil && info.State == state {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never reached %s (now %s, %v)", id, state, info.State, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func spinSpec(module, input string, millions int) json.RawMessage {
	return spec(module, input, map[string]any{
		"wasm":   map[string]any{"module": module, "args": []string{"spin", fmt.Sprint(millions), "/in/data.txt", "/out/result.txt"}},
		"limits": map[string]int{"wall_seconds": 120},
	})
}

// TestProviderKilledMidJob: the provider running a job dies; the job goes
// to a new auction and completes on another provider.
func TestProviderKilledMidJob(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes, slow job")
	}
	nodes := swarm(t, 4)
	req := nodes[0].client
	ctx := context.Background()
	guest, _ := os.ReadFile(guestModule(t))
	module := addFile(t, req, "guest.wasm", guest)
	input := addFile(t, req, "data.txt", []byte("survives\n"))
	waitProviders(t, req, 3)

	job, err := req.JobSubmit(ctx, spinSpec(module, input, 300))
	if err != nil {
		t.Fatal(err)
	}
	running := waitState(t, req, job.ID, "running", 30*time.Second)
	var killed string
	for _, n := range nodes[1:] {
		if n.Host().ID().String() == running.Provider {
			killed = running.Provider
			n.Close()
		}
	}
	if killed == "" {
		t.Fatalf("provider %s is not in the swarm", running.Provider)
	}
	done := waitJob(t, req, job.ID, 120*time.Second)
	if done.State != "succeeded" || done.Provider == killed || done.Attempt < 2 {
		t.Fatalf("job after its provider died: %+v", done)
	}
	if len(done.Excluded) == 0 || done.Excluded[0] != killed {
		t.Fatalf("the dead provider was not excluded: %v", done.Excluded)
	}
}

// TestRestartsMidJob: the requester restarts while a job runs and still
// gets its result; then a provider restarts mid-job and the job is
// auctioned again and completes.
func TestRestartsMidJob(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes, slow job")
	}
	reqCfg := testConfig()
	reqCfg.Market.Provider = false
	reqDir := newRepo(t, reqCfg)
	reqNode, stopReq := runNode(t, reqDir, reqCfg)
	info, err := reqNode.client.NodeInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	provCfg := testConfig()
	provCfg.Swarm.Bootstrap = info.Addresses
	provDirs := []string{newRepo(t, provCfg), newRepo(t, provCfg)}
	provs := map[string]func(){}
	for _, d := range provDirs {
		n, stop := runNode(t, d, provCfg)
		provs[n.Host().ID().String()] = stop
	}
	// Later restarts find the requester at the same address.
	reqCfg.Swarm.Listen = []string{info.Addresses[0][:strings.Index(info.Addresses[0], "/p2p/")]}

	ctx := context.Background()
	c := reqNode.client
	guest, _ := os.ReadFile(guestModule(t))
	module := addFile(t, c, "guest.wasm", guest)
	input := addFile(t, c, "data.txt", []byte("restarted\n"))
	waitProviders(t, c, 2)

	job, err := c.JobSubmit(ctx, spinSpec(module, input, 200))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, job.ID, "running", 30*time.Second)
	stopReq()
	reqNode, _ = runNode(t, reqDir, reqCfg) // stopped by the test's cleanup
	c = reqNode.client
	done := waitJob(t, c, job.ID, 120*time.Second)
	if done.State != "succeeded" {
		t.Fatalf("job after a requester restart: %+v", done)
	}
	// The requester found its provider again: no new auction, nobody
	// excluded.
	noneBlamed(t, "requester restart", done)

	job2, err := c.JobSubmit(ctx, spinSpec(module, input, 200))
	if err != nil {
		t.Fatal(err)
	}
	running := waitState(t, c, job2.ID, "running", 30*time.Second)
	stopProv := provs[running.Provider]
	stopProv()
	var restarted string
	for i, d := range provDirs {
		if id, _ := peerIDOf(d); id == running.Provider {
			n, _ := runNode(t, provDirs[i], provCfg)
			restarted = n.Host().ID().String()
		}
	}
	if restarted != running.Provider {
		t.Fatal("provider did not come back")
	}
	done2 := waitJob(t, c, job2.ID, 120*time.Second)
	if done2.State != "succeeded" || done2.Attempt < 2 {
		t.Fatalf("job after a provider restart: %+v", done2)
	}
}

func peerIDOf(dir string) (string, error) {
	r := &Repo{Dir: dir}
	k, err := r.PeerKey()
	if err != nil {
		return "", err
	}
	id, err := peer.IDFromPrivateKey(k)
	return id.String(), err
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("CYXWIZ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// TestJobFailuresAndCancel: missing inputs, a module that is not WASM and
// a job past its wall limit fail with a reason; a running job can be
// cancelled.
func TestJobFailuresAndCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	cfg := testConfig()
	cfg.Content.FetchTimeoutSeconds = 2
	cfg.Market.Provider = false
	req := startNode(t, cfg, 0)
	info, _ := req.client.NodeInfo(context.Background())
	pcfg := testConfig()
	pcfg.Swarm.Bootstrap = info.Addresses
	startNode(t, pcfg, 0)
	startNode(t, pcfg, 0)
	c := req.client
	ctx := context.Background()
	guest, _ := os.ReadFile(guestModule(t))
	module := addFile(t, c, "guest.wasm", guest)
	input := addFile(t, c, "data.txt", []byte("x\n"))
	notWasm := addFile(t, c, "script.sh", []byte("#!/bin/sh\necho hi\n"))
	waitProviders(t, c, 2)

	missing := "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	cases := []struct {
		name, want string
		spec       json.RawMessage
	}{
		{"missing input", "input data.txt", spec(module, missing, nil)},
		{"not wasm", "WebAssembly", spec(notWasm, input, nil)},
		{"endless loop", "wall-time", spec(module, input, map[string]any{
			"wasm": map[string]any{"module": module, "args": []string{"loop"}}, "limits": map[string]int{"wall_seconds": 1}})},
		{"no output written", "output result", spec(module, input, map[string]any{
			"wasm": map[string]any{"module": module, "args": []string{"env", "X"}}})},
	}
	for _, tc := range cases {
		job, err := c.JobSubmit(ctx, tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		done := waitJob(t, c, job.ID, 60*time.Second)
		if done.State != "failed" || !strings.Contains(done.Reason, tc.want) {
			t.Errorf("%s: %s (%q), want failed mentioning %q", tc.name, done.State, done.Reason, tc.want)
		}
	}

	job, err := c.JobSubmit(ctx, spinSpec(module, input, 2000))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, job.ID, "running", 30*time.Second)
	if _, err := c.JobCancel(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if done := waitJob(t, c, job.ID, 30*time.Second); done.State != "cancelled" {
		t.Fatalf("cancelled job ended %s", done.State)
	}
	if _, err := c.JobCancel(ctx, job.ID); err == nil {
		t.Error("cancelling a finished job succeeded")
	}
}
