package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cyxwiz/cyxwiz/compute/wasm"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/devnet"
)

// jobsBench runs WASM jobs on an in-process devnet and reports submit to
// execution start, throughput and memory during a burst.
// benchDevnet starts a devnet of nodes under dir/name and waits (10 s at
// most) until its node0 sees every provider; it returns node0's client.
func benchDevnet(dir, name string, nodes int) (*devnet.Devnet, *api.Client, error) {
	ctx := context.Background()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	d, err := devnet.Start(startCtx, devnet.Params{Dir: filepath.Join(dir, name), Nodes: nodes, Logger: slog.New(slog.DiscardHandler)})
	cancel()
	if err != nil {
		return nil, nil, err
	}
	c, err := api.FromRepo(filepath.Join(dir, name, "node0"))
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	for range 200 {
		if ps, _ := c.MarketProviders(ctx, api.ProvidersParams{}); len(ps) >= nodes {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d, c, nil
}

func jobsBench(dir string, nodes, burst int) error {
	ctx := context.Background()
	d, c, err := benchDevnet(dir, "devnet", nodes)
	if err != nil {
		return err
	}
	defer d.Close()

	tinyPath := filepath.Join(dir, "tiny.wasm")
	if err := os.WriteFile(tinyPath, wasm.TinyModule(), 0o644); err != nil {
		return err
	}
	goPath := filepath.Join(dir, "wordcount.wasm")
	build := exec.Command("go", "build", "-o", goPath, "./examples/wordcount")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build wordcount: %v: %s", err, out)
	}
	textPath := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(textPath, []byte("the quick brown fox jumps over the lazy dog\n"), 0o644); err != nil {
		return err
	}
	add := func(p string) (string, error) {
		r, err := c.ContentAdd(ctx, api.ContentAddParams{Path: p})
		return r.CID, err
	}
	tiny, err := add(tinyPath)
	if err != nil {
		return err
	}
	goMod, err := add(goPath)
	if err != nil {
		return err
	}
	text, err := add(textPath)
	if err != nil {
		return err
	}
	tinySpec, _ := json.Marshal(map[string]any{"kind": "wasm", "wasm": map[string]any{"module": tiny}, "limits": map[string]int{"wall_seconds": 30}})
	goSpec, _ := json.Marshal(map[string]any{"kind": "wasm", "wasm": map[string]any{"module": goMod},
		"inputs":  []map[string]string{{"name": "text.txt", "cid": text}},
		"outputs": []map[string]any{{"name": "counts", "path": "/out/counts.txt"}}, "limits": map[string]int{"wall_seconds": 30}})

	// Warm every provider's compiled-module cache, as a running market would
	// be: jobs go to providers by their bids, so enough of them that no
	// provider is likely to be missed (each is, with 6 per provider, about
	// once in 500 runs).
	for range 6 * nodes {
		if _, err := runJob(ctx, c, goSpec); err != nil {
			return err
		}
	}
	tinyLat, err := latencies(ctx, c, tinySpec, 100)
	if err != nil {
		return err
	}
	goLat, err := latencies(ctx, c, goSpec, 50)
	if err != nil {
		return err
	}

	// The burst: every job submitted at once, then all awaited.
	var peakRSS atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			if rss, err := rssKiB(os.Getpid()); err == nil && int64(rss) > peakRSS.Load() {
				peakRSS.Store(int64(rss))
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t0 := time.Now()
	ids := make([]string, burst)
	var wg sync.WaitGroup
	errs := make(chan error, burst)
	sem := make(chan struct{}, 64)
	for i := range burst {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			j, err := c.JobSubmit(ctx, tinySpec)
			if err != nil {
				errs <- err
				return
			}
			ids[i] = j.ID
		}()
	}
	wg.Wait()
	lost := 0
	for _, id := range ids {
		if id == "" {
			lost++
			continue
		}
		if st, err := waitDone(ctx, c, id, 10*time.Minute); err != nil || st != "succeeded" {
			lost++
		}
	}
	elapsed := time.Since(t0)
	close(stop)
	sampler.Wait()
	close(errs)

	fmt.Printf("\njob benchmark (%d-node devnet in one process, loopback; providers' module caches warm)\n", nodes)
	fmt.Printf("  %-40s %8s %8s   %s\n", "figure", "p50", "p99", "target")
	fmt.Printf("  %-40s %6.1fms %6.1fms   p50 <= 30 ms, p99 <= 100 ms\n", "submit -> start, tiny module (213 B)", ms(pct(tinyLat, 50)), ms(pct(tinyLat, 99)))
	fmt.Printf("  %-40s %6.1fms %6.1fms   p50 <= 50 ms\n", "submit -> start, Go module (3 MB)", ms(pct(goLat, 50)), ms(pct(goLat, 99)))
	fmt.Printf("  %-40s %8.0f jobs/s, %d of %d lost   target >= 150 jobs/s, none lost\n", "burst of tiny jobs", float64(burst)/elapsed.Seconds(), lost, burst)
	fmt.Printf("  %-40s %8.0f MB for %d daemons (%.0f MB each)   target <= 300 MB per daemon\n", "peak RSS during the burst", float64(peakRSS.Load())/1024, nodes, float64(peakRSS.Load())/1024/float64(nodes))
	return nil
}

// latencies runs n jobs one after another and returns, for each, the time
// from submit to the start of its code on the provider.
func latencies(ctx context.Context, c *api.Client, spec []byte, n int) ([]time.Duration, error) {
	var out []time.Duration
	for range n {
		d, err := runJob(ctx, c, spec)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	slices.Sort(out)
	return out, nil
}

func runJob(ctx context.Context, c *api.Client, spec []byte) (time.Duration, error) {
	t0 := time.Now()
	j, err := c.JobSubmit(ctx, spec)
	if err != nil {
		return 0, err
	}
	st, err := waitDone(ctx, c, j.ID, time.Minute)
	if err != nil {
		return 0, err
	}
	info, err := c.JobStatus(ctx, j.ID)
	if err != nil {
		return 0, err
	}
	if st != "succeeded" || info.Result == nil {
		return 0, fmt.Errorf("job %s %s: %s", j.ID, st, info.Reason)
	}
	return info.Result.StartedAt.Sub(t0), nil
}

func waitDone(ctx context.Context, c *api.Client, id string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		j, err := c.JobStatus(ctx, id)
		if err != nil {
			return "", err
		}
		switch j.State {
		case "succeeded", "failed", "cancelled":
			return j.State, nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return "", fmt.Errorf("job %s not done after %s", id, timeout)
}
