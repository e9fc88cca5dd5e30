// Package settlement will hold the Escrow interface, its Solana
// implementation (2-of-3 SPL Token multisig per requester, provider and
// arbiter) and an in-memory implementation with the same semantics, with
// one conformance suite for both.
//
// It holds no code yet: escrow comes after the market.
package settlement
