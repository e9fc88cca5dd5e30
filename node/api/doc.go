// Package api is the contract of the local JSON-RPC API and a Go client for
// it: wire types, method names, parameter and result types, error codes.
//
// It imports no libp2p package, so that the CLI, scripts and dashboards
// stay light. A test guards that.
package api
