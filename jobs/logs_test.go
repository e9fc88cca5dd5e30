package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/p2p/wire"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/network"
	bolt "go.etcd.io/bbolt"
)

// testEngine is an engine on host h that is not started: tests call its
// handlers and helpers directly.
func testEngine(t *testing.T, h *p2p.Host, maxLog int64) *Engine {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "jobs.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := DefaultConfig()
	cfg.MaxLogBytes = maxLog
	e, err := New(Params{Host: h, Key: h.Peerstore().PrivKey(h.ID()), DB: db, WorkDir: t.TempDir(), Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.c.cancel(); e.c.wg.Wait() })
	return e
}

// sendLines opens a log stream from h to the requester and writes lines
// of size bytes until n are sent or the stream fails.
func sendLines(ctx context.Context, h *p2p.Host, req *p2p.Host, job string, n, size int) {
	s, err := h.NewStream(ctx, req.ID(), wire.LogProtocol)
	if err != nil {
		return
	}
	defer s.Close()
	w := bufio.NewWriter(s)
	for range n {
		data, _ := json.Marshal(LogLine{JobID: job, Attempt: 1, Stream: "stdout", Data: strings.Repeat("x", size)})
		if wire.WriteFrame(w, data) != nil {
			return
		}
	}
}

// TestRequesterLogLimit: a provider that opens many log streams at once,
// or sends frames after the job is over, cannot make the requester keep
// more than its log limit.
func TestRequesterLogLimit(t *testing.T) {
	ctx := context.Background()
	req := p2ptest.NewHost(t, p2ptest.Config(), nil)
	prov := p2ptest.NewHost(t, p2ptest.Config(), nil)
	if err := prov.Connect(ctx, p2ptest.AddrInfo(req)); err != nil {
		t.Fatal(err)
	}
	const limit = 256 << 10
	e := testEngine(t, req, limit)
	req.SetStreamHandler(wire.LogProtocol, e.c.handler(e.logs.handleLogs))
	j := &Job{ID: newJobID(), Role: RoleRequester, State: market.StateRunning, Attempt: 1, Provider: prov.ID().String(), Requester: req.ID().String()}
	if err := e.c.store.put(j); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendLines(ctx, prov, req, j.ID, limit/maxLogChunk, maxLogChunk)
		}()
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond) // the handlers write what they read
	fi, err := os.Stat(e.LogPath(j.ID))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > limit+int64(len(truncatedNote(limit))) {
		t.Errorf("32 streams left a log of %d bytes, the limit is %d", fi.Size(), limit)
	}

	if _, err := e.c.update(j.ID, func(j *Job) error { return j.move(market.StateFailed, "over") }); err != nil {
		t.Fatal(err)
	}
	before := fi.Size()
	os.Truncate(e.LogPath(j.ID), 0)
	sendLines(ctx, prov, req, j.ID, 10, 100)
	time.Sleep(100 * time.Millisecond)
	if fi, _ := os.Stat(e.LogPath(j.ID)); fi.Size() != 0 {
		t.Errorf("frames for a job that is over were kept: %d bytes (%d before)", fi.Size(), before)
	}
}

// TestProviderLogSink: a large write goes out in frames the requester
// accepts; a requester that never answers does not hold the job's result
// for more than the drain.
func TestProviderLogSink(t *testing.T) {
	ctx := context.Background()
	req := p2ptest.NewHost(t, p2ptest.Config(), nil)
	prov := p2ptest.NewHost(t, p2ptest.Config(), nil)
	if err := prov.Connect(ctx, p2ptest.AddrInfo(req)); err != nil {
		t.Fatal(err)
	}
	e := testEngine(t, prov, 16<<20)
	var addrs []string
	for _, a := range req.Addrs() {
		addrs = append(addrs, a.String())
	}
	j := &Job{ID: newJobID(), Attempt: 1, Requester: req.ID().String(), RequesterAddrs: addrs}

	frames := make(chan int, 1024)
	req.SetStreamHandler(wire.LogProtocol, func(s network.Stream) {
		defer s.Close()
		r := bufio.NewReader(s)
		for {
			data, err := wire.ReadFrame(r, maxLogFrame)
			if err != nil {
				frames <- -1
				return
			}
			frames <- len(data)
		}
	})
	l := newLogSink(e.c, j, filepath.Join(t.TempDir(), "job.log"))
	w := l.stream("stdout")
	w.Write([]byte(strings.Repeat("\xff", 200<<10))) // invalid UTF-8: six bytes of JSON each
	l.close()
	got := 0
	for n := range frames {
		if n < 0 {
			break
		}
		got += n
	}
	if got == 0 {
		t.Error("no frame reached the requester")
	}

	// A requester that takes the stream and never reads nor answers.
	hold := make(chan struct{})
	defer close(hold)
	req.Network().SetStreamHandler(func(network.Stream) { <-hold })
	l = newLogSink(e.c, j, filepath.Join(t.TempDir(), "job2.log"))
	w = l.stream("stdout")
	for range 64 {
		w.Write([]byte(strings.Repeat("y", maxLogChunk)))
	}
	start := time.Now()
	l.close()
	if took := time.Since(start); took > logDrain+2*time.Second {
		t.Errorf("closing the log took %s with a requester that never answers, want about %s", took, logDrain)
	}
}
