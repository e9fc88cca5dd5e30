package indexer

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb/sqlitedb"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Fixtures shared by the indexer's tests: keys, signed messages of each
// kind, and a SQLite store in a temporary directory.

const (
	testCID  = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	testMint = "So11111111111111111111111111111111111111112"
	testJob  = "01JABCDEFGHJKMNPQRSTVWXYZ0"
)

// wasmSpec is a small wasm job, as a requester announces it.
const wasmSpec = `{"kind":"wasm","wasm":{"module":"` + testCID + `"},
	"outputs":[{"name":"result","path":"/out/result.txt","max_bytes":1048576}],
	"resources":{"cpu":2,"memory_mib":256,"disk_mib":64},
	"limits":{"wall_seconds":60},
	"price":{"max":"1000000","mint":"` + testMint + `"},
	"verification":{"mode":"none"}}`

// trainSpec is a small train job, whose train section a model record
// carries.
const trainSpec = `{"kind":"train","train":{
	"model":{"input":[4],"layers":[{"type":"dense","units":8},{"type":"relu"},{"type":"dense","units":3}]},
	"loss":"cross_entropy","optimizer":{"type":"adam","learning_rate":0.01},"epochs":1,"seed":1,
	"dataset":{"cid":"` + testCID + `","format":"csv","train_file":"d.csv"}}}`

func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

// jobID is the n-th job ID of a test: 26 characters of 0-9A-Z.
func jobID(n int) string { return fmt.Sprintf("01J%023d", n) }

// seal signs v as a message of type typ and encodes the envelope.
func seal(t testing.TB, key crypto.PrivKey, typ string, v any) []byte {
	t.Helper()
	env, err := market.Seal(key, typ, v)
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// goodCapacity is a capacity record of prov issued at issued.
func goodCapacity(prov peer.ID, seq uint64, issued time.Time) market.Capacity {
	return market.Capacity{Peer: prov.String(), CPUCores: 8, MemoryMiB: 16384, DiskMiB: 100000,
		GPUs: []market.GPU{
			{Model: "NVIDIA H100", MemoryMiB: 81920, ComputeCapability: "9.0"},
			{Model: "NVIDIA A100", MemoryMiB: 40960, ComputeCapability: "8.0"},
		},
		Executors:  []string{market.KindWASM, market.KindTrain},
		Prices:     market.PriceList{PerCPUSecond: 7, Minimum: 100, Mint: testMint},
		BenchScore: 2.5, Seq: seq, IssuedAt: issued, ExpiresAt: issued.Add(time.Hour)}
}

// goodAnnouncement is an announcement of job by req issued at issued.
func goodAnnouncement(t testing.TB, req peer.ID, job string, issued time.Time) market.Announcement {
	t.Helper()
	spec, err := market.ParseSpec([]byte(wasmSpec))
	if err != nil {
		t.Fatal(err)
	}
	return market.Announcement{JobID: job, Requester: req.String(), Attempt: 1, Spec: spec,
		RequesterAddrs: []string{"/ip4/127.0.0.1/tcp/4001"}, IssuedAt: issued, BidsUntil: issued.Add(time.Second)}
}

// goodReceipt is a paid, successful receipt of job by req about prov,
// issued at issued.
func goodReceipt(req, prov peer.ID, job string, issued time.Time) market.Receipt {
	return market.Receipt{
		JobID: job, Attempt: 1, Requester: req.String(), Provider: prov.String(), Kind: market.KindTrain,
		Outcome: market.OutcomeSucceeded, Fault: market.FaultNone, Price: 500, Mint: testMint,
		Escrow: &market.ReceiptEscrow{Multisig: "M", Vault: "V", State: "released", Tx: "T",
			Terms: settlement.Terms{JobID: job + "/1", Requester: "R", Provider: "P", Arbiter: "A", Mint: testMint, Amount: 500}},
		Outputs:   []market.OutputRef{{Name: market.OutputModel, CID: testCID}},
		StartedAt: issued.Add(-time.Minute), EndedAt: issued.Add(-time.Second), IssuedAt: issued,
	}
}

// signReceipt seals r with the requester's key and, when provKey is not
// nil, countersigns it with the provider's.
func signReceipt(t testing.TB, reqKey, provKey crypto.PrivKey, r market.Receipt) market.SignedReceipt {
	t.Helper()
	env, err := market.Seal(reqKey, market.TypeReceipt, r)
	if err != nil {
		t.Fatal(err)
	}
	sr := market.SignedReceipt{Receipt: env}
	if provKey != nil {
		if sr.Countersignature, err = market.Countersign(provKey.Sign, env); err != nil {
			t.Fatal(err)
		}
	}
	return sr
}

func marshalReceipt(t testing.TB, sr market.SignedReceipt) []byte {
	t.Helper()
	data, err := sr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// goodModel is a model record published by pub, with the receipt sr (may
// be nil) of the train job that made it.
func goodModel(t testing.TB, pub peer.ID, sr *market.SignedReceipt, published time.Time) market.ModelRecord {
	t.Helper()
	spec, err := market.ParseSpec([]byte(trainSpec))
	if err != nil {
		t.Fatal(err)
	}
	m := market.ModelRecord{Publisher: pub.String(), Name: "iris-mlp", Description: "a small perceptron", License: "MIT",
		WeightsCID: testCID, Spec: *spec.Train, Metrics: map[string]float64{"accuracy": 0.97}, PublishedAt: published}
	if sr != nil {
		m.Receipt = sr
		r, _, err := sr.Open()
		if err != nil {
			t.Fatal(err)
		}
		m.JobID = r.JobID
	}
	return m
}

// openStore opens a fresh SQLite index, closed when the test ends.
func openStore(t testing.TB) *sqlitedb.DB {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// eventually polls cond every few milliseconds until it holds, failing
// the test with what after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var bg = context.Background()
