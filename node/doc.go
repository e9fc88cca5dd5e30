// Package node is the composition root of the CyxWiz daemon: it opens the
// repo and runs the daemon's subsystems (the libp2p host, the content
// store, the job store and engine, the capacity advertiser, the local
// JSON-RPC API) as services of one lifecycle, started in order and closed
// in reverse. It is the only package that imports all the others.
//
// The API contract and its Go client live in the api subpackage; the
// JSON-RPC transport in the rpc subpackage; the in-process devnet, with
// its local ledger, in the devnet subpackage.
package node
