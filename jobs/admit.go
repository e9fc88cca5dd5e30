package jobs

import (
	"context"
	"sync"
)

// admission decides when a provider's queued jobs run: in the order they
// came, each once the memory of the jobs running, with its own, fits what
// the provider offers, and fewer than a maximum run. A job that needs the
// whole offer runs alone; one that needs more than the offer (the offer
// shrank after the bid) runs only when nothing else does.
type admission struct {
	max   int
	offer func() int64 // MiB of memory offered now

	mu      sync.Mutex
	running int
	memory  int64 // MiB of the jobs running
	queue   []*admitWaiter
}

type admitWaiter struct {
	mib   int64
	ready chan struct{}
}

func newAdmission(maxRunning int, offer func() int64) *admission {
	return &admission{max: max(1, maxRunning), offer: offer}
}

// acquire waits until a job of mib MiB may run, or ctx ends.
func (a *admission) acquire(ctx context.Context, mib int64) error {
	w := &admitWaiter{mib: mib, ready: make(chan struct{})}
	a.mu.Lock()
	a.queue = append(a.queue, w)
	a.dispatch()
	a.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-w.ready: // admitted as ctx ended: hand its room on
		a.running--
		a.memory -= mib
	default:
		for i, q := range a.queue {
			if q == w {
				a.queue = append(a.queue[:i], a.queue[i+1:]...)
				break
			}
		}
	}
	a.dispatch()
	return ctx.Err()
}

// release gives back the room of a job of mib MiB that ran.
func (a *admission) release(mib int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.running--
	a.memory -= mib
	a.dispatch()
}

// dispatch admits waiting jobs from the head of the queue while they fit.
// The caller holds a.mu.
func (a *admission) dispatch() {
	for len(a.queue) > 0 {
		w := a.queue[0]
		if a.running >= a.max || a.running > 0 && a.memory+w.mib > a.offer() {
			return
		}
		a.running++
		a.memory += w.mib
		close(w.ready)
		a.queue = a.queue[1:]
	}
}
