package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/cyxwiz/cyxwiz/compute/wasm"
	"github.com/cyxwiz/cyxwiz/node/api"
)

// verifyBench measures what replication costs: n tiny jobs run once, then
// n run as replicated jobs of replicas, on one devnet in the same run. It
// reports the wall time and the CPU time of the whole swarm (every node
// runs in this process, so the requester's own share cannot be told
// apart) per job, and their ratio against replicas times the plain job's;
// and it counts mismatches among the honest replicas, which must be none.
func verifyBench(dir string, nodes, n, replicas int) error {
	ctx := context.Background()
	d, c, err := benchDevnet(dir, "verify-devnet", nodes)
	if err != nil {
		return err
	}
	defer d.Close()
	tinyPath := filepath.Join(dir, "verify-tiny.wasm")
	if err := os.WriteFile(tinyPath, wasm.TinyModule(), 0o644); err != nil {
		return err
	}
	added, err := c.ContentAdd(ctx, api.ContentAddParams{Path: tinyPath})
	if err != nil {
		return err
	}
	plain, _ := json.Marshal(map[string]any{"kind": "wasm", "wasm": map[string]any{"module": added.CID}, "limits": map[string]int{"wall_seconds": 30}})
	replicated, _ := json.Marshal(map[string]any{"kind": "wasm", "wasm": map[string]any{"module": added.CID}, "limits": map[string]int{"wall_seconds": 30},
		"verification": map[string]any{"mode": "replicate", "replicas": replicas}})

	// Warm up: every provider compiles the module once.
	for range 2 * nodes {
		if _, err := runJob(ctx, c, plain); err != nil {
			return err
		}
	}
	plainWall, plainCPU, _, err := runMany(ctx, c, plain, n)
	if err != nil {
		return err
	}
	replWall, replCPU, mismatches, err := runMany(ctx, c, replicated, n)
	if err != nil {
		return err
	}
	per := func(d time.Duration) float64 { return ms(d) / float64(n) }
	fmt.Printf("\nverification benchmark (%d-node devnet in one process; %d tiny jobs each way, 8 at a time)\n", nodes, n)
	fmt.Printf("  %-40s %8.2f ms wall, %8.2f ms CPU per job\n", "unreplicated", per(plainWall), per(plainCPU))
	fmt.Printf("  %-40s %8.2f ms wall, %8.2f ms CPU per job   wall %.2fx, CPU %.2fx the unreplicated; target <= %.1fx\n",
		fmt.Sprintf("replicated, %d replicas", replicas), per(replWall), per(replCPU),
		float64(replWall)/float64(plainWall), float64(replCPU)/float64(plainCPU), float64(replicas)*1.1)
	fmt.Printf("  %-40s %d of %d replicas judged a mismatch (honest providers: target 0)\n", "honest replicas", mismatches, n*replicas)
	return nil
}

// runMany runs n jobs of spec, 8 at a time, and returns the wall time, the
// process's CPU time, and the replicas judged a mismatch; a job that does
// not succeed is an error.
func runMany(ctx context.Context, c *api.Client, spec []byte, n int) (time.Duration, time.Duration, int, error) {
	cpu0 := processCPU()
	t0 := time.Now()
	var mu sync.Mutex
	var firstErr error
	mismatches := 0
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			j, err := c.JobSubmit(ctx, spec)
			var st string
			if err == nil {
				st, err = waitDone(ctx, c, j.ID, 5*time.Minute)
			}
			var info api.JobInfo
			if err == nil {
				info, err = c.JobStatus(ctx, j.ID)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && firstErr == nil:
				firstErr = err
			case err == nil && st != "succeeded" && firstErr == nil:
				firstErr = fmt.Errorf("job %s %s: %s", j.ID, st, info.Reason)
			}
			for _, r := range info.Replicas {
				if r.Verdict == "mismatch" {
					mismatches++
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(t0), processCPU() - cpu0, mismatches, firstErr
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
