package node

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// recorder is a service that logs its starts and closes.
type recorder struct {
	name     string
	log      *[]string
	startErr error
	closeErr error
}

func (r recorder) Start(context.Context) error {
	*r.log = append(*r.log, "start "+r.name)
	return r.startErr
}

func (r recorder) Close() error {
	*r.log = append(*r.log, "close "+r.name)
	return r.closeErr
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	var log []string
	svc := func(name string) recorder { return recorder{name: name, log: &log} }

	var l lifecycle
	if err := l.start(ctx, svc("a"), svc("b")); err != nil {
		t.Fatal(err)
	}
	// A failed start closes what that call started, in reverse, and keeps
	// the earlier ones.
	fail := errors.New("d fails")
	c := svc("c")
	c.closeErr = errors.New("c close fails")
	d := svc("d")
	d.startErr = fail
	err := l.start(ctx, c, d, svc("e"))
	if !errors.Is(err, fail) || !errors.Is(err, c.closeErr) {
		t.Fatalf("start = %v, want the failure and the rollback's error", err)
	}
	want := []string{"start a", "start b", "start c", "start d", "close c"}
	if !slices.Equal(log, want) {
		t.Fatalf("after a failed start: %q, want %q", log, want)
	}

	log = nil
	if err := l.start(ctx, svc("f")); err != nil {
		t.Fatal(err)
	}
	l.started[0] = recorder{name: "a", log: &log, closeErr: errors.New("a close fails")}
	err = l.close()
	if err == nil || err.Error() != "a close fails" {
		t.Fatalf("close = %v, want the error of a", err)
	}
	want = []string{"start f", "close f", "close b", "close a"}
	if !slices.Equal(log, want) {
		t.Fatalf("close order: %q, want %q", log, want)
	}
	if err := l.close(); err != nil || len(l.started) != 0 {
		t.Fatalf("second close = %v with %d services left", err, len(l.started))
	}
}
