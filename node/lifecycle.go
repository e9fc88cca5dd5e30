package node

import (
	"context"
	"errors"
)

// A service is one subsystem of the node. Start brings it up; a Start
// that fails leaves nothing to close. Close stops it and releases what
// Start took.
type service interface {
	Start(ctx context.Context) error
	Close() error
}

// lifecycle starts a node's services in order and closes the started
// ones in reverse order.
type lifecycle struct {
	started []service
}

// start starts each service in turn after those already started. When
// one fails, start closes the ones this call started, in reverse, and
// returns the failure joined with any error of those closes.
func (l *lifecycle) start(ctx context.Context, services ...service) error {
	mark := len(l.started)
	for _, s := range services {
		if err := s.Start(ctx); err != nil {
			return errors.Join(err, l.closeFrom(mark))
		}
		l.started = append(l.started, s)
	}
	return nil
}

// close closes every started service in reverse order of start and
// joins their errors.
func (l *lifecycle) close() error { return l.closeFrom(0) }

// closeFrom closes, in reverse, the services started after the first mark.
func (l *lifecycle) closeFrom(mark int) error {
	var errs []error
	for i := len(l.started) - 1; i >= mark; i-- {
		errs = append(errs, l.started[i].Close())
	}
	l.started = l.started[:mark]
	return errors.Join(errs...)
}
