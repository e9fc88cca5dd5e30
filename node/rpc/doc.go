// Package rpc serves JSON-RPC 2.0 over HTTP POST and WebSocket for the
// local API: method dispatch, batches, subscriptions, and the guards of a
// local API that is not a public server (bearer token compared in constant
// time, Host and Origin checks, bounded request sizes, read, write and idle
// timeouts, a bound on open connections, WebSocket keepalives). Requests
// are decoded strictly: a repeated key, or a name that differs from a known
// one only in case, is refused.
//
// Wire types and error codes come from package api; the methods themselves
// are registered by the node.
package rpc
