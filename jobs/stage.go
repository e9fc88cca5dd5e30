package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/ipfs/go-cid"
)

// stage prepares a job for exec within the input timeout: exec fetches
// what the job's section names (its module, its dataset), then the
// inputs go to dir/in. It returns the job to run, with what is left of
// the job's disk limit for its outputs, and the bytes it read.
func (pv *provider) stage(ctx context.Context, j *Job, exec compute.Executor, dir string) (compute.Job, market.Usage, error) {
	var usage market.Usage
	ctx, cancel := context.WithTimeout(ctx, pv.cfg.InputTimeout)
	defer cancel()
	r := j.Spec.Resources
	cj := compute.Job{
		ID:    j.ID,
		InDir: filepath.Join(dir, "in"), OutDir: filepath.Join(dir, "out"),
		CPU: r.CPU, MemoryMiB: r.MemoryMiB, Wall: time.Duration(j.Spec.Limits.WallSeconds) * time.Second,
	}
	if r.GPU != nil {
		cj.GPUs = r.GPU.Count
	}
	for _, d := range []string{cj.InDir, cj.OutDir} {
		if err := ensureDir(d); err != nil {
			return cj, usage, err
		}
	}
	section, err := j.Spec.Section()
	if err != nil {
		return cj, usage, fmt.Errorf("%w: %w", compute.ErrBadSpec, err)
	}
	cj.Spec = section
	src := &source{c: pv.core, modules: &pv.modules, dir: dir, left: int64(r.DiskMiB) << 20, usage: &usage}
	if err := exec.Stage(ctx, &cj, src); err != nil {
		return cj, usage, err
	}
	for _, input := range j.Spec.Inputs {
		if err := src.Fetch(ctx, "input "+input.Name, input.CID, filepath.Join(cj.InDir, input.Name), 0); err != nil {
			return cj, usage, err
		}
	}
	cj.OutBytes = src.left
	return cj, usage, nil
}

// source is the compute.Source of one job: it fetches from this node's
// content, each piece within what is left of the job's disk limit, and
// counts what it reads.
type source struct {
	c       *core
	modules *moduleCache
	dir     string
	left    int64
	usage   *market.Usage
}

// errInputsTooLarge: a job's module or inputs pass a limit: its disk
// limit, the module's, or this provider's content.max_fetch_mib.
var errInputsTooLarge = errors.New("too large")

// Fetch implements compute.Source.
func (s *source) Fetch(ctx context.Context, what, c, path string, limit int64) error {
	id, err := cid.Decode(c)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := s.fetch(ctx, what, id, path, limit)
	s.usage.InputBytes += n
	return err
}

// Read implements compute.Source. Files read this way stay in memory for
// the jobs that follow (a module run many times is read once); each job
// counts their size as input, but only a read from the store uses disk.
func (s *source) Read(ctx context.Context, what, c string, limit int64) ([]byte, error) {
	id, err := cid.Decode(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	b, err := s.modules.get(ctx, id, func() ([]byte, error) {
		path := filepath.Join(s.dir, id.String())
		if _, err := s.fetch(ctx, what, id, path, limit); err != nil {
			return nil, err
		}
		return os.ReadFile(path)
	})
	if err != nil {
		return nil, err
	}
	if limit > 0 && int64(len(b)) > limit {
		// Kept in memory for a caller with a higher limit.
		return nil, fmt.Errorf("%s %s: %w: the limit on its size (%.1f MiB)", what, id, errInputsTooLarge, float64(limit)/(1<<20))
	}
	s.usage.InputBytes += int64(len(b))
	return b, nil
}

// fetch writes the content id to path, within the disk left and, when
// limit > 0, within limit, and returns its size.
func (s *source) fetch(ctx context.Context, what string, id cid.Cid, path string, limit int64) (int64, error) {
	bound, which := s.left, "what is left of resources.disk_mib"
	if limit > 0 && limit < bound {
		bound, which = limit, "the limit on its size"
	}
	n, err := s.c.p.Content.GetWithin(ctx, id, path, bound)
	if err != nil {
		if errors.Is(err, content.ErrTooLarge) {
			err = fmt.Errorf("%w: %s (%.1f MiB, or content.max_fetch_mib of the provider): %v", errInputsTooLarge, which, float64(bound)/(1<<20), err)
		}
		return 0, fmt.Errorf("%s %s: %w", what, id, err)
	}
	s.left -= n
	return n, nil
}
