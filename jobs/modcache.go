package jobs

import (
	"context"
	"sync"

	"github.com/ipfs/go-cid"
)

// moduleCache keeps recently run modules' bytes, so that a provider does
// not read a module from its store for every job.
type moduleCache struct {
	mu    sync.Mutex
	mods  map[cid.Cid][]byte
	order []cid.Cid
	size  int
}

const moduleCacheBytes = 64 << 20

func (m *moduleCache) get(ctx context.Context, c cid.Cid, load func() ([]byte, error)) ([]byte, error) {
	m.mu.Lock()
	if b, ok := m.mods[c]; ok {
		m.mu.Unlock()
		return b, nil
	}
	m.mu.Unlock()
	b, err := load()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mods == nil {
		m.mods = map[cid.Cid][]byte{}
	}
	if _, ok := m.mods[c]; !ok && len(b) <= moduleCacheBytes {
		m.mods[c] = b
		m.order = append(m.order, c)
		m.size += len(b)
		for m.size > moduleCacheBytes {
			old := m.order[0]
			m.order = m.order[1:]
			m.size -= len(m.mods[old])
			delete(m.mods, old)
		}
	}
	return b, nil
}
