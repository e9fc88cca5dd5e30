package node

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
)

// swarmWith is swarm with every node's config changed by edit first.
func swarmWith(t *testing.T, n int, edit func(*Config)) []*testNode {
	t.Helper()
	cfg := testConfig()
	edit(&cfg)
	cfg.Market.Provider = false
	first := startNode(t, cfg, 0)
	info, err := first.client.NodeInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*testNode{first}
	pcfg := testConfig()
	edit(&pcfg)
	pcfg.Swarm.Bootstrap = info.Addresses
	for range n - 1 {
		nodes = append(nodes, startNode(t, pcfg, 0))
	}
	return nodes
}

// guestSpec is a job spec running the test guest with args.
func guestSpec(module string, args []string, outputs []map[string]any, resources map[string]any) json.RawMessage {
	s := map[string]any{"kind": "wasm", "wasm": map[string]any{"module": module, "args": args},
		"outputs": outputs, "limits": map[string]int{"wall_seconds": 60}}
	if resources != nil {
		s["resources"] = resources
	}
	data, _ := json.Marshal(s)
	return data
}

// guestSpecWith is guestSpec with inputs.
func guestSpecWith(module string, args []string, outputs []map[string]any, resources map[string]any, inputs []map[string]string) json.RawMessage {
	var s map[string]any
	json.Unmarshal(guestSpec(module, args, outputs, resources), &s)
	s["inputs"] = inputs
	data, _ := json.Marshal(s)
	return data
}

// readLogs reads a finished job's whole log through the API.
func readLogs(t *testing.T, c *api.Client, id string) string {
	t.Helper()
	var b strings.Builder
	var off int64
	for range 100 {
		r, err := c.JobLogs(context.Background(), api.JobLogsParams{ID: id, Offset: off})
		if err != nil {
			t.Fatalf("job logs: %v", err)
		}
		b.WriteString(r.Data)
		if r.Final || r.Next == off {
			break
		}
		off = r.Next
	}
	return b.String()
}

// noneBlamed checks that a job ran on its first provider and excluded none.
func noneBlamed(t *testing.T, name string, j api.JobInfo) {
	t.Helper()
	if j.Attempt != 1 || len(j.Excluded) > 0 {
		t.Errorf("%s: an honest provider was blamed: attempt %d, excluded %v; events %+v", name, j.Attempt, j.Excluded, j.Events)
	}
}

// TestHostileJobs: jobs that flood their output, write more than they may,
// try to leave the sandbox or outgrow their memory each end with a clear
// reason on the first provider, which is not blamed and goes on serving.
func TestHostileJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	nodes := swarmWith(t, 3, func(c *Config) { c.Market.MaxLogMiB = 1 })
	req := nodes[0].client
	ctx := context.Background()
	guest, _ := os.ReadFile(guestModule(t))
	module := addFile(t, req, "guest.wasm", guest)
	waitProviders(t, req, 2)

	bigInput := addFile(t, req, "big", make([]byte, 6<<20))
	out := func(name, path string, maxBytes int64) map[string]any {
		return map[string]any{"name": name, "path": path, "max_bytes": maxBytes}
	}
	cases := []struct {
		name      string
		spec      json.RawMessage
		state     string
		reason    string // a part of the job's reason
		checkLogs bool
	}{
		{"stdout flood", guestSpec(module, []string{"flood", "stdout", "8", "1024"}, nil, nil), "succeeded", "", true},
		{"stderr flood", guestSpec(module, []string{"flood", "stderr", "4", "64"}, nil, nil), "succeeded", "", true},
		{"output over max_bytes", guestSpec(module, []string{"fill", "/out/big", "2"}, []map[string]any{out("big", "/out/big", 1<<20)}, nil),
			"failed", "more than its max_bytes", false},
		{"disk bomb", guestSpec(module, []string{"fill", "/out/big", "100"}, nil, map[string]any{"disk_mib": 16}), "failed", "disk: wrote more than", false},
		{"sparse bomb", guestSpec(module, []string{"sparse", "/out/s", "1099511627776"}, nil, nil), "failed", "disk:", false},
		{"symlink out of /out", guestSpec(module, []string{"try", "symlink:../../../..:/out/up", "write:/out/up/pwned"},
			[]map[string]any{out("up", "/out/up", 1<<20)}, nil), "failed", "output up (/out/up)", false},
		{"memory bomb", guestSpec(module, []string{"alloc", "512"}, nil, map[string]any{"memory_mib": 64}), "failed", "memory", false},
		{"inputs over disk_mib", guestSpecWith(module, []string{"read", "/in/big"}, nil, map[string]any{"disk_mib": 4},
			[]map[string]string{{"name": "big", "cid": bigInput}}), "failed", "bad-input: input big", false},
		{"many tiny files in a small output", guestSpec(module, []string{"files", "/out/many", "3000"},
			[]map[string]any{out("many", "/out/many", 1000)}, nil), "failed", "as blocks (its files and folders)", false},
		{"many files", guestSpec(module, []string{"files", "/out", "3000"}, nil, nil), "succeeded", "", false},
		{"deep tree", guestSpec(module, []string{"deep", "/out", "200"}, []map[string]any{out("deep", "/out/d", 1<<20)}, nil), "succeeded", "", false},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		j, err := req.JobSubmit(ctx, c.spec)
		if err != nil {
			t.Fatalf("%s: submit: %v", c.name, err)
		}
		ids[i] = j.ID
	}
	for i, c := range cases {
		j := waitJob(t, req, ids[i], 3*time.Minute)
		if j.State != c.state || !strings.Contains(j.Reason, c.reason) {
			t.Errorf("%s: %s (%s), want %s with %q", c.name, j.State, j.Reason, c.state, c.reason)
		}
		noneBlamed(t, c.name, j)
		if c.checkLogs {
			// The live copy is best effort, and bounded; the log the job's
			// result names is whole, and cut at the limit with a note.
			if live, err := os.ReadFile(nodes[0].jobs.LogPath(j.ID)); err != nil || int64(len(live)) > 1<<20+200 {
				t.Errorf("%s: the requester's live log is %d bytes (%v), want at most 1 MiB", c.name, len(live), err)
			}
			log := readLogs(t, req, j.ID)
			if len(log) > 1<<20+200 || !strings.Contains(log, "passed the log limit of 1.0 MiB") {
				t.Errorf("%s: the job's log is %d bytes, want at most 1 MiB and a note", c.name, len(log))
			}
			if j.Result == nil || j.Result.LogTail == "" {
				t.Errorf("%s: no log tail in the result", c.name)
			}
		}
	}
	for _, n := range nodes {
		for _, p := range []string{n.repo.Dir} {
			filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
				if err == nil && d.Name() == "pwned" {
					t.Errorf("a guest wrote %s", path)
				}
				return nil
			})
		}
	}
	// Train jobs that need more memory than they ask for are refused at
	// submit, with the estimate: by their model alone, or with a dataset
	// the requester holds.
	bomb := json.RawMessage(`{"kind":"train","resources":{"memory_mib":16},"train":{"model":{"input":[64,64,1],"layers":[
		{"type":"conv2d","filters":4096,"kernel":3,"padding":1},{"type":"flatten"},{"type":"dense","units":10},{"type":"softmax"}]},
		"loss":"cross_entropy","optimizer":{"type":"sgd","learning_rate":0.1},"epochs":1,"batch_size":200,
		"dataset":{"cid":"` + bigInput + `","format":"idx"}}}`)
	if _, err := req.JobSubmit(ctx, bomb); err == nil || !strings.Contains(err.Error(), "an estimated 28.2 GiB") {
		t.Errorf("a train job needing 28 GiB in 16 MiB: submit = %v, want the estimate", err)
	}
	wide := addFile(t, req, "xor.csv", xorCSV(400000))
	var big map[string]any
	json.Unmarshal(trainSpec(wide, `[{"type":"dense","units":2},{"type":"softmax"}]`, 0.01), &big)
	big["resources"] = map[string]any{"memory_mib": 16}
	bigSpec, _ := json.Marshal(big)
	if _, err := req.JobSubmit(ctx, bigSpec); err == nil || !strings.Contains(err.Error(), "dataset") || !strings.Contains(err.Error(), "memory_mib 16 MiB") {
		t.Errorf("a train job whose dataset passes its memory: submit = %v, want the estimate with the dataset", err)
	}

	// The providers still run honest jobs.
	input := addFile(t, req, "data.txt", []byte("still here\n"))
	j, err := req.JobSubmit(ctx, spec(module, input, nil))
	if err != nil {
		t.Fatal(err)
	}
	if done := waitJob(t, req, j.ID, time.Minute); done.State != "succeeded" {
		t.Fatalf("an honest job after the hostile ones: %+v", done)
	}
}
