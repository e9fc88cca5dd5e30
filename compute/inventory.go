package compute

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Inventory is what a machine has to offer.
type Inventory struct {
	CPUCores  int
	MemoryMiB int64
	// DiskFreeMiB is the free space of the file system holding the repo.
	DiskFreeMiB int64
}

// TakeInventory reads the machine's CPUs, memory and the free disk space
// under dir.
func TakeInventory(dir string) (Inventory, error) {
	inv := Inventory{CPUCores: runtime.NumCPU()}
	mem, err := memTotalMiB()
	if err != nil {
		return inv, fmt.Errorf("inventory: memory: %w", err)
	}
	inv.MemoryMiB = mem
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return inv, fmt.Errorf("inventory: disk: %w", err)
	}
	inv.DiskFreeMiB = int64(st.Bavail) * int64(st.Bsize) >> 20
	return inv, nil
}

func memTotalMiB() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb >> 10, nil
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}

// BenchScore measures one core's speed as SHA-256 throughput in MB/s over
// about d. It is a measurement, not a claim: requesters can compare
// providers by it, and a provider cannot inflate it without signing a lie.
func BenchScore(d time.Duration) float64 {
	buf := make([]byte, 1<<20)
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		sha256.Sum256(buf)
		n++
	}
	return float64(n) * float64(len(buf)) / 1e6 / time.Since(start).Seconds()
}
