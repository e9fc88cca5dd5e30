package indexdbtest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

func testForgedCursors(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	must(t, s.AddAnnouncements(ctx, []indexdb.Announcement{Announcement("j1", 1, "r", now), Announcement("j2", 1, "r", now)}))
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{Capacity("p1", 1, now, now, now, 1), Capacity("p2", 1, now, now, now, 1)}))
	must(t, s.AddModels(ctx, []indexdb.Model{Model("a", "m1", "", now), Model("a", "m2", "", now)}))
	jobs, err := s.Jobs(ctx, indexdb.JobQuery{Limit: 1})
	must(t, err)
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	bad := []string{"x", "!!!!", "%27%20OR%201=1", b64("not json"), b64(`{"k":"jobs"}`), b64(`{"k":"jobs","t":"x","i":"a"}`),
		b64(`{"k":"other","i":"a"}`), b64(`[1,2,3]`), b64(`{"k":"jobs","i":"\u0000"}`), strings.Repeat("A", indexdb.MaxCursorLen+1), jobs.Next + "!", "' OR 1=1 --"}
	for _, c := range bad {
		_, e1 := s.Jobs(ctx, indexdb.JobQuery{Cursor: c})
		_, e2 := s.Providers(ctx, indexdb.ProviderQuery{Cursor: c})
		_, e3 := s.Models(ctx, indexdb.ModelQuery{Cursor: c})
		for i, err := range []error{e1, e2, e3} {
			if !errors.Is(err, indexdb.ErrBadQuery) {
				t.Errorf("listing %d with cursor %.40q: %v, want ErrBadQuery", i, c, err)
			}
		}
	}
	// A jobs cursor is no providers cursor.
	if _, err := s.Providers(ctx, indexdb.ProviderQuery{Cursor: jobs.Next}); !errors.Is(err, indexdb.ErrBadQuery) {
		t.Errorf("providers with a jobs cursor: %v, want ErrBadQuery", err)
	}
	// A well-formed cursor with hostile keys is only a position.
	for _, key := range []string{"' OR '1'='1", "%", strings.Repeat("z", 300)} {
		for _, tm := range []int64{-1 << 62, 0, 1 << 62} {
			c := indexdb.Cursor{Kind: "jobs", Time: tm, Key: key}.Encode()
			if _, err := s.Jobs(ctx, indexdb.JobQuery{Cursor: c}); err != nil {
				t.Errorf("jobs after (%d, %q): %v", tm, key, err)
			}
			c = indexdb.Cursor{Kind: "providers", Key: key}.Encode()
			if _, err := s.Providers(ctx, indexdb.ProviderQuery{Cursor: c}); err != nil {
				t.Errorf("providers after %q: %v", key, err)
			}
		}
	}
}

// pageAll walks a listing page by page, calling between after each page,
// and returns the keys in the order seen.
func pageAll(t *testing.T, page func(cursor string) ([]string, string, error), between func(i int)) []string {
	t.Helper()
	var keys []string
	cursor := ""
	for i := 0; ; i++ {
		ks, next, err := page(cursor)
		must(t, err)
		keys = append(keys, ks...)
		if next == "" {
			return keys
		}
		if i > 1000 {
			t.Fatal("pagination does not end")
		}
		between(i)
		cursor = next
	}
}

func checkOnce(t *testing.T, what string, keys []string, want map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	for _, k := range keys {
		seen[k]++
		if seen[k] > 1 {
			t.Errorf("%s: %s seen twice", what, k)
		}
	}
	for k := range want {
		if seen[k] != 1 {
			t.Errorf("%s: %s seen %d times, want once", what, k, seen[k])
		}
	}
}

func testPagination(t *testing.T, s indexdb.Store) {
	base := time.Now().UTC().Add(-time.Hour)
	want := map[string]bool{}
	var anns []indexdb.Announcement
	var caps []indexdb.Capacity
	var models []indexdb.Model
	for i := range 103 {
		// Some share a time, so the key breaks ties.
		at := base.Add(time.Duration(i/3) * time.Second)
		id := fmt.Sprintf("j%03d", i)
		anns = append(anns, Announcement(id, 1, "r", at))
		caps = append(caps, Capacity(fmt.Sprintf("p%03d", i), 1, at, at.Add(time.Hour), at, 1))
		models = append(models, Model("pub", id, "", at))
		want[id] = true
	}
	must(t, s.AddAnnouncements(ctx, anns))
	must(t, s.AddCapacity(ctx, caps))
	must(t, s.AddModels(ctx, models))
	added := 0
	between := func(int) {
		// New rows arrive between pages: newer jobs and models, peers
		// before and after the cursor.
		added++
		now := time.Now().UTC()
		must(t, s.AddAnnouncements(ctx, []indexdb.Announcement{Announcement(fmt.Sprintf("new%03d", added), 1, "r", now)}))
		must(t, s.AddModels(ctx, []indexdb.Model{Model("pub", fmt.Sprintf("new%03d", added), "", now)}))
		must(t, s.AddCapacity(ctx, []indexdb.Capacity{Capacity(fmt.Sprintf("a%03d", added), 1, now, now, now, 1),
			Capacity(fmt.Sprintf("z%03d", added), 1, now, now, now, 1), Capacity("p050", uint64(added+1), now, now, now, 1)}))
	}
	keys := pageAll(t, func(c string) ([]string, string, error) {
		p, err := s.Jobs(ctx, indexdb.JobQuery{Limit: 7, Cursor: c})
		var ks []string
		for _, j := range p.Items {
			ks = append(ks, j.JobID)
		}
		return ks, p.Next, err
	}, between)
	checkOnce(t, "jobs", keys, want)
	keys = pageAll(t, func(c string) ([]string, string, error) {
		p, err := s.Models(ctx, indexdb.ModelQuery{Limit: 9, Cursor: c})
		var ks []string
		for _, m := range p.Items {
			ks = append(ks, m.Name)
		}
		return ks, p.Next, err
	}, between)
	checkOnce(t, "models", keys, want)
	wantPeers := map[string]bool{}
	for _, c := range caps {
		wantPeers[c.Peer] = true
	}
	keys = pageAll(t, func(c string) ([]string, string, error) {
		p, err := s.Providers(ctx, indexdb.ProviderQuery{Limit: 10, Cursor: c})
		var ks []string
		for _, x := range p.Items {
			ks = append(ks, x.Peer)
		}
		return ks, p.Next, err
	}, between)
	checkOnce(t, "providers", keys, wantPeers)
}

func testSearch(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	ms := []indexdb.Model{
		Model("alice", "MNIST-perceptron", "a linear classifier of digits", now),
		Model("alice", "cifar cnn", "100% accurate_ish on cats", now.Add(time.Second)),
		Model("bob", "o'brien", `back\slash and "quotes"`, now.Add(2*time.Second)),
	}
	must(t, s.AddModels(ctx, ms))
	cases := []struct {
		text, publisher string
		want            []string
	}{
		{"mnist", "", []string{"MNIST-perceptron"}},
		{"DIGITS", "", []string{"MNIST-perceptron"}},
		{"%", "", []string{"cifar cnn"}},
		{"_", "", []string{"cifar cnn"}},
		{"100%", "", []string{"cifar cnn"}},
		{"e_i", "", []string{"cifar cnn"}},
		{"c_t", "", nil},
		{"o'brien", "", []string{"o'brien"}},
		{`\`, "", []string{"o'brien"}},
		{`"quotes"`, "", []string{"o'brien"}},
		{"' OR '1'='1", "", nil},
		{"'; DROP TABLE models; --", "", nil},
		{"%' OR 1=1 --", "", nil},
		{"", "alice", []string{"cifar cnn", "MNIST-perceptron"}},
		{"", "' OR 1=1 --", nil},
		{"c", "alice", []string{"cifar cnn", "MNIST-perceptron"}},
		{"", "", []string{"o'brien", "cifar cnn", "MNIST-perceptron"}},
	}
	for _, c := range cases {
		p, err := s.Models(ctx, indexdb.ModelQuery{Text: c.text, Publisher: c.publisher})
		must(t, err)
		var got []string
		for _, m := range p.Items {
			got = append(got, m.Name)
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("Models(text %q, publisher %q) = %q, want %q", c.text, c.publisher, got, c.want)
		}
	}
	st, err := s.Stats(ctx)
	must(t, err)
	if st.Models != 3 {
		t.Fatalf("models after hostile searches: %d, want 3", st.Models)
	}
}

func testFilters(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	old := now.Add(-48 * time.Hour)
	a := Capacity("pa", 1, old, old.Add(time.Hour), old, 1)
	b := Capacity("pb", 1, now, now.Add(time.Hour), now, 1)
	b.GPUs, b.Executors = []indexdb.GPU{{Model: "GeForce RTX 4090", MemoryMiB: 24576}}, []string{"wasm"}
	c := Capacity("pc", 1, now, now.Add(time.Hour), now, 1)
	c.GPUs = nil
	// pc's newer record has no train executor: the latest record decides.
	c2 := c
	c2.Seq, c2.Executors, c2.Record = 2, []string{"wasm"}, []byte("pc2")
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{a, b, c, c2}))
	pcases := []struct {
		q    indexdb.ProviderQuery
		want string
	}{
		{indexdb.ProviderQuery{}, "pa pb pc"},
		{indexdb.ProviderQuery{GPUModel: "a100"}, "pa"},
		{indexdb.ProviderQuery{GPUModel: "RTX"}, "pb"},
		{indexdb.ProviderQuery{GPUModel: "%"}, ""},
		{indexdb.ProviderQuery{GPUModel: "_"}, ""},
		{indexdb.ProviderQuery{Executor: "train"}, "pa"},
		{indexdb.ProviderQuery{Executor: "WASM"}, "pa pb pc"},
		{indexdb.ProviderQuery{Executor: "was"}, ""},
		{indexdb.ProviderQuery{SeenSince: now.Add(-time.Hour)}, "pb pc"},
		{indexdb.ProviderQuery{SeenSince: now.Add(-time.Hour), Executor: "wasm", GPUModel: "4090"}, "pb"},
	}
	for _, c := range pcases {
		p, err := s.Providers(ctx, c.q)
		must(t, err)
		var got []string
		for _, x := range p.Items {
			got = append(got, x.Peer)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("Providers(%+v) = %q, want %q", c.q, got, c.want)
		}
	}
	j1 := Announcement("j1", 1, "alice", old)
	j2 := Announcement("j2", 1, "bob", now)
	j2.Kind = "train"
	must(t, s.AddAnnouncements(ctx, []indexdb.Announcement{j1, j2}))
	r2 := Receipt("j2", 1, "bob", "pb", "failed", "provider", now)
	r2.Kind = "train"
	must(t, s.AddReceipts(ctx, []indexdb.Receipt{Receipt("j1", 1, "alice", "pa", "succeeded", "none", old), r2}))
	jcases := []struct {
		q    indexdb.JobQuery
		want string
	}{
		{indexdb.JobQuery{}, "j2 j1"},
		{indexdb.JobQuery{Requester: "alice"}, "j1"},
		{indexdb.JobQuery{Provider: "pb"}, "j2"},
		{indexdb.JobQuery{Outcome: "succeeded"}, "j1"},
		{indexdb.JobQuery{Kind: "train"}, "j2"},
		{indexdb.JobQuery{Since: now.Add(-time.Hour)}, "j2"},
		{indexdb.JobQuery{Requester: "' OR 1=1 --"}, ""},
		{indexdb.JobQuery{Requester: "alice", Kind: "train"}, ""},
	}
	for _, c := range jcases {
		p, err := s.Jobs(ctx, c.q)
		must(t, err)
		var got []string
		for _, x := range p.Items {
			got = append(got, x.JobID)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("Jobs(%+v) = %q, want %q", c.q, got, c.want)
		}
	}
}

func testOversized(t *testing.T, s indexdb.Store) {
	now := time.Now().UTC()
	const n = 5000
	rs := make([]indexdb.Receipt, n)
	caps := make([]indexdb.Capacity, n)
	for i := range n {
		rs[i] = Receipt(fmt.Sprintf("job%d", i), 1, "r", fmt.Sprintf("p%d", i%50), "succeeded", "none", now)
		caps[i] = Capacity(fmt.Sprintf("p%d", i%50), uint64(i), now, now.Add(time.Minute), now, uint64(i))
	}
	must(t, s.AddReceipts(ctx, rs))
	must(t, s.AddCapacity(ctx, caps))
	st, err := s.Stats(ctx)
	must(t, err)
	if st.Receipts != n || st.Capacity != n {
		t.Fatalf("stats after a batch of %d: %+v", n, st)
	}
	p, err := s.Provider(ctx, "p7")
	must(t, err)
	if p.Records != n/50 || p.Jobs != n/50 || len(p.History) != indexdb.DetailRows || len(p.Receipts) != indexdb.DetailRows {
		t.Fatalf("provider p7: records %d jobs %d history %d receipts %d", p.Records, p.Jobs, len(p.History), len(p.Receipts))
	}
	if p.History[0].Seq != n-50+7 {
		t.Fatalf("history starts at seq %d, want the newest, %d", p.History[0].Seq, n-50+7)
	}
}

func testRestart(t *testing.T, s indexdb.Store, reopen Reopen) {
	now := time.Now().UTC()
	r := Receipt("j1", 1, "r", "p1", "succeeded", "none", now)
	r.EscrowTx = "tx"
	must(t, s.AddCapacity(ctx, []indexdb.Capacity{Capacity("p1", 1, now.Add(-time.Hour), now, now.Add(-time.Hour), 5)}))
	must(t, s.AddAnnouncements(ctx, []indexdb.Announcement{Announcement("j1", 1, "r", now)}))
	must(t, s.AddReceipts(ctx, []indexdb.Receipt{r}))
	must(t, s.AddModels(ctx, []indexdb.Model{Model("pub", "m", "d", now)}))
	must(t, s.SetEscrowCheck(ctx, indexdb.EscrowCheck{ReceiptID: r.ID, State: indexdb.CheckConfirmed, CheckedAt: now}))
	before, err := s.Stats(ctx)
	must(t, err)
	jb, err := s.Job(ctx, "j1")
	must(t, err)
	pb, err := s.Provider(ctx, "p1")
	must(t, err)
	s = reopen(t, s)
	s = reopen(t, s) // a second open migrates nothing
	after, err := s.Stats(ctx)
	must(t, err)
	same(t, "stats after restart", after, before)
	ja, err := s.Job(ctx, "j1")
	must(t, err)
	same(t, "job after restart", ja, jb)
	pa, err := s.Provider(ctx, "p1")
	must(t, err)
	pa.Uptime, pb.Uptime = 0, 0 // time passed
	same(t, "provider after restart", pa, pb)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
