package indexer

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

// TestClientIPGroupsIPv6: one host that cycles the addresses of its IPv6
// /64 is one client to the rate limit; IPv4 (mapped or not) is by address.
func TestClientIPGroupsIPv6(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"[2001:db8:1:2:3:4:5:6]:4000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:4000", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{"192.0.2.7:80", "192.0.2.7"},
		{"not an address", "not an address"},
	} {
		if got := clientIP(&http.Request{RemoteAddr: tc.remote}); got != tc.want {
			t.Errorf("clientIP(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}

// TestWriterBoundedWhileFailing attacks the writer's memory: while a
// failed write waits for its retry, events past a queue's worth are
// dropped and counted, not gathered without bound.
func TestWriterBoundedWhileFailing(t *testing.T) {
	st := newHookStore(t)
	st.setFail("announcements", true)
	s := startWriter(t, Params{Store: st, FlushEvery: 5 * time.Millisecond, BatchSize: 8, QueueSize: 16})
	key, id := newKey(t)
	ev := announcementEvent(t, key, id, jobID(1))
	c := s.Stats()
	s.enqueue(ev)
	eventually(t, 5*time.Second, "a failed write", func() bool { return c.Failures.Load() >= 1 })
	// Slowly enough for the writer to drain the queue as it goes, and
	// within the first retry's wait of a second.
	for range 100 {
		for range 20 {
			s.enqueue(ev)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if c.Dropped.Load() < 2000-2*16 {
		t.Errorf("dropped %d of 2000 events while the store failed, want all but about two queues' worth", c.Dropped.Load())
	}
}

// TestModelFloodBounded attacks the registry: one key signing a flood of
// distinct, valid model records gets modelBurst of them written, the rest
// dropped and counted; records seen already cost nothing, and another
// publisher still gets its record in.
func TestModelFloodBounded(t *testing.T) {
	s := New(Params{Store: openStore(t), Logger: quiet()})
	defer s.Close()
	now := time.Now()
	taken := 0
	for i := range modelBurst + 50 {
		m := indexdb.Model{ID: fmt.Sprintf("flood-%d", i), Publisher: "flooder"}
		if s.newModel(m, now) {
			taken++
		}
	}
	if taken != modelBurst || s.Stats().Dropped.Load() != 50 {
		t.Errorf("took %d of a flood, dropped %d; want %d taken, 50 dropped", taken, s.Stats().Dropped.Load(), modelBurst)
	}
	if s.newModel(indexdb.Model{ID: "flood-0", Publisher: "flooder"}, now) {
		t.Error("a record taken already was taken again")
	}
	if !s.newModel(indexdb.Model{ID: "honest", Publisher: "someone else"}, now) {
		t.Error("another publisher's record was refused")
	}
}
