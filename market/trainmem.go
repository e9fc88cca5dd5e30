package market

import (
	"errors"
	"fmt"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// FormatBytes writes n in the largest binary unit that keeps it at 1 or more.
func FormatBytes(n int64) string { return trainspec.FormatBytes(n) }

// checkMemory refuses a train job whose estimate, with the dataset not yet
// counted, is over its memory limit.
func (s Spec) checkMemory(bad func(field, format string, args ...any)) {
	if s.Train == nil {
		return
	}
	est, err := s.Train.EstimateMemory(trainspec.DatasetSize{})
	if err != nil {
		return // the model's own error is reported already
	}
	if limit := int64(s.Resources.MemoryMiB) << 20; est.Total() > limit {
		bad("resources.memory_mib", "%d MiB is less than the model needs: an estimated %s before its dataset", s.Resources.MemoryMiB, est)
	}
}

// CheckTrainMemory refuses a train job whose estimate with its dataset
// measured is over its memory limit; the error names the estimate.
func (s Spec) CheckTrainMemory(data trainspec.DatasetSize) error {
	if s.Train == nil {
		return nil
	}
	est, err := s.Train.EstimateMemory(data)
	if err != nil {
		return err
	}
	if limit := int64(s.Resources.MemoryMiB) << 20; est.Total() > limit {
		return fmt.Errorf("%w: resources.memory_mib %d MiB is less than the job needs: an estimated %s", ErrMemory, s.Resources.MemoryMiB, est)
	}
	return nil
}

// ErrMemory: a train job needs more memory than it asks for.
var ErrMemory = errors.New("memory")
