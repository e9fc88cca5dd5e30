package indexer

import (
	"strconv"
	"testing"
	"time"
)

// TestRateLimiterBurstAndRefill attacks the token bucket on a fake clock:
// a client gets exactly its burst at once, then is refused with the wait
// until its next token; tokens come back at the rate, never beyond the
// burst however long the client idles; clients are apart.
func TestRateLimiterBurstAndRefill(t *testing.T) {
	l := newRateLimiter(2, 3) // 2 a second, bursts of 3
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if _, ok := l.allow("a", t0); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	wait, ok := l.allow("a", t0)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: %v, %v; want refused, 500ms", wait, ok)
	}
	if _, ok := l.allow("b", t0); !ok {
		t.Fatal("another client refused")
	}
	if wait, ok := l.allow("a", t0.Add(250*time.Millisecond)); ok || wait != 250*time.Millisecond {
		t.Fatalf("half a token later: %v, %v; want refused, 250ms", wait, ok)
	}
	if _, ok := l.allow("a", t0.Add(500*time.Millisecond)); !ok {
		t.Fatal("a token later: refused")
	}
	if _, ok := l.allow("a", t0.Add(500*time.Millisecond)); ok {
		t.Fatal("the refilled token was given twice")
	}
	// An hour idle refills to the burst, not to 7200 tokens.
	later := t0.Add(time.Hour)
	granted := 0
	for range 10 {
		if _, ok := l.allow("a", later); ok {
			granted++
		}
	}
	if granted != 3 {
		t.Errorf("after an hour idle: %d requests at once, want the burst of 3", granted)
	}
}

// TestRateLimiterBoundedClients attacks the limiter's memory with a flood
// of distinct clients (as from many addresses): it never remembers more
// than maxClients.
func TestRateLimiterBoundedClients(t *testing.T) {
	l := newRateLimiter(1, 2)
	now := time.Unix(1_700_000_000, 0)
	for i := range 3 * maxClients {
		now = now.Add(time.Microsecond)
		l.allow("flood-"+strconv.Itoa(i), now)
		if i%1024 == 0 {
			l.mu.Lock()
			n := len(l.buckets)
			l.mu.Unlock()
			if n > maxClients {
				t.Fatalf("after %d clients the limiter remembers %d, more than %d", i+1, n, maxClients)
			}
		}
	}
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	if n > maxClients || n == 0 {
		t.Fatalf("after the flood the limiter remembers %d clients, want 1 to %d", n, maxClients)
	}
}

// TestRateLimiterEvictsIdleFirst attacks the eviction: when the limiter is
// full, the clients idle long enough to be full again are forgotten, and a
// client that has spent its burst is kept, still limited.
func TestRateLimiterEvictsIdleFirst(t *testing.T) {
	l := newRateLimiter(1, 2)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range maxClients - 1 {
		l.allow("idle-"+strconv.Itoa(i), t0)
	}
	t1 := t0.Add(10 * time.Second) // the idle ones are full again
	l.allow("active", t1)
	l.allow("active", t1)
	l.allow("newcomer", t1) // the limiter is full: evict
	l.mu.Lock()
	_, kept := l.buckets["active"]
	n := len(l.buckets)
	l.mu.Unlock()
	if !kept || n != 2 {
		t.Errorf("after eviction: active kept %v, %d clients remembered; want active and the newcomer", kept, n)
	}
	if _, ok := l.allow("active", t1); ok {
		t.Error("the active client got a fresh burst from the eviction")
	}
}
