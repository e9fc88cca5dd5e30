package node

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/node/api"
)

var update = flag.Bool("update", false, "rewrite the golden files with the current responses")

// portRE matches the port of a loopback TCP multiaddr, the one part of the
// responses that changes from run to run.
var portRE = regexp.MustCompile(`/tcp/\d+`)

// TestGolden replays testdata/golden/*.txt against a node with a fixed
// identity. In each file a line "--> REQUEST" is sent and the next line
// "<-- RESPONSE" is the exact expected reply ("<-- " alone: no reply).
// $PEER2 in a request stands for the address of a second fixed node.
func TestGolden(t *testing.T) {
	// An indexer without an explorer, so that indexer.* answers from an
	// empty index and no address changes from run to run.
	cfg := testConfig()
	cfg.Role, cfg.Indexer.ExplorerAddr = RoleIndexer, ""
	n := startNode(t, cfg, 1)
	peer2 := startNode(t, testConfig(), 2)
	peer2Addr := peer2.Host().Addrs()[0].String() + "/p2p/" + peer2.Host().ID().String()

	files, err := filepath.Glob("testdata/golden/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			var lastReq string
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "--> "):
					lastReq = strings.TrimPrefix(line, "--> ")
					out.WriteString(line + "\n")
				case strings.HasPrefix(line, "<--"):
					want := strings.TrimSpace(strings.TrimPrefix(line, "<--"))
					got := rawCall(t, n, strings.ReplaceAll(lastReq, "$PEER2", peer2Addr))
					got = portRE.ReplaceAllString(got, "/tcp/PORT")
					got = strings.ReplaceAll(got, `"version":"`+Version+`"`, `"version":"VERSION"`)
					out.WriteString(strings.TrimSpace("<-- "+got) + "\n")
					if got != want && !*update {
						t.Errorf("request %s\n got: %s\nwant: %s", lastReq, got, want)
					}
				default:
					out.WriteString(line + "\n")
				}
			}
			if *update {
				if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestEveryMethodDocumented guards docs/rpc.md and the golden files: each
// method has a section in the doc and is exercised by a golden file.
func TestEveryMethodDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/rpc.md")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, testConfig(), 0)
	golden, _ := filepath.Glob("testdata/golden/*.txt")
	var all strings.Builder
	for _, f := range golden {
		b, _ := os.ReadFile(f)
		all.Write(b)
	}
	for _, m := range append(n.rpc.Methods(), api.MethodUnsubscribe) {
		if !regexp.MustCompile("(?m)^#+ .*`" + regexp.QuoteMeta(m) + "`").Match(doc) {
			t.Errorf("method %s has no section in docs/rpc.md", m)
		}
		if !strings.Contains(all.String(), `"method":"`+m+`"`) {
			t.Errorf("method %s appears in no golden file", m)
		}
	}
}
