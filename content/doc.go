// Package content stores and moves datasets, programs, models and results
// as IPFS blocks: a pack-file block store in the repo, bitswap on the node's
// libp2p host, UnixFS import and export (default chunker, CIDv1, raw
// leaves), recursive pins with garbage collection, and providing of root
// CIDs to the DHT.
//
// Blocks are verified against their hash when read; a block that no longer
// matches is deleted and fetched again, never served. Fetches pull the whole
// DAG in parallel from every provider bitswap finds before anything is read.
package content
