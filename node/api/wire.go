package api

import (
	"encoding/json"
	"fmt"
)

// Version is the JSON-RPC protocol version every message carries.
const Version = "2.0"

// HTTP paths served by the daemon.
const (
	// PathRPC takes JSON-RPC requests (single or batch) as HTTP POST.
	PathRPC = "/v1/rpc"
	// PathWebSocket upgrades to a WebSocket carrying requests, responses and
	// subscription notifications.
	PathWebSocket = "/v1/ws"
	// PathContentAdd takes a file's bytes, or a folder as a tar archive,
	// as an HTTP POST body, and answers a ContentAddResult.
	PathContentAdd = "/v1/content/add"
	// PathContentCat answers HTTP GET with a file's bytes.
	PathContentCat = "/v1/content/cat"
	// PathContentGet answers HTTP GET with a file's bytes, or a folder as
	// a tar archive; the ContentKindHeader says which.
	PathContentGet = "/v1/content/get"
)

// Headers of the content stream routes.
const (
	// ContentKindHeader says what a content download holds: "file" or
	// "folder".
	ContentKindHeader = "Cyxwiz-Content-Kind"
	// ContentSizeHeader gives the bytes a download's files hold in all.
	ContentSizeHeader = "Cyxwiz-Content-Size"
)

// Files in a repo that clients read to find and authenticate to the daemon.
const (
	// AddrFile holds the API's host:port while a daemon runs.
	AddrFile = "api"
	// TokenFile holds the bearer token, readable by its owner only.
	TokenFile = "api-token"
)

// NotificationMethod is the method of every subscription notification.
const NotificationMethod = "subscription"

// Request is one JSON-RPC request. A request without an ID is a notification
// and gets no response.
type Request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// Response is one JSON-RPC response: Result or Error, never both.
type Response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// Notification is a message from the server about a subscription.
type Notification struct {
	JSONRPC string             `json:"jsonrpc"`
	Method  string             `json:"method"`
	Params  NotificationParams `json:"params"`
}

// NotificationParams carries one event of a subscription.
type NotificationParams struct {
	Subscription string          `json:"subscription"`
	Result       json.RawMessage `json:"result"`
}

// Error codes. The -327xx and -326xx codes are JSON-RPC's own; the -320xx
// codes are CyxWiz's and stable across versions.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternal       = -32603

	// CodeFailed: the operation was valid but did not succeed.
	CodeFailed = -32000
	// CodeNotFound: the named object (peer, job, CID...) does not exist.
	CodeNotFound = -32001
	// CodeUnreachable: a peer could not be reached.
	CodeUnreachable = -32002
	// CodeNeedWebSocket: subscriptions are only served over the WebSocket path.
	CodeNeedWebSocket = -32003
	// CodeTooLarge: the request is larger than the server accepts.
	CodeTooLarge = -32004
	// CodeUnauthorized: the bearer token is missing or wrong (HTTP 401).
	CodeUnauthorized = -32005
	// CodeForbidden: the request came from a foreign Origin or Host (HTTP 403).
	CodeForbidden = -32006
)

// Error is a JSON-RPC error object. It implements error.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// Error returns the message with its code.
func (e *Error) Error() string { return fmt.Sprintf("%s (code %d)", e.Message, e.Code) }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
