package computetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/internal/syncbuf"
)

// Staged is a job as the provider gets it: its section of the job spec,
// and the content the section names.
type Staged struct {
	Spec json.RawMessage
	// Content is what the source holds, by content ID: each a folder of
	// files by slash-separated path, or a single file under the path "".
	Content map[string]map[string][]byte
	// Wall, when set, is the staged job's wall time, for an executor
	// whose jobs run until it ends (a deployment).
	Wall time.Duration
}

// RunStaging runs the staging part of the suite against exec, for an
// executor whose jobs are not programs the rest of the suite can express
// (it serves a model): staged from s, a job runs to success and prints
// greeting; a failing source and bad sections fail the staging.
func RunStaging(t *testing.T, exec compute.Executor, s Staged, greeting string) {
	runStage(t, exec, s, greeting)
}

// runStage stages jobs from their spec sections, with a source that
// serves s.Content, and with sources and sections that fail.
func runStage(t *testing.T, exec compute.Executor, s Staged, greeting string) {
	ctx := context.Background()

	t.Run("stage and run", func(t *testing.T) {
		var out syncbuf.Buffer
		j := job(t, Program{})
		j.Spec, j.Stdout = s.Spec, &out
		if s.Wall > 0 {
			j.Wall = s.Wall
		}
		src := &source{content: s.Content}
		if err := exec.Stage(ctx, &j, src); err != nil {
			t.Fatalf("stage: %v", err)
		}
		if len(src.served) == 0 {
			t.Fatal("staged without reading any content from the source")
		}
		o, err := exec.Run(ctx, j)
		if err != nil || !o.OK() || !strings.Contains(out.String(), greeting) {
			t.Fatalf("outcome %+v, err %v, stdout %q; want %q in it", o, err, out.String(), greeting)
		}
	})

	t.Run("source fails", func(t *testing.T) {
		j := job(t, Program{})
		j.Spec = s.Spec
		err := exec.Stage(ctx, &j, &source{})
		if !errors.Is(err, errNotHere) {
			t.Fatalf("stage from an empty source: %v; want an error that wraps the source's", err)
		}
	})

	t.Run("bad section", func(t *testing.T) {
		for _, spec := range []string{``, `{`, `[1,2]`, `{"no_such_field":1}`, `{}`} {
			j := job(t, Program{})
			j.Spec = json.RawMessage(spec)
			src := &source{content: s.Content}
			if err := exec.Stage(ctx, &j, src); !errors.Is(err, compute.ErrBadSpec) {
				t.Errorf("stage %q: %v; want %v", spec, err, compute.ErrBadSpec)
			}
			if len(src.served) > 0 {
				t.Errorf("stage %q read %v from the source", spec, src.served)
			}
		}
	})
}

// errNotHere: the source does not hold the content.
var errNotHere = errors.New("not in the source")

// source serves content from memory, as a provider's store would.
type source struct {
	content map[string]map[string][]byte
	served  []string
}

func (s *source) Fetch(_ context.Context, what, id, path string, limit int64) error {
	files, ok := s.content[id]
	if !ok {
		return fmt.Errorf("%s %s: %w", what, id, errNotHere)
	}
	s.served = append(s.served, id)
	var size int64
	for name, data := range files {
		size += int64(len(data))
		p := filepath.Join(path, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	if limit > 0 && size > limit {
		return fmt.Errorf("%s %s: %d bytes, more than %d", what, id, size, limit)
	}
	return nil
}

func (s *source) Read(_ context.Context, what, id string, limit int64) ([]byte, error) {
	data, ok := s.content[id][""]
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", what, id, errNotHere)
	}
	s.served = append(s.served, id)
	if limit > 0 && int64(len(data)) > limit {
		return nil, fmt.Errorf("%s %s: %d bytes, more than %d", what, id, len(data), limit)
	}
	return data, nil
}
