package indexdbtest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

// Capacity is a capacity record of peer for a test: seen at seen, valid
// over [issued, expires].
func Capacity(peer string, seq uint64, issued, expires, seen time.Time, price uint64) indexdb.Capacity {
	return indexdb.Capacity{
		Peer: peer, Seq: seq, IssuedAt: issued, ExpiresAt: expires, SeenAt: seen,
		CPUCores: 8, MemoryMiB: 16384, DiskMiB: 100000,
		GPUs:      []indexdb.GPU{{Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920}},
		Executors: []string{"wasm", "train"}, PricePerCPUSecond: price, PriceMinimum: price * 10,
		Mint: "mint1", BenchScore: 1.5, Record: []byte(fmt.Sprintf("cap %s %d", peer, seq)),
	}
}

// Announcement is a job announcement for a test.
func Announcement(job string, attempt int, requester string, seen time.Time) indexdb.Announcement {
	return indexdb.Announcement{
		JobID: job, Attempt: attempt, Requester: requester, Kind: "wasm", CPU: 1, MemoryMiB: 256,
		WallSeconds: 60, MaxPrice: 1000, Mint: "mint1", IssuedAt: seen.Add(-time.Second), SeenAt: seen,
		Record: []byte(fmt.Sprintf("ann %s %d", job, attempt)),
	}
}

// Receipt is a job receipt for a test; its ID is the hash of its record.
func Receipt(job string, attempt int, requester, provider, outcome, fault string, seen time.Time) indexdb.Receipt {
	rec := []byte(fmt.Sprintf("receipt %s %d %s %s %s %d", job, attempt, provider, outcome, fault, seen.UnixNano()))
	return indexdb.Receipt{
		ID: indexdb.RecordID(rec), JobID: job, Attempt: attempt, Requester: requester, Provider: provider,
		Kind: "wasm", Outcome: outcome, Fault: fault, Reason: "", Price: 500, Mint: "mint1",
		EscrowState: "released", Outputs: []string{"bafyout"},
		StartedAt: seen.Add(-time.Minute), EndedAt: seen.Add(-time.Second), IssuedAt: seen.Add(-time.Millisecond),
		SeenAt: seen, Countersigned: true, Record: rec,
	}
}

// Model is a model record for a test.
func Model(publisher, name, description string, published time.Time) indexdb.Model {
	rec := []byte(fmt.Sprintf("model %s %s %d", publisher, name, published.UnixNano()))
	return indexdb.Model{
		ID: indexdb.RecordID(rec), Publisher: publisher, Name: name, Description: description, License: "MIT",
		WeightsCID: "bafyweights", Spec: json.RawMessage(`{"model":[]}`), Metrics: map[string]float64{"accuracy": 0.9},
		JobID: "job-" + name, PublishedAt: published, SeenAt: published.Add(time.Second), Record: rec,
	}
}

// same fails the test unless got and want have the same JSON form (times
// compared as instants in UTC).
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
