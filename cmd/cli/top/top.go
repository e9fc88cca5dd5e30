// Package top is the terminal monitor of one node (`cyxwiz top`): its
// peers and providers, its running and recent jobs with their escrows,
// the swarm traffic, the models it serves with their call rates,
// latencies and earnings, and a live loss sparkline for a train job,
// refreshed from the node's API. It fits an 80×24 terminal.
package top

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/cyxwiz/cyxwiz/node/api"
)

// Source is what the monitor reads: a node's API. *api.Client is one.
type Source interface {
	NodeInfo(ctx context.Context) (api.NodeInfo, error)
	SwarmPeers(ctx context.Context) ([]api.Peer, error)
	SwarmTraffic(ctx context.Context) (api.Traffic, error)
	MarketProviders(ctx context.Context, p api.ProvidersParams) ([]api.ProviderInfo, error)
	JobList(ctx context.Context) ([]api.JobInfo, error)
	SubscribeJob(ctx context.Context, id string) (*api.Subscription, error)
	InferStats(ctx context.Context) (api.InferStats, error)
}

// Options tune the monitor.
type Options struct {
	// Interval is how often the node, its peers and its jobs are read
	// (default 1 s); providers, a DHT lookup, every five intervals.
	Interval time.Duration
	// Input and Output are the terminal.
	Input  io.Reader
	Output io.Writer
	// AltScreen draws on the terminal's alternate screen, as full-screen
	// programs do.
	AltScreen bool
}

// Bounds on what the monitor keeps.
const (
	// maxLossPoints is the most loss values kept per train job.
	maxLossPoints = 240
	// maxFollowed is the most train jobs followed live at once.
	maxFollowed = 4
	// callTimeout bounds each API call.
	callTimeout = 5 * time.Second
)

// Run shows the monitor until the user quits (q, Esc or Ctrl-C) or ctx
// ends.
func Run(ctx context.Context, src Source, opts Options) error {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	m := newModel(ctx, src, opts.Interval)
	popts := []tea.ProgramOption{tea.WithContext(ctx), tea.WithInput(opts.Input), tea.WithOutput(opts.Output)}
	if opts.AltScreen {
		popts = append(popts, tea.WithAltScreen())
	}
	final, err := tea.NewProgram(m, popts...).Run()
	if fm, ok := final.(*model); ok {
		fm.closeAll()
	} else {
		m.closeAll()
	}
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}

// Messages of the model.
type (
	tickMsg      struct{ n int }
	snapshotMsg  snapshot
	providersMsg struct {
		providers []api.ProviderInfo
		err       error
	}
	followMsg struct {
		job string
		sub *api.Subscription
	}
	lossMsg struct {
		job  string
		loss float64
		sub  *api.Subscription
	}
	followEndMsg struct{ job string }
)

// snapshot is one reading of the node.
type snapshot struct {
	info    api.NodeInfo
	peers   []api.Peer
	traffic api.Traffic
	jobs    []api.JobInfo
	// infer is what the node serves and its budgets of paid calls; a
	// node that cannot say leaves it empty.
	infer api.InferStats
	err   error
	at    time.Time
}

type model struct {
	ctx      context.Context
	src      Source
	interval time.Duration
	width    int
	height   int

	snap snapshot
	// rates are the calls per second of each serve job, from the last two
	// snapshots.
	rates     map[string]float64
	providers []api.ProviderInfo
	provErr   error
	loss      map[string][]float64
	followed  map[string]*api.Subscription
}

func newModel(ctx context.Context, src Source, interval time.Duration) *model {
	return &model{ctx: ctx, src: src, interval: interval, width: 80, height: 24, rates: map[string]float64{},
		loss: map[string][]float64{}, followed: map[string]*api.Subscription{}}
}

func (m *model) Init() tea.Cmd {
	return tea.Batch(m.read, m.readProviders, m.tick(0))
}

func (m *model) tick(n int) tea.Cmd {
	return tea.Tick(m.interval, func(time.Time) tea.Msg { return tickMsg{n + 1} })
}

// read takes a snapshot of the node.
func (m *model) read() tea.Msg {
	ctx, cancel := context.WithTimeout(m.ctx, callTimeout)
	defer cancel()
	s := snapshot{at: time.Now()}
	if s.info, s.err = m.src.NodeInfo(ctx); s.err != nil {
		return snapshotMsg(s)
	}
	if s.peers, s.err = m.src.SwarmPeers(ctx); s.err != nil {
		return snapshotMsg(s)
	}
	if s.traffic, s.err = m.src.SwarmTraffic(ctx); s.err != nil {
		return snapshotMsg(s)
	}
	if s.jobs, s.err = m.src.JobList(ctx); s.err != nil {
		return snapshotMsg(s)
	}
	s.infer, _ = m.src.InferStats(ctx)
	return snapshotMsg(s)
}

func (m *model) readProviders() tea.Msg {
	ctx, cancel := context.WithTimeout(m.ctx, callTimeout)
	defer cancel()
	ps, err := m.src.MarketProviders(ctx, api.ProvidersParams{})
	return providersMsg{ps, err}
}

// follow subscribes to a train job's live metrics.
func (m *model) follow(job string) tea.Cmd {
	return func() tea.Msg {
		sub, err := m.src.SubscribeJob(m.ctx, job)
		if err != nil {
			return followEndMsg{job}
		}
		return followMsg{job, sub}
	}
}

// next waits for the job's next loss figure.
func next(job string, sub *api.Subscription) tea.Cmd {
	return func() tea.Msg {
		for raw := range sub.Events() {
			var n api.JobNotification
			if json.Unmarshal(raw, &n) != nil || n.Type != "log" || n.Stream != "metrics" {
				continue
			}
			var rec struct {
				Loss *float64 `json:"loss"`
			}
			if json.Unmarshal([]byte(n.Data), &rec) == nil && rec.Loss != nil {
				return lossMsg{job, *rec.Loss, sub}
			}
		}
		return followEndMsg{job}
	}
}

func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "esc", "ctrl+c":
			return m, tea.Quit
		}
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tickMsg:
		cmds := []tea.Cmd{m.read, m.tick(msg.n)}
		if msg.n%5 == 0 {
			cmds = append(cmds, m.readProviders)
		}
		return m, tea.Batch(cmds...)
	case snapshotMsg:
		m.rates = callRates(m.snap, snapshot(msg))
		m.snap = snapshot(msg)
		return m, m.followTrainJobs()
	case providersMsg:
		if msg.err == nil {
			m.providers = msg.providers
		}
		m.provErr = msg.err
	case followMsg:
		if _, ok := m.followed[msg.job]; ok && m.followed[msg.job] == nil {
			m.followed[msg.job] = msg.sub
			return m, next(msg.job, msg.sub)
		}
		msg.sub.Close()
	case lossMsg:
		pts := append(m.loss[msg.job], msg.loss)
		if len(pts) > maxLossPoints {
			pts = pts[len(pts)-maxLossPoints:]
		}
		m.loss[msg.job] = pts
		return m, next(msg.job, msg.sub)
	case followEndMsg:
		if sub := m.followed[msg.job]; sub != nil {
			sub.Close()
		}
		delete(m.followed, msg.job)
	}
	return m, nil
}

// followTrainJobs starts following running train jobs, and stops following
// those that ended.
func (m *model) followTrainJobs() tea.Cmd {
	running := map[string]bool{}
	var cmds []tea.Cmd
	for _, j := range m.snap.jobs {
		if j.Kind != "train" || final(j.State) {
			continue
		}
		running[j.ID] = true
		if _, ok := m.followed[j.ID]; !ok && len(m.followed) < maxFollowed {
			m.followed[j.ID] = nil // pending
			cmds = append(cmds, m.follow(j.ID))
		}
	}
	for id, sub := range m.followed {
		if !running[id] && sub != nil {
			sub.Close()
			delete(m.followed, id)
		}
	}
	return tea.Batch(cmds...)
}

func (m *model) closeAll() {
	for id, sub := range m.followed {
		if sub != nil {
			sub.Close()
		}
		delete(m.followed, id)
	}
}

func final(state string) bool {
	switch state {
	case "succeeded", "failed", "cancelled":
		return true
	}
	return false
}

// recentJobs orders jobs running first, then by last change, newest first.
func recentJobs(jobs []api.JobInfo) []api.JobInfo {
	out := slices.Clone(jobs)
	slices.SortStableFunc(out, func(a, b api.JobInfo) int {
		if fa, fb := final(a.State), final(b.State); fa != fb {
			if fa {
				return 1
			}
			return -1
		}
		return b.UpdatedAt.Compare(a.UpdatedAt)
	})
	return out
}

func (m *model) View() string {
	return render(m, m.width, m.height)
}

// fit cuts or pads s to w columns.
func fit(s string, w int) string {
	r := []rune(s)
	if len(r) > w {
		if w <= 1 {
			return string(r[:w])
		}
		return string(r[:w-1]) + "…"
	}
	return s + strings.Repeat(" ", w-len(r))
}

// short abbreviates a peer or job ID to its last n characters.
func short(id string, n int) string {
	if len(id) <= n {
		return id
	}
	return "…" + id[len(id)-n+1:]
}

func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// callRates is the calls per second of each serve job between two
// snapshots.
func callRates(prev, cur snapshot) map[string]float64 {
	out := map[string]float64{}
	dt := cur.at.Sub(prev.at).Seconds()
	if prev.at.IsZero() || dt <= 0 {
		return out
	}
	before := map[string]int64{}
	for _, s := range prev.infer.Served {
		before[s.Job] = s.Calls
	}
	for _, s := range cur.infer.Served {
		if c, ok := before[s.Job]; ok && s.Calls >= c {
			out[s.Job] = float64(s.Calls-c) / dt
		}
	}
	return out
}
