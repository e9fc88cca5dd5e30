package content

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
)

// ErrBadPath: a content path or range that is malformed or names nothing,
// or an output path that is taken.
var ErrBadPath = errors.New("bad content path")

// ParsePath splits "CID", "CID/a/b" or "/ipfs/CID/a/b" into the root CID
// and the names below it.
func ParsePath(p string) (cid.Cid, []string, error) {
	p = strings.TrimPrefix(strings.TrimPrefix(p, "/ipfs/"), "ipfs://")
	parts := strings.Split(strings.Trim(p, "/"), "/")
	root, err := cid.Decode(parts[0])
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("%w: %q: cid: %w", ErrBadPath, p, err)
	}
	var names []string
	for _, n := range parts[1:] {
		if n == "" || n == "." || n == ".." {
			return cid.Undef, nil, fmt.Errorf("%w: %q: empty, . or .. segment", ErrBadPath, p)
		}
		names = append(names, n)
	}
	return root, names, nil
}

// Resolve walks a content path through UnixFS directories, fetching the
// directory nodes on the way, and returns the CID it names.
func (s *Store) Resolve(ctx context.Context, p string) (cid.Cid, error) {
	c, names, err := ParsePath(p)
	if err != nil {
		return cid.Undef, err
	}
	if len(names) == 0 {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout(s.cfg))
	defer cancel()
	for i, name := range names {
		nd, err := s.dag.Get(ctx, c)
		if err != nil {
			if ctx.Err() != nil {
				return cid.Undef, fmt.Errorf("resolve %s: %w: %w", p, ErrNotFound, err)
			}
			return cid.Undef, fmt.Errorf("resolve %s: %w", p, err)
		}
		dir, err := uio.NewDirectoryFromNode(s.dag, nd)
		if err != nil {
			at := strings.Join(names[:i], "/")
			if at == "" {
				at = "its root"
			}
			return cid.Undef, fmt.Errorf("%w: %s: %s is not a directory", ErrBadPath, p, at)
		}
		child, err := dir.Find(ctx, name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return cid.Undef, fmt.Errorf("%w: %s: no entry %q", ErrBadPath, p, name)
			}
			return cid.Undef, fmt.Errorf("resolve %s: %w", p, err)
		}
		c = child.Cid()
	}
	return c, nil
}
