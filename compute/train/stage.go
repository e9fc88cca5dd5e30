package train

import (
	"bytes"
	"context"
	"encoding/json"
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
	dec := json.NewDecoder(bytes.NewReader(job.Spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("%w: train section: %v", compute.ErrBadSpec, err)
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
