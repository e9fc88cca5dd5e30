package logging

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.opentelemetry.io/otel"

	"github.com/cyxwiz/cyxwiz/internal/syncbuf"
)

// Package-level, as in the libraries: created before any New, resolved at
// its first use.
var shimLog = gologshim.Logger("shimsub")

// logFromEverywhere writes one line through each logger the package
// bridges, tagged with tag.
func logFromEverywhere(tag string) {
	golog.Logger("testsub").Warnw("golog warning "+tag, "peer", "QmPeer", "n", 3, "system", "fx")
	golog.Logger("testsub").Info("golog info below the library level " + tag)
	shimLog.Warn("gologshim warning "+tag, "k", "v")
	Library("pubsub").Warn("library warning " + tag)
	slog.New(Library("pubsub").Handler().WithAttrs([]slog.Attr{slog.String("system", "pubsub/rpc")})).Warn("rpc warning " + tag)
	log.Printf("stdlog line %s\nsecond stdlog line %s", tag, tag)
	otel.Handle(errors.New("otel error " + tag))
	fmt.Fprintf(os.Stderr, "caught panic: stderr line %s\n\tstack frame\n", tag)
}

func TestLibraryLogsFollowTheFormat(t *testing.T) {
	var text syncbuf.Buffer
	own := New(&text, "text", slog.LevelInfo, slog.LevelWarn)
	own.Debug("hidden own debug")
	own.Info("own info")
	logFromEverywhere("T")
	out := text.String()
	for _, want := range []string{"own info", "golog warning T", "gologshim warning T", "library warning T", "stdlog line T", "second stdlog line T", "otel error T", "system=libp2p", "system=log", "logger=shimsub", "logger=pubsub"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"hidden own debug", "below the library level"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("text output has %q, which is below its level:\n%s", unwanted, out)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("text line not in slog's text format: %q", line)
		}
	}

	// A second New re-points the bridges, the loggers that libraries
	// resolved already among them; under JSON os.Stderr is captured too.
	var js syncbuf.Buffer
	own = New(&js, "json", slog.LevelInfo, slog.LevelWarn)
	own.Info("own info")
	logFromEverywhere("J")
	want := []string{"own info", "golog warning J", "gologshim warning J", "library warning J", "stdlog line J", "second stdlog line J", "otel error J", "caught panic: stderr line J", "\tstack frame"}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(js.String(), "stack frame") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the stderr pipe is read asynchronously
	}
	msgs := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("line is not JSON: %q", line)
			continue
		}
		if strings.Count(line, `"system":`) > 1 || strings.Count(line, `"subsystem":`) > 1 {
			t.Errorf("line has a key twice: %s", line)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("JSON line lacks %q: %s", k, line)
			}
		}
		msg, _ := rec["msg"].(string)
		msgs[msg] = rec
	}
	for _, m := range want {
		if _, ok := msgs[m]; !ok {
			t.Errorf("JSON output lacks the record %q:\n%s", m, js.String())
		}
	}
	if strings.Contains(text.String(), "J") {
		t.Errorf("a library still writes to the first logger's output:\n%s", text.String())
	}
	checks := []struct{ msg, key, value string }{
		{"golog warning J", "system", "libp2p"},
		{"golog warning J", "logger", "testsub"},
		{"golog warning J", "peer", "QmPeer"},
		{"golog warning J", "subsystem", "fx"},
		{"rpc warning J", "system", "libp2p"},
		{"rpc warning J", "subsystem", "pubsub/rpc"},
		{"gologshim warning J", "logger", "shimsub"},
		{"gologshim warning J", "k", "v"},
		{"stdlog line J", "system", "log"},
		{"stdlog line J", "level", "WARN"},
		{"caught panic: stderr line J", "system", "stderr"},
	}
	for _, c := range checks {
		if got := fmt.Sprint(msgs[c.msg][c.key]); got != c.value {
			t.Errorf("record %q: %s = %q, want %q", c.msg, c.key, got, c.value)
		}
	}
}
