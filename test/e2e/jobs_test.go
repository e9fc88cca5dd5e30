package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJobThroughCLI submits the wordcount example with local paths from
// one daemon, follows it to the end and fetches its result, all through the
// command line; another daemon runs it.
func TestJobThroughCLI(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	module := filepath.Join(dir, "wordcount.wasm")
	build := exec.Command("go", "build", "-o", module, "github.com/cyxwiz/cyxwiz/examples/wordcount")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build wordcount: %v\n%s", err, out)
	}
	text := filepath.Join(dir, "text.txt")
	os.WriteFile(text, []byte("one two two three three three\n"), 0o644)
	spec := filepath.Join(dir, "spec.json")
	os.WriteFile(spec, []byte(`{"kind":"wasm","wasm":{"module":"wordcount.wasm"},
		"inputs":[{"name":"text.txt","cid":"text.txt"}],
		"outputs":[{"name":"counts.txt","path":"/out/counts.txt"}],
		"limits":{"wall_seconds":30}}`), 0o644)

	reqRepo, provRepo := filepath.Join(dir, "req"), filepath.Join(dir, "prov")
	cli(t, "--repo", reqRepo, "init", "--profile", "local")
	cli(t, "--repo", provRepo, "init", "--profile", "local")
	startDaemon(t, reqRepo, "--market.provider=false")
	startDaemon(t, provRepo)
	var info struct {
		Addresses []string `json:"addresses"`
	}
	json.Unmarshal([]byte(cli(t, "--repo", reqRepo, "id", "--json")), &info)
	cli(t, "--repo", provRepo, "swarm", "connect", info.Addresses[0])
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(cli(t, "--repo", reqRepo, "providers", "--json"), `"id"`) {
		if time.Now().After(deadline) {
			t.Fatal("the provider never appeared")
		}
		time.Sleep(200 * time.Millisecond)
	}

	out := cli(t, "--repo", reqRepo, "job", "submit", spec, "--wait")
	if !strings.Contains(out, "counted 6 words") || !strings.Contains(out, "succeeded") {
		t.Fatalf("job submit --wait printed:\n%s", out)
	}
	var jobs []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(cli(t, "--repo", reqRepo, "job", "list", "--json")), &jobs); err != nil || len(jobs) != 1 {
		t.Fatalf("job list: %v %+v", err, jobs)
	}
	results := filepath.Join(dir, "results")
	cli(t, "--repo", reqRepo, "job", "result", jobs[0].ID, "-o", results)
	counts, err := os.ReadFile(filepath.Join(results, "counts.txt"))
	if err != nil || !strings.Contains(string(counts), "words 6") || !strings.Contains(string(counts), "3 three") {
		t.Fatalf("counts.txt = %q, %v", counts, err)
	}
	if logs := cli(t, "--repo", reqRepo, "job", "logs", jobs[0].ID); !strings.Contains(logs, "reading /in/text.txt") {
		t.Fatalf("job logs = %q", logs)
	}

	// A spec with an unknown field is refused before anything runs.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"kind":"wasm","wasm":{"module":"wordcount.wasm"},"limits":{"cpu_seconds":3}}`), 0o644)
	if _, errOut, err := run("--repo", reqRepo, "job", "submit", bad); err == nil || !strings.Contains(errOut, "limits.cpu_seconds") {
		t.Fatalf("bad spec: err %v, stderr %q", err, errOut)
	}
}
