package cli

import (
	"crypto/rand"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/sqlitedb"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestExplorerCommands: explorer jobs and providers, and model search,
// read an indexer's explorer API named by --indexer, with its pages; a
// bad address or page size is a usage error or the explorer's own.
func TestExplorerCommands(t *testing.T) {
	st, err := sqlitedb.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := func() (crypto.PrivKey, peer.ID) {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(k)
		return k, id
	}
	reqKey, req := key()
	provKey, prov := key()
	now := time.Now().UTC()
	var rows []indexdb.Receipt
	for i := range 3 {
		id := "01JABCDEFGHJKMNPQRSTVWXYZ" + string(rune('0'+i))
		env, err := market.Seal(reqKey, market.TypeReceipt, market.Receipt{JobID: id, Attempt: 1, Requester: req.String(), Provider: prov.String(),
			Kind: market.KindWASM, Outcome: market.OutcomeSucceeded, Fault: market.FaultNone, Price: 7, StartedAt: now, EndedAt: now, IssuedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		sr := market.SignedReceipt{Receipt: env}
		sr.Countersignature, _ = market.Countersign(provKey.Sign, env)
		data, _ := sr.Marshal()
		row, err := indexer.ReceiptRow(data, now, true)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	if err := st.AddReceipts(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	capEnv, err := market.Seal(provKey, market.TypeCapacity, market.Capacity{Peer: prov.String(), CPUCores: 4, MemoryMiB: 1024, DiskMiB: 1024,
		Executors: []string{market.KindWASM}, Seq: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	capData, _ := capEnv.Marshal()
	capRow, err := indexer.CapacityRow(capData, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddCapacity(t.Context(), []indexdb.Capacity{capRow}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(indexer.NewExplorer(st, indexer.ExplorerConfig{}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	code, out, errOut := runCLI(t, "--repo", t.TempDir(), "explorer", "jobs", "--indexer", addr, "--limit", "2")
	if code != 0 || strings.Count(out, prov.String()) != 2 || !strings.Contains(errOut, "more: --cursor ") {
		t.Fatalf("explorer jobs: exit %d\n%s\n%s", code, out, errOut)
	}
	cursor := strings.TrimSpace(strings.TrimPrefix(errOut, "more: --cursor "))
	code, out, errOut = runCLI(t, "--repo", t.TempDir(), "--json", "explorer", "jobs", "--indexer", srv.URL, "--limit", "2", "--cursor", cursor)
	var page indexdb.Page[indexdb.JobSummary]
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Items) != 1 || page.Next != "" {
		t.Fatalf("explorer jobs, second page: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ := runCLI(t, "--repo", t.TempDir(), "explorer", "providers", "--indexer", addr); code != 0 || !strings.Contains(out, prov.String()) {
		t.Errorf("explorer providers: exit %d\n%s", code, out)
	}
	if code, out, _ := runCLI(t, "--repo", t.TempDir(), "model", "search", "nothing", "--indexer", addr); code != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("model search with no match: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, "--repo", t.TempDir(), "explorer", "jobs", "--indexer", addr, "--limit", "9999"); code != 1 || !strings.Contains(errOut, "limit") {
		t.Errorf("an oversized page: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "--repo", t.TempDir(), "explorer", "jobs", "--indexer", "ftp://x"); code != 2 || !strings.Contains(errOut, "--indexer") {
		t.Errorf("a bad address: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "--repo", t.TempDir(), "model", "publish", "--job", "X"); code != 2 || !strings.Contains(errOut, "--name") {
		t.Errorf("model publish without a name: exit %d, %s", code, errOut)
	}
}
