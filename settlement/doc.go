// Package settlement defines job escrow: funds locked when a job is
// awarded, released to the provider when the requester accepts the
// result, refunded after the deadline, with a dispute path through an
// arbiter; or split, in one transaction, between the provider, paid an
// exact amount, and the requester, who gets the rest back (Split,
// ArbiterSplit). The design is a 2-of-3 multisig of requester, provider and
// arbiter holding one vault per job (see docs/settlement.md); package
// solana implements it on Solana.
//
// Escrow is the interface; package memledger implements it on an
// in-memory ledger with the same rules, for the tests of other packages;
// package settlementtest is the conformance suite every implementation
// passes.
package settlement
