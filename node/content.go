package node

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"path/filepath"

	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
	"github.com/ipfs/go-cid"
)

// contentAPI serves content.*: the content store, with progress events
// on the hub.
type contentAPI struct {
	store  *content.Store
	events *hub
}

func (a contentAPI) register(srv *rpc.Server) {
	srv.Register(api.MethodContentAdd, rpc.Method(a.add))
	srv.Register(api.MethodContentGet, rpc.Method(a.get))
	srv.Register(api.MethodContentCat, rpc.Method(a.cat))
	srv.Register(api.MethodContentPin, rpc.Method(a.pin))
	srv.Register(api.MethodContentUnpin, rpc.Method(a.unpin))
	srv.Register(api.MethodContentPins, rpc.NoParams(a.pins))
	srv.Register(api.MethodContentGC, rpc.NoParams(a.gc))
	srv.HandleStream(api.PathContentAdd, http.HandlerFunc(a.upload))
	srv.HandleStream(api.PathContentCat, http.HandlerFunc(a.download))
	srv.HandleStream(api.PathContentGet, http.HandlerFunc(a.download))
	srv.RegisterSubscription(api.MethodContentProgress, func(ctx context.Context, raw json.RawMessage) (<-chan any, error) {
		var p api.ProgressParams
		if err := rpc.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		if p.ID == "" {
			return nil, api.Errorf(api.CodeInvalidParams, "invalid params: id is required")
		}
		return a.events.subscribe(ctx, progressTopic(p.ID)), nil
	})
}

func progressTopic(id string) string { return "progress/" + id }

// progress returns a callback that publishes progress events for the
// operation id; nil when the caller asked for none.
func (a contentAPI) progress(id, op string) content.Progress {
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
		a.events.publish(topic, api.ProgressEvent{ID: id, Op: op, Done: done, Total: total})
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
func (a contentAPI) resolve(ctx context.Context, p string) (cid.Cid, error) {
	if p == "" {
		return cid.Undef, api.Errorf(api.CodeInvalidParams, "invalid params: cid is required")
	}
	root, err := a.store.Resolve(ctx, p)
	if err != nil {
		return cid.Undef, contentError(err)
	}
	return root, nil
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
	case errors.Is(err, content.ErrNotFile), errors.Is(err, content.ErrBadPath), errors.Is(err, content.ErrBadUpload):
		return &api.Error{Code: api.CodeInvalidParams, Message: "invalid params: " + err.Error()}
	case errors.Is(err, content.ErrNotFound), errors.Is(err, content.ErrNotPinned), errors.Is(err, fs.ErrNotExist):
		return &api.Error{Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, content.ErrTooLarge), errors.Is(err, content.ErrQuota):
		return &api.Error{Code: api.CodeTooLarge, Message: err.Error()}
	}
	return err
}

func (a contentAPI) add(ctx context.Context, p api.ContentAddParams) (api.ContentAddResult, error) {
	if err := absPath("path", p.Path); err != nil {
		return api.ContentAddResult{}, err
	}
	res, err := a.store.Add(ctx, p.Path, a.progress(p.Progress, "add"))
	if err != nil {
		return api.ContentAddResult{}, contentError(err)
	}
	return api.ContentAddResult{CID: res.CID.String(), Name: res.Name, Size: res.Size}, nil
}

func (a contentAPI) get(ctx context.Context, p api.ContentGetParams) (api.ContentGetResult, error) {
	c, err := a.resolve(ctx, p.CID)
	if err != nil {
		return api.ContentGetResult{}, err
	}
	if err := absPath("output", p.Output); err != nil {
		return api.ContentGetResult{}, err
	}
	size, err := a.store.Get(ctx, c, p.Output, a.progress(p.Progress, "get"))
	if err != nil {
		return api.ContentGetResult{}, contentError(err)
	}
	return api.ContentGetResult{CID: c.String(), Output: p.Output, Bytes: size}, nil
}

func (a contentAPI) cat(ctx context.Context, p api.ContentCatParams) (api.ContentCatResult, error) {
	c, err := a.resolve(ctx, p.CID)
	if err != nil {
		return api.ContentCatResult{}, err
	}
	if p.Length == 0 {
		p.Length = api.MaxCatLength
	}
	if p.Length < 0 || p.Length > api.MaxCatLength || p.Offset < 0 {
		return api.ContentCatResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: need offset >= 0 and 0 < length <= %d", api.MaxCatLength)
	}
	data, size, err := a.store.Read(ctx, c, p.Offset, p.Length)
	if err != nil {
		return api.ContentCatResult{}, contentError(err)
	}
	return api.ContentCatResult{Data: data, Offset: p.Offset, Size: size, EOF: p.Offset+int64(len(data)) >= size}, nil
}

func (a contentAPI) pin(ctx context.Context, p api.ContentPinParams) (struct{}, error) {
	c, err := parseCID(p.CID)
	if err != nil {
		return struct{}{}, err
	}
	if err := a.store.Pin(ctx, c, p.Name, a.progress(p.Progress, "pin")); err != nil {
		return struct{}{}, contentError(err)
	}
	return struct{}{}, nil
}

func (a contentAPI) unpin(_ context.Context, p api.ContentUnpinParams) (struct{}, error) {
	c, err := parseCID(p.CID)
	if err != nil {
		return struct{}{}, err
	}
	if err := a.store.Unpin(c); err != nil {
		return struct{}{}, contentError(err)
	}
	return struct{}{}, nil
}

func (a contentAPI) pins(context.Context) ([]api.PinInfo, error) {
	pins, err := a.store.Pins()
	if err != nil {
		return nil, err
	}
	out := []api.PinInfo{}
	for _, p := range pins {
		out = append(out, api.PinInfo{ID: p.CID.String(), Name: p.Name, Size: p.Size, PinnedAt: p.PinnedAt})
	}
	return out, nil
}

func (a contentAPI) gc(ctx context.Context) (api.GCResult, error) {
	res, err := a.store.GC(ctx)
	if err != nil {
		return api.GCResult{}, err
	}
	return api.GCResult{RemovedBlocks: res.Removed, FreedBytes: res.FreedBytes}, nil
}
