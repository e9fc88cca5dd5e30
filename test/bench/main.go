// Command bench measures real cyxwiz binaries: time from process start to a
// served API, idle memory and idle CPU of one daemon, and a transfer between
// two daemons. It prints each figure beside its target and beside a
// baseline measured in the same run.
//
//	go run ./test/bench -bin bin/cyxwiz
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/compute/train"

	"github.com/cyxwiz/cyxwiz/node/api"
)

func main() {
	train.ServeWorkerIfAsked() // the devnet's providers train in copies of this program
	bin := flag.String("bin", "bin/cyxwiz", "cyxwiz binary to measure")
	kubo := flag.String("kubo", "bin/ipfs", "Kubo binary for the reference transfer (skipped when absent)")
	dir := flag.String("dir", ".bench", "folder for the repos and payloads (kept off /tmp, which may be slower)")
	starts := flag.Int("starts", 10, "daemon starts to time")
	idle := flag.Duration("idle", 30*time.Second, "idle period for the CPU figure")
	sizeMiB := flag.Int64("transfer-mib", 256, "payload of the transfer benchmark; 0 skips it")
	jobNodes := flag.Int("job-nodes", 10, "nodes of the job benchmark's devnet; 0 skips it")
	burst := flag.Int("burst", 1000, "jobs in the burst")
	announceHosts := flag.Int("announce-hosts", 30, "hosts of the announcement benchmark; 0 skips it")
	verifyJobs := flag.Int("verify-jobs", 200, "jobs of the verification benchmark, run once and replicated 3 times each; 0 skips it")
	verifyNodes := flag.Int("verify-nodes", 6, "nodes of the verification benchmark's devnet")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	trainEpochs := flag.Int("train-epochs", 3, "MNIST epochs per backend of the training benchmark; 0 skips it")
	gemmOnly := flag.Int("gemm-only", 0, "print the GFLOPS of one GEMM size and exit (used for OpenBLAS core types)")
	flag.Parse()
	if *gemmOnly > 0 {
		fmt.Printf("%.1f\n", gemmGFLOPS(train.NewCPU(), *gemmOnly))
		return
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	work, err := os.MkdirTemp(*dir, "run")
	if err == nil {
		work, err = filepath.Abs(work)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(work)
	err = run(*bin, work, *starts, *idle)
	if err == nil && *sizeMiB > 0 {
		err = transferBench(*bin, *kubo, work, *sizeMiB<<20)
	}
	if err == nil && *jobNodes > 0 {
		err = jobsBench(work, *jobNodes, *burst)
	}
	if err == nil && *verifyJobs > 0 {
		err = verifyBench(work, *verifyNodes, *verifyJobs, 3)
	}
	if err == nil && *announceHosts > 0 {
		// The target's rate (one every 2 ms), then one every 10 ms: 30 hosts
		// checking every signature share this machine's cores.
		err = announceBench(*announceHosts, 1000, 2*time.Millisecond)
		if err == nil {
			err = announceBench(*announceHosts, 500, 10*time.Millisecond)
		}
	}
	if err == nil && *trainEpochs > 0 {
		err = trainBench(*trainEpochs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.RemoveAll(work)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(bin, dir string, starts int, idle time.Duration) error {
	repo := filepath.Join(dir, "repo")
	if out, err := exec.Command(bin, "--repo", repo, "init", "--profile", "local").CombinedOutput(); err != nil {
		return fmt.Errorf("init: %v: %s", err, out)
	}

	// Baseline: the same binary starting and exiting without a daemon.
	var base []time.Duration
	for range starts {
		t0 := time.Now()
		if err := exec.Command(bin, "version").Run(); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		base = append(base, time.Since(t0))
	}

	var ready []time.Duration
	for range starts {
		d, err := startDaemon(bin, repo)
		if err != nil {
			return err
		}
		ready = append(ready, d.ready)
		if err := d.stop(); err != nil {
			return err
		}
	}

	d, err := startDaemon(bin, repo)
	if err != nil {
		return err
	}
	defer d.stop()
	time.Sleep(5 * time.Second) // let start-up work settle
	rss, err := rssKiB(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	cpu0, err := cpuTicks(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	time.Sleep(idle)
	cpu1, err := cpuTicks(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	rssAfter, err := rssKiB(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	const clockTicks = 100 // USER_HZ on Linux
	cpuPct := float64(cpu1-cpu0) / clockTicks / idle.Seconds() * 100

	fmt.Printf("daemon benchmark (%d starts, %s idle, GOMAXPROCS default, loopback)\n", starts, idle)
	fmt.Printf("  %-34s %10s %10s   %s\n", "figure", "measured", "target", "baseline in this run")
	fmt.Printf("  %-34s %8.1fms %8.0fms   `cyxwiz version` p50 %.1fms (ratio %.1fx)\n", "start to ready, p50", ms(pct(ready, 50)), 300.0, ms(pct(base, 50)), float64(pct(ready, 50))/float64(pct(base, 50)))
	fmt.Printf("  %-34s %8.1fms %8.0fms\n", "start to ready, max", ms(slices.Max(ready)), 300.0)
	fmt.Printf("  %-34s %8.1fMB %8.0fMB   after %s idle: %.1fMB\n", "idle RSS (5 s after ready)", float64(rss)/1024, 60.0, idle, float64(rssAfter)/1024)
	fmt.Printf("  %-34s %9.2f%% %9.0f%%\n", "idle CPU", cpuPct, 1.0)
	return nil
}

type daemon struct {
	cmd   *exec.Cmd
	done  chan error
	ready time.Duration
}

// startDaemon starts the daemon and returns once its API answers node.info.
func startDaemon(bin, repo string) (*daemon, error) {
	t0 := time.Now()
	cmd := exec.Command(bin, "--repo", repo, "daemon", "--log.level=warn")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	deadline := t0.Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := api.FromRepo(repo); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = c.NodeInfo(ctx)
			cancel()
			if err == nil {
				d.ready = time.Since(t0)
				return d, nil
			}
		}
		select {
		case err := <-d.done:
			return nil, fmt.Errorf("daemon exited: %v", err)
		case <-time.After(500 * time.Microsecond):
		}
	}
	cmd.Process.Kill()
	return nil, errors.New("daemon not ready within 10s")
}

func (d *daemon) stop() error {
	if d.cmd.ProcessState != nil {
		return nil
	}
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-d.done:
		return err
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		return errors.New("daemon did not stop within 30s")
	}
}

func rssKiB(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpuTicks returns user plus system time of the process in clock ticks.
func cpuTicks(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, err := strconv.Atoi(fields[11])
	if err != nil {
		return 0, err
	}
	stime, err := strconv.Atoi(fields[12])
	if err != nil {
		return 0, err
	}
	return utime + stime, nil
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
