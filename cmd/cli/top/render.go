package top

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
)

// sparks are the levels of a sparkline, lowest first.
var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last w values, scaled between their least and
// greatest.
func sparkline(vals []float64, w int) string {
	if len(vals) > w {
		vals = vals[len(vals)-w:]
	}
	if len(vals) == 0 {
		return ""
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		lo, hi = min(lo, v), max(hi, v)
	}
	out := make([]rune, len(vals))
	for i, v := range vals {
		level := 0
		if hi > lo {
			level = int((v - lo) / (hi - lo) * float64(len(sparks)-1))
		}
		out[i] = sparks[level]
	}
	return string(out)
}

// render draws the monitor in w columns and h rows.
func render(m *model, w, h int) string {
	w = max(w, 40)
	now := time.Now()
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fit(fmt.Sprintf(format, args...), w)) }

	s := m.snap
	if s.at.IsZero() {
		add("cyxwiz top: reading the node...")
	} else if s.err != nil {
		add("cyxwiz top: %v", s.err)
	}
	info := s.info
	self := 0
	for _, p := range m.providers {
		if p.Self {
			self++
		}
	}
	add("cyxwiz top  %s  %s  %s  peers %d  providers %d  %s", short(info.ID, 12), info.Role, info.Version,
		len(s.peers), len(m.providers)-self, now.Format("15:04:05"))
	tr := s.traffic
	add("NET  in %s/s  out %s/s   since start: in %s, out %s", bytesOf(int64(tr.RateIn)), bytesOf(int64(tr.RateOut)),
		bytesOf(tr.TotalIn), bytesOf(tr.TotalOut))
	add("%s", strings.Repeat("─", w))

	// Peers and providers, side by side.
	half := w / 2
	add("%s%s", fit("PEERS", half), "PROVIDERS")
	const rows = 5
	for i := range rows {
		left, right := "", ""
		if i < len(s.peers) {
			p := s.peers[i]
			left = fmt.Sprintf("%s %-8s %5.1fms", short(p.ID, 12), p.Direction, p.LatencyMS)
		} else if i == 0 {
			left = "(none)"
		}
		if i < len(m.providers) {
			p := m.providers[i]
			gpus := ""
			if len(p.GPUs) > 0 {
				gpus = fmt.Sprintf(" %dgpu", len(p.GPUs))
			}
			mark := ""
			if p.Self {
				mark = " (this node)"
			}
			right = fmt.Sprintf("%s %dcpu%s %d/cpu-s%s", short(p.ID, 12), p.CPUCores, gpus, p.PricePerCPUSecond, mark)
		} else if i == 0 {
			right = "(none)"
			if m.provErr != nil {
				right = "(lookup failed)"
			}
		}
		add("%s%s", fit(left, half), right)
	}
	if n := len(s.peers) - rows; n > 0 {
		add("  … %d more peers", n)
	}

	// Jobs.
	jobs := recentJobs(s.jobs)
	running := 0
	for _, j := range jobs {
		if !final(j.State) {
			running++
		}
	}
	add("%s", strings.Repeat("─", w))
	add("JOBS  running %d  recent %d", running, len(jobs)-running)
	add("%-14s %-6s %-10s %-14s %7s %5s", "ID", "KIND", "STATE", "PROVIDER", "PRICE", "AGE")
	maxJobs := max(3, h-len(lines)-6-servingLines(m))
	for i, j := range jobs {
		if i == maxJobs {
			add("  … %d more", len(jobs)-i)
			break
		}
		add("%-14s %-6s %-10s %-14s %7d %5s", short(j.ID, 14), j.Kind, j.State, short(j.Provider, 14), j.Price, ago(j.CreatedAt, now))
	}
	if len(jobs) == 0 {
		add("(no jobs)")
	}

	// Escrows over all jobs.
	counts, amounts := map[string]int{}, map[string]uint64{}
	for _, j := range s.jobs {
		for _, e := range j.Escrows {
			counts[e.State]++
			amounts[e.State] += e.Amount
		}
	}
	add("ESCROWS  locked %d (%d)  released %d (%d)  refunded %d (%d)", counts["locked"], amounts["locked"],
		counts["released"], amounts["released"], counts["refunded"], amounts["refunded"])

	renderServing(m, add)

	// The loss of the most recent train job followed.
	if job, pts := latestLoss(jobs, m.loss); len(pts) > 0 {
		label := fmt.Sprintf("LOSS %s ", short(job, 10))
		value := fmt.Sprintf(" %.4f", pts[len(pts)-1])
		add("%s%s%s", label, sparkline(pts, w-len([]rune(label))-len(value)), value)
	}
	for len(lines) < h-1 {
		lines = append(lines, fit("", w))
	}
	if len(lines) > h-1 {
		lines = lines[:h-1]
	}
	lines = append(lines, fit("q quit", w))
	return strings.Join(lines, "\n")
}

// latestLoss picks the loss series of the first job in jobs that has one.
func latestLoss(jobs []api.JobInfo, loss map[string][]float64) (string, []float64) {
	for _, j := range jobs {
		if pts := loss[j.ID]; len(pts) > 0 {
			return j.ID, pts
		}
	}
	return "", nil
}

// bytesOf writes a byte count in binary units.
func bytesOf(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// servingLines is how many lines renderServing draws.
func servingLines(m *model) int {
	st := m.snap.infer
	if len(st.Served) == 0 && len(st.Budgets) == 0 {
		return 0
	}
	return 1 + min(len(st.Served), 3)
}

// renderServing draws the models the node serves, their call rates and
// latencies, and what its budgets of paid calls earned and spent: one
// line of totals and a line for each of up to two serve jobs.
func renderServing(m *model, add func(string, ...any)) {
	st := m.snap.infer
	if len(st.Served) == 0 && len(st.Budgets) == 0 {
		return
	}
	var earned, owed, spent uint64
	open := 0
	for _, b := range st.Budgets {
		if b.State == "open" {
			open++
		}
		switch b.Role {
		case "provider":
			if b.State == "settled" {
				earned += b.Earned
			} else {
				owed += b.Calls * b.PricePerCall
			}
		case "caller":
			spent += b.Calls * b.PricePerCall
		}
	}
	rate := 0.0
	for _, r := range m.rates {
		rate += r
	}
	add("SERVING  %d models  %.1f calls/s  earned %d  owed %d  spent %d  budgets open %d", len(st.Served), rate, earned, owed, spent, open)
	for i, s := range st.Served {
		if i == 2 {
			add("  … %d more", len(st.Served)-i)
			break
		}
		add("  %-14s %-12s %8d calls %7.1f/s %7.2fms %5.1f/batch", short(s.Job, 14), short(s.Service, 12), s.Calls, m.rates[s.Job],
			s.MeanLatencyMS, float64(s.Examples)/float64(max(1, s.Batches)))
	}
}
