package rpc

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/gorilla/websocket"
)

func TestStrictRequests(t *testing.T) {
	_, hs := newTestServer(t, 1<<20)
	const head = `"jsonrpc":"2.0","id":1,`
	tests := []struct {
		name     string
		body     string
		wantCode int
		wantMsg  string
		wantID   string
	}{
		// The request object.
		{"duplicate method", `{` + head + `"method":"test.echo","method":"test.fail"}`, api.CodeInvalidRequest, `duplicate member "method"`, "1"},
		{"duplicate method, escaped", `{` + head + `"method":"test.echo","\u006dethod":"test.fail"}`, api.CodeInvalidRequest, `duplicate member "method"`, "1"},
		{"duplicate params", `{` + head + `"method":"test.echo","params":{"text":"a","times":1},"params":{}}`, api.CodeInvalidRequest, `duplicate member "params"`, "1"},
		{"duplicate id", `{"jsonrpc":"2.0","id":1,"id":2,"method":"test.echo"}`, api.CodeInvalidRequest, `duplicate member "id"`, "null"},
		{"Method", `{` + head + `"Method":"test.fail","method":"test.echo"}`, api.CodeInvalidRequest, `unknown member "Method" (names are case-sensitive: "method")`, "1"},
		{"PARAMS", `{` + head + `"method":"test.echo","PARAMS":{"text":"a","times":1}}`, api.CodeInvalidRequest, `unknown member "PARAMS"`, "1"},
		{"JSONRPC", `{"JSONRPC":"2.0","id":1,"method":"test.echo"}`, api.CodeInvalidRequest, `unknown member "JSONRPC"`, "1"},
		{"ID", `{"jsonrpc":"2.0","ID":1,"method":"test.echo"}`, api.CodeInvalidRequest, `unknown member "ID"`, "null"},
		{"duplicate inside another member", `{` + head + `"method":"test.echo","extra":{"a":1,"a":2}}`, api.CodeInvalidRequest, `duplicate key "extra.a"`, "1"},

		// Params, at the top and nested.
		{"duplicate param", `{` + head + `"method":"test.echo","params":{"text":"a","times":1,"text":"b"}}`, api.CodeInvalidParams, `duplicate key "text"`, "1"},
		{"duplicate param of a method without params", `{` + head + `"method":"test.fail","params":{"x":1,"x":2}}`, api.CodeInvalidParams, `duplicate key "x"`, "1"},
		{"duplicate nested param", `{` + head + `"method":"test.nested","params":{"inputs":[{"text":"a"},{"text":"a","times":1,"text":"b"}]}}`, api.CodeInvalidParams, `duplicate key "inputs[1].text"`, "1"},
		{"duplicate map key", `{` + head + `"method":"test.nested","params":{"meta":{"k":"1","k":"2"}}}`, api.CodeInvalidParams, `duplicate key "meta.k"`, "1"},
		{"Text", `{` + head + `"method":"test.echo","params":{"Text":"a","times":1}}`, api.CodeInvalidParams, `unknown field "Text" (names are case-sensitive: "text")`, "1"},
		{"Cid", `{` + head + `"method":"test.nested","params":{"Cid":"x"}}`, api.CodeInvalidParams, `unknown field "Cid" (names are case-sensitive: "cid")`, "1"},
		{"nested TIMES", `{` + head + `"method":"test.nested","params":{"inner":{"TIMES":2}}}`, api.CodeInvalidParams, `unknown field "inner.TIMES" (names are case-sensitive: "times")`, "1"},
		{"folded long s", `{` + head + `"method":"test.echo","params":{"text":"a","timeſ":2}}`, api.CodeInvalidParams, `unknown field "timeſ" (names are case-sensitive: "times")`, "1"},
		{"nested unknown", `{` + head + `"method":"test.nested","params":{"inputs":[{"txt":"a"}]}}`, api.CodeInvalidParams, `unknown field "inputs[0].txt"`, "1"},
		{"duplicate subscription param", `{` + head + `"method":"test.ticks","params":{"n":1,"n":2}}`, api.CodeInvalidParams, `duplicate key "n"`, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, hs, tt.body, nil)
			var resp api.Response
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if status != http.StatusOK || resp.Error == nil || resp.Error.Code != tt.wantCode || !strings.Contains(resp.Error.Message, tt.wantMsg) || string(resp.ID) != tt.wantID {
				t.Fatalf("got %d %s, want code %d with %q and id %s", status, body, tt.wantCode, tt.wantMsg, tt.wantID)
			}
		})
	}
	if status, body := post(t, hs, `{"jsonrpc":"2.0","id":"x","method":"test.nested","params":{"cid":"c","inputs":[{"text":"a"},{"text":"b"}],"meta":{"k":"1","K":"2"}}}`, nil); status != 200 || body != `{"jsonrpc":"2.0","id":"x","result":2}` {
		t.Fatalf("honest call after the refused ones: %d %s", status, body)
	}
}

func TestStrictNotificationsDoNotRun(t *testing.T) {
	s, hs := newTestServer(t, 1<<20)
	for _, body := range []string{
		`{"jsonrpc":"2.0","method":"test.touch","params":{"text":"a","text":"b"}}`,
		`{"jsonrpc":"2.0","method":"test.touch","params":{"Text":"a"}}`,
		`[{"jsonrpc":"2.0","method":"test.touch","params":{"text":"a","text":"b"}}]`,
	} {
		if status, reply := post(t, hs, body, nil); status != http.StatusNoContent || reply != "" {
			t.Errorf("notification %s: got %d %q, want 204 and no body", body, status, reply)
		}
	}
	// An honest notification runs, and is the only one that did.
	if status, _ := post(t, hs, `{"jsonrpc":"2.0","method":"test.touch","params":{"text":"honest"}}`, nil); status != http.StatusNoContent {
		t.Fatalf("honest notification: status %d", status)
	}
	select {
	case got := <-s.touched:
		if got != "honest" {
			t.Fatalf("test.touch ran with %q, want only the honest notification", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the honest notification did not run")
	}
}

func TestStrictBatch(t *testing.T) {
	_, hs := newTestServer(t, 1<<20)
	status, body := post(t, hs, `[
		{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"a","times":1}},
		{"jsonrpc":"2.0","id":2,"method":"test.echo","method":"test.fail"},
		{"jsonrpc":"2.0","id":3,"method":"test.echo","params":{"Text":"a"}},
		{"jsonrpc":"2.0","id":4,"method":"test.nested","params":{"inputs":[{"text":"a","text":"b"}]}},
		{"jsonrpc":"2.0","id":5,"Params":{},"method":"test.echo"},
		{"jsonrpc":"2.0","id":6,"method":"test.echo","params":{"text":"b","times":1}}
	]`, nil)
	var resps []api.Response
	if err := json.Unmarshal([]byte(body), &resps); status != http.StatusOK || err != nil {
		t.Fatalf("batch: %d %s: %v", status, body, err)
	}
	want := []struct {
		id     string
		result string
		code   int
	}{
		{"1", `"a"`, 0},
		{"2", "", api.CodeInvalidRequest},
		{"3", "", api.CodeInvalidParams},
		{"4", "", api.CodeInvalidParams},
		{"5", "", api.CodeInvalidRequest},
		{"6", `"b"`, 0},
	}
	if len(resps) != len(want) {
		t.Fatalf("got %d responses, want %d: %s", len(resps), len(want), body)
	}
	for i, w := range want {
		r := resps[i]
		gotCode := 0
		if r.Error != nil {
			gotCode = r.Error.Code
		}
		if string(r.ID) != w.id || string(r.Result) != w.result || gotCode != w.code {
			t.Errorf("response %d = id %s result %s code %d, want id %s result %s code %d", i, r.ID, r.Result, gotCode, w.id, w.result, w.code)
		}
	}
}

func TestStrictOverWebSocket(t *testing.T) {
	_, hs := newTestServer(t, 1<<20)
	conn, _, err := dialWS(t, hs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, tt := range []struct {
		msg  string
		code int
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"test.ticks","Method":"test.echo"}`, api.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":2,"method":"test.ticks","params":{"n":1,"n":2}}`, api.CodeInvalidParams},
	} {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(tt.msg)); err != nil {
			t.Fatal(err)
		}
		var resp api.Response
		if err := conn.ReadJSON(&resp); err != nil || resp.Error == nil || resp.Error.Code != tt.code {
			t.Fatalf("%s: got %+v %v, want code %d", tt.msg, resp, err, tt.code)
		}
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(echoBody)); err != nil {
		t.Fatal(err)
	}
	var resp api.Response
	if err := conn.ReadJSON(&resp); err != nil || string(resp.Result) != `"ok"` {
		t.Fatalf("honest call on the same socket: %+v %v", resp, err)
	}
}
