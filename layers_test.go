package cyxwiz_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/cyxwiz/cyxwiz/"

// layerRules says, for the packages under a prefix, which of our packages
// they may import (by prefix), and which single packages besides (exact).
// A package not named by any rule is free.
var layerRules = []struct {
	under string
	may   []string
	exact []string
	why   string
}{
	{"p2p", []string{"p2p", "internal/"}, nil, "the host is the bottom layer: it knows no market, content or node"},
	{"market", []string{"market", "trainspec", "internal/"}, []string{"settlement"}, "the market's logic is pure: no network, chain or node (its escrow terms are those of the ledger interface, which imports only the standard library)"},
	{"trainspec", []string{"trainspec", "internal/"}, nil, "the train schema is a leaf: the market and the trainer both read it"},
	{"settlement", []string{"settlement"}, nil, "ledgers know only the escrow interface"},
	{"content", []string{"content", "p2p/wire", "internal/"}, nil, "the content store needs only the host's interfaces"},
	{"compute", []string{"compute", "trainspec", "internal/"}, nil, "executors run programs: they know no market, jobs or node"},
	{"indexer", []string{"indexer", "market", "trainspec", "p2p", "settlement", "internal/"}, nil, "the indexer reads what the swarm says in public: it knows no jobs engine or node"},
	{"indexer/indexdb", []string{"indexer/indexdb"}, nil, "the indexer's database is storage: it knows no market, network or node"},
	{"reputation", []string{"reputation", "market", "settlement", "internal/"}, nil, "reputation is scoring over receipts and the ledger interface: it knows no network, jobs engine or node"},
	{"callpay", []string{"callpay", "market", "settlement", "p2p/wire", "internal/"}, nil, "budgets of paid calls know the ledger interface and the market's messages, not the jobs engine, serving or node"},
	{"serving", []string{"serving", "market", "trainspec", "compute/train", "p2p/wire", "internal/"}, []string{"p2p", "p2p/p2ptest"}, "serving answers calls to models: it knows no jobs engine, ledger or node"},
}

// foreignRules say, for the packages under a prefix (or that one package,
// with only), which packages outside the standard library and this module
// they may import, by prefix.
var foreignRules = []struct {
	under string
	only  bool
	may   []string
	why   string
}{
	{"indexer/indexdb", true, nil, "the indexer database's interface is standard library only"},
	{"indexer/indexdb/internal", false, nil, "the shared SQL store speaks through its own small connection interface"},
	{"indexer/indexdb/indexdbtest", false, nil, "the conformance suite runs against the interface only"},
	{"indexer/indexdb/sqlitedb", false, []string{"modernc.org/sqlite"}, "the SQLite database is pure Go, through modernc.org/sqlite"},
	{"indexer/indexdb/pgdb", false, []string{"github.com/jackc/pgx/v5"}, "the PostgreSQL database goes through pgx"},
}

// prometheusMay lists the packages that may import Prometheus: the
// metrics package, and the host, which hands libp2p its registerer. The
// others report through narrow hooks of their own (docs/metrics.md).
var prometheusMay = []string{"node/metrics", "p2p"}

// TestPrometheusImports guards that metrics stay behind prometheusMay.
func TestPrometheusImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := strings.CutPrefix(fields[0], module)
		if !ok || slices.Contains(prometheusMay, pkg) {
			continue
		}
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, "github.com/prometheus/") {
				t.Errorf("%s imports %s: only %v import Prometheus; the others report through hooks", pkg, imp, prometheusMay)
			}
		}
	}
}

// TestForeignImports guards the imports from outside the module of the
// packages foreignRules names.
func TestForeignImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./indexer/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := strings.CutPrefix(fields[0], module)
		if !ok {
			continue
		}
		for _, imp := range fields[1:] {
			first, _, _ := strings.Cut(imp, "/")
			if !strings.Contains(first, ".") || strings.HasPrefix(imp, module) {
				continue // the standard library, or ours
			}
			// The most specific rule decides.
			best := -1
			for i, r := range foreignRules {
				if pkg == r.under || !r.only && strings.HasPrefix(pkg, r.under+"/") {
					if best < 0 || len(r.under) > len(foreignRules[best].under) {
						best = i
					}
				}
			}
			if best < 0 {
				continue
			}
			r := foreignRules[best]
			allowed := false
			for _, may := range r.may {
				allowed = allowed || imp == may || strings.HasPrefix(imp, may+"/")
			}
			if !allowed {
				t.Errorf("%s imports %s: %s", pkg, imp, r.why)
			}
		}
	}
}

// TestLayers guards the intended imports between our packages, so that
// the layering drawn in docs/architecture.md stays true.
func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := strings.CutPrefix(fields[0], module)
		if !ok {
			continue
		}
		for _, imp := range fields[1:] {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if dep == "node" || strings.HasPrefix(dep, "node/") && !strings.HasPrefix(dep, "node/api") {
				if !strings.HasPrefix(pkg, "cmd/") && !strings.HasPrefix(pkg, "node") && !strings.HasPrefix(pkg, "test/") {
					t.Errorf("%s imports %s: only the commands, and test programs, import the composition root", pkg, dep)
				}
			}
			for _, r := range layerRules {
				if pkg != r.under && !strings.HasPrefix(pkg, r.under+"/") {
					continue
				}
				allowed := slices.Contains(r.exact, dep)
				for _, may := range r.may {
					allowed = allowed || dep == may || strings.HasPrefix(dep, strings.TrimSuffix(may, "/")+"/")
				}
				if !allowed {
					t.Errorf("%s imports %s: %s", pkg, dep, r.why)
				}
			}
		}
	}
}
