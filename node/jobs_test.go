package node

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
)

var (
	guestOnce sync.Once
	guestPath string
	guestErr  error
)

// guestModule builds the executor tests' WASI guest once per test run.
func guestModule(t *testing.T) string {
	t.Helper()
	guestOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cyxwiz-guest")
		if err != nil {
			guestErr = err
			return
		}
		guestPath = filepath.Join(dir, "guest.wasm")
		cmd := exec.Command("go", "build", "-o", guestPath, "../compute/wasm/testdata/guest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			guestErr = errors.New(string(out))
		}
	})
	if guestErr != nil {
		t.Fatalf("build guest: %v", guestErr)
	}
	return guestPath
}

// swarm starts n nodes in one process, all bootstrapped to the first; the
// first is a requester only.
func swarm(t *testing.T, n int) []*testNode {
	t.Helper()
	cfg := testConfig()
	cfg.Market.Provider = false
	first := startNode(t, cfg, 0)
	info, err := first.client.NodeInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*testNode{first}
	pcfg := testConfig()
	pcfg.Swarm.Bootstrap = info.Addresses
	for range n - 1 {
		nodes = append(nodes, startNode(t, pcfg, 0))
	}
	return nodes
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
	nodes := swarm(t, 4)
	req := nodes[0].client
	ctx := context.Background()
	guest, err := os.ReadFile(guestModule(t))
	if err != nil {
		t.Fatal(err)
	}
	module := addFile(t, req, "guest.wasm", guest)
	input := addFile(t, req, "data.txt", []byte("the quick brown fox\n"))

	waitProviders(t, req, 3)

	job, err := req.JobSubmit(ctx, spec(module, input, nil))
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, req, job.ID, 60*time.Second)
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
