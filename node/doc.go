// Package node is the composition root of the CyxWiz daemon: it opens the
// repo, builds the libp2p host, serves the local JSON-RPC API and closes
// everything in reverse order. It is the only package that imports all the
// others.
//
// The API contract and its Go client live in the api subpackage; the
// JSON-RPC transport in the rpc subpackage.
package node
