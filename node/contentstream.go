package node

import (
	"io"
	"net/http"
	"strconv"

	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
)

// upload serves PathContentAdd: POST ?name=NAME&size=BYTES[&folder=1]
// [&progress=ID], with the file's bytes or the folder's tar archive as the
// body.
func (a contentAPI) upload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		rpc.WriteStreamError(w, api.Errorf(api.CodeInvalidRequest, "use HTTP POST"))
		return
	}
	q := r.URL.Query()
	size, err := strconv.ParseInt(q.Get("size"), 10, 64)
	if err != nil || size < 0 {
		rpc.WriteStreamError(w, api.Errorf(api.CodeInvalidParams, "invalid params: size %q is not a byte count", q.Get("size")))
		return
	}
	name, progress := q.Get("name"), a.progress(q.Get("progress"), "add")
	var res content.AddResult
	if q.Get("folder") == "1" {
		res, err = a.store.AddTar(r.Context(), name, r.Body, size, progress)
	} else {
		res, err = a.store.AddReader(r.Context(), name, r.Body, size, progress)
	}
	if err != nil {
		// What is left of the body is not read: the connection goes.
		w.Header().Set("Connection", "close")
		rpc.WriteStreamError(w, contentError(err))
		return
	}
	rpc.WriteStreamResult(w, api.ContentAddResult{CID: res.CID.String(), Name: res.Name, Size: res.Size})
}

// download serves PathContentCat (GET ?cid=CID[&offset=N][&length=N]: a
// file's bytes) and PathContentGet (GET ?cid=CID: a file's bytes, or a
// folder as a tar archive); both take &progress=ID for the fetch.
func (a contentAPI) download(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		rpc.WriteStreamError(w, api.Errorf(api.CodeInvalidRequest, "use HTTP GET"))
		return
	}
	q := r.URL.Query()
	c, err := a.resolve(r.Context(), q.Get("cid"))
	if err != nil {
		rpc.WriteStreamError(w, err)
		return
	}
	offset, length := int64(0), int64(-1)
	cat := r.URL.Path == api.PathContentCat
	if cat {
		var ok bool
		if offset, ok = queryInt(q.Get("offset"), 0); !ok || offset < 0 {
			rpc.WriteStreamError(w, api.Errorf(api.CodeInvalidParams, "invalid params: offset %q", q.Get("offset")))
			return
		}
		if length, ok = queryInt(q.Get("length"), -1); !ok || length < -1 {
			rpc.WriteStreamError(w, api.Errorf(api.CodeInvalidParams, "invalid params: length %q", q.Get("length")))
			return
		}
	}
	exp, err := a.store.Export(r.Context(), c, a.progress(q.Get("progress"), "get"))
	if err == nil && cat && exp.IsDir() {
		err = content.ErrNotFile
	}
	if err == nil && cat && offset > exp.FileBytes() {
		err = api.Errorf(api.CodeInvalidParams, "invalid params: offset %d is past the end of the file (%d bytes)", offset, exp.FileBytes())
	}
	if err != nil {
		rpc.WriteStreamError(w, contentError(err))
		return
	}
	h := w.Header()
	h.Set(api.ContentSizeHeader, strconv.FormatInt(exp.FileBytes(), 10))
	if exp.IsDir() {
		h.Set(api.ContentKindHeader, "folder")
		h.Set("Content-Type", "application/x-tar")
	} else {
		h.Set(api.ContentKindHeader, "file")
		h.Set("Content-Type", "application/octet-stream")
		n := exp.FileBytes() - offset
		if length >= 0 && length < n {
			n = length
		}
		h.Set("Content-Length", strconv.FormatInt(n, 10))
	}
	cw := &countingWriter{w: w}
	if cat {
		_, err = exp.WriteRange(r.Context(), cw, offset, length)
	} else {
		_, err = exp.WriteTo(r.Context(), cw)
	}
	switch {
	case err == nil:
	case cw.n == 0:
		// Nothing is sent yet: the client gets the error itself.
		for _, k := range []string{"Content-Length", api.ContentKindHeader, api.ContentSizeHeader} {
			h.Del(k)
		}
		rpc.WriteStreamError(w, contentError(err))
	default:
		// The reply has begun: only a cut connection can tell the client.
		panic(http.ErrAbortHandler)
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// queryInt parses a query parameter, def when it is empty.
func queryInt(s string, def int64) (int64, bool) {
	if s == "" {
		return def, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
