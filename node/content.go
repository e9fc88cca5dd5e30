package node

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
	"github.com/ipfs/go-cid"
)

// registerContent adds the content.* methods.
func (n *Node) registerContent() {
	n.rpc.Register(api.MethodContentAdd, rpc.Method(n.contentAdd))
	n.rpc.Register(api.MethodContentGet, rpc.Method(n.contentGet))
	n.rpc.Register(api.MethodContentCat, rpc.Method(n.contentCat))
	n.rpc.Register(api.MethodContentPin, rpc.Method(n.contentPin))
	n.rpc.Register(api.MethodContentUnpin, rpc.Method(n.contentUnpin))
	n.rpc.Register(api.MethodContentPins, rpc.NoParams(n.contentPins))
	n.rpc.Register(api.MethodContentGC, rpc.NoParams(n.contentGC))
	n.rpc.RegisterSubscription(api.MethodContentProgress, func(ctx context.Context, raw json.RawMessage) (<-chan any, error) {
		var p api.ProgressParams
		if err := rpc.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		if p.ID == "" {
			return nil, api.Errorf(api.CodeInvalidParams, "invalid params: id is required")
		}
		return n.events.subscribe(ctx, progressTopic(p.ID)), nil
	})
}

func progressTopic(id string) string { return "progress/" + id }

// progress returns a callback that publishes progress events for the
// operation id; nil when the caller asked for none.
func (n *Node) progress(id, op string) content.Progress {
	if id == "" {
		return nil
	}
	topic := progressTopic(id)
	var last int64
	return func(done, total int64) {
		// At most one event per MiB, plus the last one.
		if done-last < 1<<20 && done != total {
			return
		}
		last = done
		n.events.publish(topic, api.ProgressEvent{ID: id, Op: op, Done: done, Total: total})
	}
}

func parseCID(s string) (cid.Cid, error) {
	if s == "" {
		return cid.Undef, api.Errorf(api.CodeInvalidParams, "invalid params: cid is required")
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, api.Errorf(api.CodeInvalidParams, "invalid params: cid %q: %v", s, err)
	}
	return c, nil
}

// resolve turns "CID" or "CID/path/in/dag" into the CID it names.
func (n *Node) resolve(ctx context.Context, p string) (cid.Cid, error) {
	if p == "" {
		return cid.Undef, api.Errorf(api.CodeInvalidParams, "invalid params: cid is required")
	}
	c, err := n.store.Resolve(ctx, p)
	if err != nil {
		return cid.Undef, contentError(err)
	}
	return c, nil
}

func absPath(field, p string) error {
	if p == "" {
		return api.Errorf(api.CodeInvalidParams, "invalid params: %s is required", field)
	}
	if !filepath.IsAbs(p) {
		return api.Errorf(api.CodeInvalidParams, "invalid params: %s %q must be an absolute path", field, p)
	}
	return nil
}

// contentError maps store errors to stable API codes.
func contentError(err error) error {
	switch {
	case errors.Is(err, content.ErrNotFile), errors.Is(err, content.ErrBadPath):
		return &api.Error{Code: api.CodeInvalidParams, Message: "invalid params: " + err.Error()}
	case errors.Is(err, content.ErrNotFound), errors.Is(err, content.ErrNotPinned), errors.Is(err, fs.ErrNotExist):
		return &api.Error{Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, content.ErrTooLarge), errors.Is(err, content.ErrQuota):
		return &api.Error{Code: api.CodeTooLarge, Message: err.Error()}
	}
	return err
}

func (n *Node) contentAdd(ctx context.Context, p api.ContentAddParams) (api.ContentAddResult, error) {
	if err := absPath("path", p.Path); err != nil {
		return api.ContentAddResult{}, err
	}
	res, err := n.store.Add(ctx, p.Path, n.progress(p.Progress, "add"))
	if err != nil {
		return api.ContentAddResult{}, contentError(err)
	}
	return api.ContentAddResult{CID: res.CID.String(), Name: res.Name, Size: res.Size}, nil
}

func (n *Node) contentGet(ctx context.Context, p api.ContentGetParams) (api.ContentGetResult, error) {
	c, err := n.resolve(ctx, p.CID)
	if err != nil {
		return api.ContentGetResult{}, err
	}
	if err := absPath("output", p.Output); err != nil {
		return api.ContentGetResult{}, err
	}
	size, err := n.store.Get(ctx, c, p.Output, n.progress(p.Progress, "get"))
	if err != nil {
		return api.ContentGetResult{}, contentError(err)
	}
	return api.ContentGetResult{CID: c.String(), Output: p.Output, Bytes: size}, nil
}

func (n *Node) contentCat(ctx context.Context, p api.ContentCatParams) (api.ContentCatResult, error) {
	c, err := n.resolve(ctx, p.CID)
	if err != nil {
		return api.ContentCatResult{}, err
	}
	if p.Length == 0 {
		p.Length = api.MaxCatLength
	}
	if p.Length < 0 || p.Length > api.MaxCatLength || p.Offset < 0 {
		return api.ContentCatResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: need offset >= 0 and 0 < length <= %d", api.MaxCatLength)
	}
	data, size, err := n.store.Read(ctx, c, p.Offset, p.Length)
	if err != nil {
		return api.ContentCatResult{}, contentError(err)
	}
	return api.ContentCatResult{Data: data, Offset: p.Offset, Size: size, EOF: p.Offset+int64(len(data)) >= size}, nil
}

func (n *Node) contentPin(ctx context.Context, p api.ContentPinParams) (struct{}, error) {
	c, err := parseCID(p.CID)
	if err != nil {
		return struct{}{}, err
	}
	if err := n.store.Pin(ctx, c, p.Name, n.progress(p.Progress, "pin")); err != nil {
		return struct{}{}, contentError(err)
	}
	return struct{}{}, nil
}

func (n *Node) contentUnpin(_ context.Context, p api.ContentUnpinParams) (struct{}, error) {
	c, err := parseCID(p.CID)
	if err != nil {
		return struct{}{}, err
	}
	if err := n.store.Unpin(c); err != nil {
		return struct{}{}, contentError(err)
	}
	return struct{}{}, nil
}

func (n *Node) contentPins(context.Context) ([]api.PinInfo, error) {
	pins, err := n.store.Pins()
	if err != nil {
		return nil, err
	}
	out := []api.PinInfo{}
	for _, p := range pins {
		out = append(out, api.PinInfo{ID: p.CID.String(), Name: p.Name, Size: p.Size, PinnedAt: p.PinnedAt})
	}
	return out, nil
}

func (n *Node) contentGC(ctx context.Context) (api.GCResult, error) {
	res, err := n.store.GC(ctx)
	if err != nil {
		return api.GCResult{}, err
	}
	return api.GCResult{RemovedBlocks: res.Removed, FreedBytes: res.FreedBytes}, nil
}
