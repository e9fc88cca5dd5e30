package api

import (
	"context"
	"time"
)

// Content method names.
const (
	MethodContentAdd   = "content.add"
	MethodContentGet   = "content.get"
	MethodContentCat   = "content.cat"
	MethodContentPin   = "content.pin"
	MethodContentUnpin = "content.unpin"
	MethodContentPins  = "content.pins"
	MethodContentGC    = "content.gc"
	// MethodContentProgress opens a subscription to the ProgressEvent
	// notifications of one operation.
	MethodContentProgress = "content.progress"
)

// MaxCatLength is the most bytes one content.cat call returns.
const MaxCatLength = 4 << 20

// ContentAddParams are the parameters of content.add.
type ContentAddParams struct {
	// Path is an absolute path on the daemon's machine: a file or a directory.
	Path string `json:"path"`
	// Progress, when set, names the operation for content.progress.
	Progress string `json:"progress,omitempty"`
}

// ContentAddResult is the result of content.add.
type ContentAddResult struct {
	// CID is the root of the added DAG (CIDv1).
	CID string `json:"cid"`
	// Name is the base name of the path.
	Name string `json:"name"`
	// Size is the number of bytes of file data added.
	Size int64 `json:"size"`
}

// ContentGetParams are the parameters of content.get.
type ContentGetParams struct {
	// CID is a CID, or a path below one (CID/dir/file, /ipfs/CID/dir/file).
	CID string `json:"cid"`
	// Output is an absolute path on the daemon's machine that must not exist yet.
	Output string `json:"output"`
	// Progress, when set, names the operation for content.progress.
	Progress string `json:"progress,omitempty"`
}

// ContentGetResult is the result of content.get.
type ContentGetResult struct {
	CID    string `json:"cid"`
	Output string `json:"output"`
	// Bytes is the size of the DAG fetched (blocks, not file data).
	Bytes int64 `json:"bytes"`
}

// ContentCatParams are the parameters of content.cat.
type ContentCatParams struct {
	// CID is a CID, or a path below one (CID/dir/file, /ipfs/CID/dir/file).
	CID string `json:"cid"`
	// Offset is where to start reading.
	Offset int64 `json:"offset,omitempty"`
	// Length is how many bytes to return, at most MaxCatLength (the default).
	Length int64 `json:"length,omitempty"`
}

// ContentCatResult is the result of content.cat.
type ContentCatResult struct {
	// Data holds the bytes read (base64 in JSON).
	Data []byte `json:"data"`
	// Offset is where Data starts.
	Offset int64 `json:"offset"`
	// Size is the whole file's size.
	Size int64 `json:"size"`
	// EOF is true when Data reaches the end of the file.
	EOF bool `json:"eof"`
}

// ContentPinParams are the parameters of content.pin.
type ContentPinParams struct {
	CID string `json:"cid"`
	// Name labels the pin in content.pins.
	Name string `json:"name,omitempty"`
	// Progress, when set, names the operation for content.progress.
	Progress string `json:"progress,omitempty"`
}

// ContentUnpinParams are the parameters of content.unpin.
type ContentUnpinParams struct {
	CID string `json:"cid"`
}

// PinInfo is one entry of content.pins.
type PinInfo struct {
	// ID is the pinned root CID.
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	PinnedAt time.Time `json:"pinned_at"`
}

// GCResult is the result of content.gc.
type GCResult struct {
	RemovedBlocks int   `json:"removed_blocks"`
	FreedBytes    int64 `json:"freed_bytes"`
}

// ProgressParams are the parameters of content.progress.
type ProgressParams struct {
	// ID is the operation's progress name, as passed to content.add/get/pin.
	ID string `json:"id"`
}

// ProgressEvent is a notification of content.progress.
type ProgressEvent struct {
	ID string `json:"id"`
	// Op is add, get or pin.
	Op string `json:"op"`
	// Done is the bytes processed so far.
	Done int64 `json:"done"`
	// Total is the bytes expected, 0 when unknown.
	Total int64 `json:"total"`
}

// ContentAdd calls content.add.
func (c *Client) ContentAdd(ctx context.Context, p ContentAddParams) (ContentAddResult, error) {
	var out ContentAddResult
	err := c.Call(ctx, MethodContentAdd, p, &out)
	return out, err
}

// ContentGet calls content.get.
func (c *Client) ContentGet(ctx context.Context, p ContentGetParams) (ContentGetResult, error) {
	var out ContentGetResult
	err := c.Call(ctx, MethodContentGet, p, &out)
	return out, err
}

// ContentCat calls content.cat.
func (c *Client) ContentCat(ctx context.Context, p ContentCatParams) (ContentCatResult, error) {
	var out ContentCatResult
	err := c.Call(ctx, MethodContentCat, p, &out)
	return out, err
}

// ContentPin calls content.pin.
func (c *Client) ContentPin(ctx context.Context, p ContentPinParams) error {
	return c.Call(ctx, MethodContentPin, p, nil)
}

// ContentUnpin calls content.unpin.
func (c *Client) ContentUnpin(ctx context.Context, cid string) error {
	return c.Call(ctx, MethodContentUnpin, ContentUnpinParams{CID: cid}, nil)
}

// ContentPins calls content.pins.
func (c *Client) ContentPins(ctx context.Context) ([]PinInfo, error) {
	var out []PinInfo
	err := c.Call(ctx, MethodContentPins, nil, &out)
	return out, err
}

// ContentGC calls content.gc.
func (c *Client) ContentGC(ctx context.Context) (GCResult, error) {
	var out GCResult
	err := c.Call(ctx, MethodContentGC, nil, &out)
	return out, err
}

// SubscribeProgress opens a content.progress subscription for one
// operation; each event decodes into a ProgressEvent.
func (c *Client) SubscribeProgress(ctx context.Context, id string) (*Subscription, error) {
	return c.Subscribe(ctx, MethodContentProgress, ProgressParams{ID: id})
}
