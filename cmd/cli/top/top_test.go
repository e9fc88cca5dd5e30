package top

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/internal/syncbuf"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/devnet"
)

// TestMain lets this test binary serve as the train executor's worker.
func TestMain(m *testing.M) {
	train.ServeWorkerIfAsked()
	os.Exit(m.Run())
}

// xorCSV is a small dataset a train job takes a few seconds on.
func xorCSV(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString("x,y,label\n")
	for i := range n {
		x, y := float64(i%17)/8-1, float64(i%13)/6-1
		label := 0
		if (x > 0) != (y > 0) {
			label = 1
		}
		fmt.Fprintf(&buf, "%.4f,%.4f,%d\n", x, y, label)
	}
	return buf.Bytes()
}

// TestTopOnADevnet runs the monitor in an 80×24 pseudo-terminal against a
// node of a two-node devnet that runs a train job: it shows the node, its
// peer, the job and a live loss sparkline, fits the terminal, and quits
// on q.
func TestTopOnADevnet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	d, err := devnet.Start(ctx, devnet.Params{Dir: dir, Nodes: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c, err := api.FromRepo(filepath.Join(dir, "node0"))
	if err != nil {
		t.Fatal(err)
	}
	data := xorCSV(2000)
	ds, err := c.AddReader(ctx, "xor.csv", bytes.NewReader(data), int64(len(data)), api.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if ps, err := c.MarketProviders(ctx, api.ProvidersParams{}); err == nil && len(ps) > 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	job, err := c.JobSubmit(ctx, []byte(fmt.Sprintf(`{"kind":"train","train":{
		"model":{"input":[2],"layers":[{"type":"dense","units":16},{"type":"tanh"},{"type":"dense","units":2},{"type":"softmax"}]},
		"loss":"cross_entropy","optimizer":{"type":"adam","learning_rate":0.01},
		"batch_size":8,"epochs":60,"seed":7,"log_steps":10,
		"dataset":{"cid":%q,"format":"csv","train_file":"xor.csv","header":true}},
		"limits":{"wall_seconds":120}}`, ds.CID)))
	if err != nil {
		t.Fatal(err)
	}

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80}); err != nil {
		t.Fatal(err)
	}
	var screen syncbuf.Buffer
	go func() { _, _ = io.Copy(&screen, ptmx) }()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, c, Options{Input: tty, Output: tty, Interval: 200 * time.Millisecond})
	}()

	jobID := short(job.ID, 14)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out := screen.String()
		if strings.Contains(out, jobID) && strings.Contains(out, "LOSS") && strings.ContainsAny(out, "▁▂▃▄▅▆▇█") &&
			strings.Contains(out, "peers 1") && strings.Contains(out, "train") && strings.Contains(out, "NET  in ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the monitor never showed the job %s and its loss; the screen had:\n%s", jobID, tail(out, 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := ptmx.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("top: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("top did not quit on q")
	}
}

// TestRenderFits: a reading of a busy node draws exactly 24 rows of at
// most 80 columns.
func TestRenderFits(t *testing.T) {
	m := newModel(context.Background(), nil, time.Second)
	now := time.Now()
	for i := range 30 {
		m.snap.peers = append(m.snap.peers, api.Peer{ID: fmt.Sprintf("12D3KooWPeer%040d", i), Direction: "outbound", LatencyMS: 1.5})
		m.snap.jobs = append(m.snap.jobs, api.JobInfo{ID: fmt.Sprintf("06H3X231A88JT73WXG7RJ2W%03d", i), Kind: "train", State: "running",
			Provider: "12D3KooWProviderWithAVeryLongIdentifier", Price: 123456789, CreatedAt: now,
			Escrows: []api.JobEscrow{{State: "locked", Amount: 5}}})
		m.providers = append(m.providers, api.ProviderInfo{ID: fmt.Sprintf("12D3KooWProv%040d", i), CPUCores: 64,
			GPUs: []api.GPUInfo{{}}, PricePerCPUSecond: 1 << 40})
	}
	m.snap.at = now
	m.snap.traffic = api.Traffic{TotalIn: 1 << 62, TotalOut: 1 << 50, RateIn: 1e12, RateOut: 3}
	m.snap.info = api.NodeInfo{ID: "12D3KooWSelf", Role: "peer", Version: strings.Repeat("v", 100)}
	for i := range 500 {
		m.loss[m.snap.jobs[0].ID] = append(m.loss[m.snap.jobs[0].ID], float64(500-i))
	}
	for i := range 5 {
		m.snap.infer.Served = append(m.snap.infer.Served, api.ServedModel{Job: fmt.Sprintf("06H3X231A88JT73WXG7RJ2S%03d", i),
			Service: strings.Repeat("s", 64), Calls: 1 << 40, Examples: 1 << 41, Batches: 1 << 30, MeanLatencyMS: 1e6})
		m.snap.infer.Budgets = append(m.snap.infer.Budgets, api.CallBudget{Role: "provider", State: "settled", Earned: 1 << 60})
	}
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		lines := strings.Split(render(m, size[0], size[1]), "\n")
		if len(lines) != size[1] {
			t.Errorf("%dx%d: %d rows", size[0], size[1], len(lines))
		}
		for i, l := range lines {
			if n := utf8.RuneCountInString(l); n > size[0] {
				t.Errorf("%dx%d: row %d has %d columns: %q", size[0], size[1], i, n, l)
			}
		}
	}
}

// TestServingPanel: the monitor shows the models a node serves with their
// call rates between two readings, latencies and what its budgets earned,
// are owed and spent.
func TestServingPanel(t *testing.T) {
	m := newModel(context.Background(), nil, time.Second)
	t0 := time.Now()
	served := func(calls int64) api.InferStats {
		return api.InferStats{Served: []api.ServedModel{{Job: "06H3X231A88JT73WXG7RJ2WZ1M", Service: "digits", Calls: calls,
			Examples: 2 * calls, Batches: calls / 4, MeanLatencyMS: 1.25}},
			Budgets: []api.CallBudget{
				{Role: "provider", State: "settled", Earned: 500, Calls: 50, PricePerCall: 10},
				{Role: "provider", State: "open", Calls: 7, PricePerCall: 10},
				{Role: "caller", State: "open", Calls: 3, PricePerCall: 2}}}
	}
	m.Update(snapshotMsg(snapshot{at: t0, infer: served(100)}))
	m.Update(snapshotMsg(snapshot{at: t0.Add(2 * time.Second), infer: served(140)}))
	out := render(m, 80, 24)
	for _, want := range []string{"SERVING  1 models  20.0 calls/s  earned 500  owed 70  spent 6  budgets open 2",
		"digits", "140 calls", "20.0/s", "1.25ms", "8.0/batch"} {
		if !strings.Contains(out, want) {
			t.Errorf("the screen lacks %q:\n%s", want, out)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
