package market

import (
	"fmt"
	"slices"
)

// Load is what a provider is doing now.
type Load struct {
	Running   int
	Queued    int
	CPUInUse  int
	MemInUse  int64 // MiB
	DiskInUse int64 // MiB
}

// BidRequest is what a bid strategy decides on.
type BidRequest struct {
	Announcement Announcement
	Capacity     Capacity
	Load         Load
}

// Decision is a strategy's answer: bid or not, and why not.
type Decision struct {
	Bid    bool
	Reason string
}

func yes() Decision                          { return Decision{Bid: true} }
func no(format string, args ...any) Decision { return Decision{Reason: fmt.Sprintf(format, args...)} }

// BidStrategy decides whether a provider bids for a job.
type BidStrategy interface {
	ShouldBid(BidRequest) Decision
}

// StrategyFunc adapts a function to BidStrategy.
type StrategyFunc func(BidRequest) Decision

// ShouldBid calls f.
func (f StrategyFunc) ShouldBid(r BidRequest) Decision { return f(r) }

// All bids only when every strategy agrees; the first refusal is the reason.
func All(strategies ...BidStrategy) BidStrategy {
	return StrategyFunc(func(r BidRequest) Decision {
		for _, s := range strategies {
			if d := s.ShouldBid(r); !d.Bid {
				return d
			}
		}
		return yes()
	})
}

// ExecutorSupported refuses kinds the provider cannot run.
func ExecutorSupported() BidStrategy {
	return StrategyFunc(func(r BidRequest) Decision {
		if !slices.Contains(r.Capacity.Executors, r.Announcement.Spec.Kind) {
			return no("no %s executor", r.Announcement.Spec.Kind)
		}
		return yes()
	})
}

// FreeCapacity refuses jobs that do not fit what is free now.
func FreeCapacity() BidStrategy {
	return StrategyFunc(func(r BidRequest) Decision { return fits(r.Announcement.Spec.Resources, r.Capacity, r.Load) })
}

// Fits refuses jobs that do not fit the provider's whole offer; with
// QueueRoom it lets a busy provider queue jobs instead of refusing them.
func Fits() BidStrategy {
	return StrategyFunc(func(r BidRequest) Decision { return fits(r.Announcement.Spec.Resources, r.Capacity, Load{}) })
}

// QueueRoom refuses jobs once running plus queued jobs reach running plus
// queued slots. The bid's queue depth tells requesters how long they wait.
func QueueRoom(running, queued int) BidStrategy {
	return StrategyFunc(func(r BidRequest) Decision {
		if busy := r.Load.Running + r.Load.Queued; busy >= running+queued {
			return no("%d jobs running or queued, room for %d", busy, running+queued)
		}
		return yes()
	})
}

// ServeStartsNow refuses a serve job unless one of the running slots is
// free now: a deployment holds its slot for its whole life, so one queued
// behind another would wait that long.
func ServeStartsNow(running int) BidStrategy {
	return StrategyFunc(func(r BidRequest) Decision {
		if r.Announcement.Spec.Kind == KindServe && r.Load.Running+r.Load.Queued >= running {
			return no("a serve job starts at once: all %d slots are taken", running)
		}
		return yes()
	})
}

func fits(res Resources, c Capacity, l Load) Decision {
	switch {
	case res.CPU > c.CPUCores-l.CPUInUse:
		return no("needs %d CPUs, %d free", res.CPU, c.CPUCores-l.CPUInUse)
	case int64(res.MemoryMiB) > c.MemoryMiB-l.MemInUse:
		return no("needs %d MiB of memory, %d free", res.MemoryMiB, c.MemoryMiB-l.MemInUse)
	case int64(res.DiskMiB) > c.DiskMiB-l.DiskInUse:
		return no("needs %d MiB of disk, %d free", res.DiskMiB, c.DiskMiB-l.DiskInUse)
	}
	if g := res.GPU; g != nil {
		fit := 0
		for _, gpu := range c.GPUs {
			if gpu.MemoryMiB >= g.MinMemoryMiB && capabilityAtLeast(gpu.ComputeCapability, g.MinComputeCapability) {
				fit++
			}
		}
		if fit < g.Count {
			return no("needs %d GPUs, %d fit", g.Count, fit)
		}
	}
	return yes()
}

func capabilityAtLeast(have, want string) bool {
	if want == "" {
		return true
	}
	var hm, hn, wm, wn int
	if _, err := fmt.Sscanf(have, "%d.%d", &hm, &hn); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(want, "%d.%d", &wm, &wn); err != nil {
		return false
	}
	return hm > wm || hm == wm && hn >= wn
}

// MinPrice refuses jobs whose price cap is below the provider's quote, and
// jobs paid in another mint.
func MinPrice() BidStrategy {
	return StrategyFunc(func(r BidRequest) Decision {
		s, p := r.Announcement.Spec, r.Capacity.Prices
		quote := p.Quote(s)
		if s.Price == nil {
			if quote > 0 {
				return no("job offers no price, the quote is %d", quote)
			}
			return yes()
		}
		if p.Mint != "" && s.Price.Mint != p.Mint {
			return no("job pays in mint %s, this provider takes %s", s.Price.Mint, p.Mint)
		}
		if quote > s.MaxPrice() {
			return no("quote %d is above the job's maximum %d", quote, s.MaxPrice())
		}
		return yes()
	})
}

// AllowDeny refuses requesters on the deny list and, when the allow list
// is not empty, requesters not on it.
func AllowDeny(allow, deny []string) BidStrategy {
	return StrategyFunc(func(r BidRequest) Decision {
		who := r.Announcement.Requester
		if slices.Contains(deny, who) {
			return no("requester %s is denied", who)
		}
		if len(allow) > 0 && !slices.Contains(allow, who) {
			return no("requester %s is not allowed", who)
		}
		return yes()
	})
}

// MaxConcurrent refuses jobs once running plus queued jobs reach n.
func MaxConcurrent(n int) BidStrategy {
	return StrategyFunc(func(r BidRequest) Decision {
		if busy := r.Load.Running + r.Load.Queued; busy >= n {
			return no("%d jobs running or queued, the limit is %d", busy, n)
		}
		return yes()
	})
}
