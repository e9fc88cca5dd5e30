package jobs

import (
	"context"
	"testing"
	"time"
)

// admitted reports whether acquire returns within a short wait.
func admitted(t *testing.T, a *admission, mib int64) (bool, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.acquire(ctx, mib) }()
	select {
	case err := <-done:
		return err == nil, cancel
	case <-time.After(50 * time.Millisecond):
		return false, func() { cancel(); <-done }
	}
}

func TestAdmissionByMemory(t *testing.T) {
	a := newAdmission(10, func() int64 { return 1000 })
	for _, mib := range []int64{400, 500} {
		if ok, _ := admitted(t, a, mib); !ok {
			t.Fatalf("a %d MiB job did not start with %d MiB in use", mib, a.memory)
		}
	}
	ok, stop := admitted(t, a, 200) // 1100 > 1000: waits
	if ok {
		t.Fatal("a job started past the offer")
	}
	stop()
	if len(a.queue) != 0 {
		t.Fatalf("a cancelled waiter stayed queued: %d", len(a.queue))
	}
	a.release(500)
	if ok, _ := admitted(t, a, 200); !ok {
		t.Fatal("a job that fits did not start after a release")
	}
	if a.running != 2 || a.memory != 600 {
		t.Fatalf("running %d, memory %d; want 2, 600", a.running, a.memory)
	}
}

func TestAdmissionOrderAndCount(t *testing.T) {
	a := newAdmission(2, func() int64 { return 1000 })
	admitted(t, a, 900)
	// A big job at the head holds back a small one behind it: no job waits
	// for ever behind a stream of small ones.
	big := make(chan error, 1)
	go func() { big <- a.acquire(context.Background(), 800) }()
	time.Sleep(20 * time.Millisecond)
	if ok, stop := admitted(t, a, 50); ok {
		t.Fatal("a small job overtook the big one queued before it")
	} else {
		defer stop()
	}
	a.release(900)
	if err := <-big; err != nil {
		t.Fatal(err)
	}
	// At most two run, whatever their memory.
	b := newAdmission(2, func() int64 { return 1 << 20 })
	admitted(t, b, 1)
	admitted(t, b, 1)
	if ok, stop := admitted(t, b, 1); ok {
		t.Fatal("a third job ran with a maximum of two")
	} else {
		stop()
	}
}

func TestAdmissionOversizedRunsAlone(t *testing.T) {
	a := newAdmission(4, func() int64 { return 100 })
	if ok, _ := admitted(t, a, 500); !ok {
		t.Fatal("a job larger than the offer did not run on an idle provider")
	}
	if ok, stop := admitted(t, a, 10); ok {
		t.Fatal("a job ran beside one that takes more than the offer")
	} else {
		stop()
	}
}
