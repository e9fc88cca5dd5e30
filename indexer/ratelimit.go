package indexer

import (
	"sync"
	"time"
)

// maxClients bounds the clients the rate limiter remembers; past it, the
// buckets idle longest are forgotten (a forgotten client starts full,
// which costs at most one burst).
const maxClients = 1 << 14

// rateLimiter is a token bucket per client.
type rateLimiter struct {
	rate  float64 // tokens a second
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// allow takes a token of client's bucket; when there is none it returns
// false and how long until there is.
func (l *rateLimiter) allow(client string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[client]
	if !ok {
		if len(l.buckets) >= maxClients {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[client] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
	}
	b.tokens--
	return 0, true
}

// evict forgets the buckets that have refilled (their clients have been
// idle long enough to be full again), or, if none has, half of them.
func (l *rateLimiter) evict(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxClients/2 {
			break
		}
		delete(l.buckets, k)
	}
}
