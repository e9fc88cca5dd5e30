package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestJSONLogsFromEveryLibrary runs daemons with --log.format=json and the
// libraries at debug, connects them and dials an address where nothing
// listens: every line they write, libp2p's, gossipsub's, the DHT's, boxo's
// and quic-go's included, is a JSON record with time, level and msg. The
// same daemon under the text format writes slog's text lines.
func TestJSONLogsFromEveryLibrary(t *testing.T) {
	needBinary(t)
	// The libraries' own level settings, which would make gossipsub and
	// quic-go write to stderr themselves were they not bridged.
	t.Setenv("GOLOG_LOG_LEVEL", "debug")
	t.Setenv("QUIC_GO_LOG_LEVEL", "info")
	dir := t.TempDir()
	repoA, repoB, repoC := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	for _, r := range []string{repoA, repoB, repoC} {
		cli(t, "--repo", r, "init", "--profile", "local")
	}
	flags := []string{"--log.format=json", "--log.level=debug", "--log.libp2p_level=debug"}
	a := startDaemon(t, repoA, flags...)
	b := startDaemon(t, repoB, flags...)
	var info struct {
		Addresses []string `json:"addresses"`
	}
	if err := json.Unmarshal([]byte(cli(t, "--repo", repoA, "id", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	for _, addr := range info.Addresses {
		cli(t, "--repo", repoB, "swarm", "connect", addr)
	}
	run("--repo", repoB, "swarm", "connect", "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWEkxsimeCmFWW14xQeAQwyP8sJt7xrmsgrm7S2XRUgTry")
	a.stop(t)
	b.stop(t)

	for name, d := range map[string]*daemon{"a": a, "b": b} {
		systems := map[string]int{}
		for _, line := range logLines(d.stderr.String()) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Errorf("daemon %s: line is not JSON: %q", name, line)
				continue
			}
			if strings.Count(line, `"system":`) > 1 {
				t.Errorf("daemon %s: record has the key system twice: %s", name, line)
			}
			for _, k := range []string{"time", "level", "msg"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("daemon %s: record lacks %q: %s", name, k, line)
				}
			}
			if logger, ok := rec["logger"].(string); ok {
				systems[logger]++
			}
		}
		for _, want := range []string{"pubsub", "dht", "basichost"} {
			if systems[want] == 0 {
				t.Errorf("daemon %s: no record from logger %q (records by logger: %v)", name, want, systems)
			}
		}
	}

	// A JSON daemon that fails once it has its logger (its API port is
	// taken) reports the failure as a record too.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	repoD := filepath.Join(dir, "d")
	cli(t, "--repo", repoD, "init", "--profile", "local")
	_, errOut, err := run(append([]string{"--repo", repoD, "daemon", "--api.addr=" + busy.Addr().String()}, flags...)...)
	if err == nil {
		t.Fatal("a daemon on a taken port started")
	}
	failed := false
	for _, line := range logLines(errOut) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("failing daemon: line is not JSON: %q", line)
			continue
		}
		if rec["level"] == "ERROR" && strings.Contains(fmt.Sprint(rec["error"]), "api.addr") {
			failed = true
		}
	}
	if !failed {
		t.Errorf("failing daemon: no error record naming api.addr in:\n%s", errOut)
	}

	c := startDaemon(t, repoC, "--log.level=debug", "--log.libp2p_level=debug")
	c.stop(t)
	for _, line := range logLines(c.stderr.String()) {
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("text daemon: line not in slog's text format: %q", line)
		}
	}
}

// logLines are the non-empty lines a daemon wrote, less the one line of
// standard output that says it is ready (startDaemon merges the two).
func logLines(out string) []string {
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "daemon ready: ") {
			lines = append(lines, line)
		}
	}
	return lines
}
