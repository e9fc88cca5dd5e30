package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
)

func TestLibraryLogsAreBridged(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "text", slog.LevelInfo, slog.LevelWarn)

	log.Debug("hidden own debug")
	log.Info("own info")
	golog.Logger("testsub").Warn("golog warning")
	golog.Logger("testsub").Info("golog info below the library level")
	gologshim.Logger("shimsub").Warn("gologshim warning")

	out := buf.String()
	for _, want := range []string{"own info", "golog warning", "gologshim warning", "system=libp2p"} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"hidden own debug", "below the library level"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("log output has %q, which is below its level:\n%s", unwanted, out)
		}
	}
}
