package train

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/trainspec"
)

// Stage implements compute.Executor: it fetches the dataset named by the
// job's train section to InDir/dataset, and the section becomes the
// job's Program.
func (e *Executor) Stage(ctx context.Context, job *compute.Job, src compute.Source) error {
	var s trainspec.Spec
	if err := job.DecodeSpec("train", &s); err != nil {
		return err
	}
	if s.Dataset.CID == "" {
		return fmt.Errorf("%w: train section names no dataset", compute.ErrBadSpec)
	}
	if err := src.Fetch(ctx, "dataset", s.Dataset.CID, filepath.Join(job.InDir, trainspec.DatasetDir), 0); err != nil {
		return err
	}
	job.Program = job.Spec
	return nil
}
