package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ,
// 100 on every Linux build in use).
const clockTick = 10 * time.Millisecond

// procCPU returns the user and system CPU time that process pid has used,
// from /proc/PID/stat (Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis.
	i := strings.LastIndexByte(string(b), ')')
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("cpu time of %d: short stat line", pid)
	}
	// Fields 14 and 15 of the line (utime, stime) are 12 and 13 here.
	var total time.Duration
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
		}
		total += time.Duration(n) * clockTick
	}
	return total, nil
}

// selfCPU returns the user and system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procsCPU sums the CPU time of several processes.
func procsCPU(pids ...int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		t, err := procCPU(pid)
		if err != nil {
			return 0, err
		}
		total += t
	}
	return total, nil
}

// cost is a transfer's wall time and the CPU time its two sides used.
type cost struct {
	wall, cpu time.Duration
}

// cpuLine describes the CPU a transfer of mib MiB used, and the rate that
// this CPU cost allows when the machine's cores do nothing else.
func (c cost) cpuLine(mib float64) string {
	if c.cpu <= 0 {
		return ""
	}
	perMiB := c.cpu.Seconds() / mib
	return fmt.Sprintf("CPU %5.2f ms/MiB, ceiling on %d cores %5.0f MiB/s", 1000*perMiB, runtime.NumCPU(), float64(runtime.NumCPU())/perMiB)
}
