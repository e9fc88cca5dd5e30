package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunAccountsForEveryJob runs a small swarm and checks the report is
// consistent: every job started or failed, every start had an award and
// a result, messages add up. It asserts nothing about speed.
func TestRunAccountsForEveryJob(t *testing.T) {
	p := DefaultParams()
	p.Nodes, p.Jobs, p.Rate = 100, 20, 5
	r, err := Run(p)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := r.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if r.Started == 0 || r.Msgs == 0 || r.Reached < 0.99 {
		t.Fatalf("started %d, %d messages, %.3f of the swarm reached; want jobs started over a swarm the announcements reach", r.Started, r.Msgs, r.Reached)
	}
	if r.StartP50 <= 0 || r.StartP99 < r.StartP50 {
		t.Fatalf("submit→start p50 %s p99 %s", r.StartP50, r.StartP99)
	}
}

// TestRunNoProviders checks that jobs nobody can take fail after the
// jobs engine's BidTimeout, and are accounted for.
func TestRunNoProviders(t *testing.T) {
	p := DefaultParams()
	p.Nodes, p.Jobs, p.Providers = 20, 2, 0
	r, err := Run(p)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r.Failed != p.Jobs || r.Started != 0 || r.Auctions <= int64(p.Jobs) {
		t.Fatalf("%d failed, %d started, %d auctions; want all %d failed after repeated auctions", r.Failed, r.Started, r.Auctions, p.Jobs)
	}
	if err := r.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// TestDeterministic checks that one seed gives one run.
func TestDeterministic(t *testing.T) {
	p := DefaultParams()
	p.Nodes, p.Jobs = 50, 5
	a, err := Run(p)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	b, err := Run(p)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if a.Msgs != b.Msgs || a.StartP99 != b.StartP99 || a.Events != b.Events {
		t.Fatalf("two runs of one seed differ: %d/%d messages, %s/%s p99", a.Msgs, b.Msgs, a.StartP99, b.StartP99)
	}
}

// TestCommandPrintsTable runs the command's flags end to end.
func TestCommandPrintsTable(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-nodes", "30", "-jobs", "3", "-loss", "0.05"}, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.HasPrefix(out.String(), header) || !strings.Contains(out.String(), "\n30 ") {
		t.Fatalf("output:\n%s", out.String())
	}
}
