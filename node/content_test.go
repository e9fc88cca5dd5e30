package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
)

func TestContentAPI(t *testing.T) {
	a := startNode(t, testConfig(), 0)
	b := startNode(t, testConfig(), 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	infoA, err := a.client.NodeInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.SwarmConnect(ctx, infoA.Addresses[0]); err != nil {
		t.Fatal(err)
	}

	data := make([]byte, 3<<20+5)
	rand.Read(data)
	src := filepath.Join(t.TempDir(), "data.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}

	// Progress events arrive on a subscription named by the caller.
	sub, err := a.client.SubscribeProgress(ctx, "op1")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	added, err := a.client.ContentAdd(ctx, api.ContentAddParams{Path: src, Progress: "op1"})
	if err != nil {
		t.Fatal(err)
	}
	if added.Size != int64(len(data)) || added.Name != "data.bin" {
		t.Fatalf("content.add = %+v", added)
	}
	select {
	case raw := <-sub.Events():
		var ev api.ProgressEvent
		if err := json.Unmarshal(raw, &ev); err != nil || ev.ID != "op1" || ev.Op != "add" || ev.Total != int64(len(data)) || ev.Done == 0 {
			t.Fatalf("progress event %s (%v)", raw, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no progress event")
	}

	out := filepath.Join(t.TempDir(), "copy.bin")
	if _, err := b.client.ContentGet(ctx, api.ContentGetParams{CID: added.CID, Output: out}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("content.get wrote different bytes")
	}
	// The fetch shows in the swarm's traffic on both sides, once the
	// meters' next sweep (every second) has counted it.
	var in, out2 api.Traffic
	for range 50 {
		in, _ = b.client.SwarmTraffic(ctx)
		out2, _ = a.client.SwarmTraffic(ctx)
		if in.TotalIn >= int64(len(data)) && out2.TotalOut >= int64(len(data)) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if in.TotalIn < int64(len(data)) || out2.TotalOut < int64(len(data)) {
		t.Errorf("swarm.traffic: fetcher %+v, source %+v; want at least %d bytes each way", in, out2, len(data))
	}
	var got bytes.Buffer
	for offset := int64(0); ; {
		res, err := b.client.ContentCat(ctx, api.ContentCatParams{CID: added.CID, Offset: offset, Length: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		got.Write(res.Data)
		offset += int64(len(res.Data))
		if res.EOF {
			break
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("content.cat in pieces returned different bytes")
	}

	if err := b.client.ContentPin(ctx, api.ContentPinParams{CID: added.CID, Name: "mine"}); err != nil {
		t.Fatal(err)
	}
	pins, err := b.client.ContentPins(ctx)
	if err != nil || len(pins) != 1 || pins[0].ID != added.CID || pins[0].Name != "mine" {
		t.Fatalf("content.pins = %+v, %v", pins, err)
	}
	if res, err := b.client.ContentGC(ctx); err != nil || res.RemovedBlocks != 0 {
		t.Fatalf("gc with everything pinned = %+v, %v", res, err)
	}

	var ae *api.Error
	for name, call := range map[string]func() error{
		"relative path": func() error { _, err := a.client.ContentAdd(ctx, api.ContentAddParams{Path: "data.bin"}); return err },
		"bad cid": func() error {
			_, err := a.client.ContentGet(ctx, api.ContentGetParams{CID: "bafy-nope", Output: out + "2"})
			return err
		},
		"directory cat": func() error {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
			res, err := a.client.ContentAdd(ctx, api.ContentAddParams{Path: dir})
			if err != nil {
				return err
			}
			_, err = a.client.ContentCat(ctx, api.ContentCatParams{CID: res.CID})
			return err
		},
		"huge cat length": func() error {
			_, err := a.client.ContentCat(ctx, api.ContentCatParams{CID: added.CID, Length: api.MaxCatLength + 1})
			return err
		},
	} {
		if err := call(); !errors.As(err, &ae) || ae.Code != api.CodeInvalidParams {
			t.Errorf("%s: error %v, want code %d", name, err, api.CodeInvalidParams)
		}
	}
	if err := b.client.ContentUnpin(ctx, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"); !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Errorf("unpin of an unpinned CID: %v, want code %d", err, api.CodeNotFound)
	}
}
