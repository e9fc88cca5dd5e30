// Package market holds the decision logic of the compute market: job
// specs and their validation, signed messages (capacity records, job
// announcements, bids, awards, acks, results), bid strategies, bid scoring,
// reputation, and the job state machine.
//
// It imports no network or chain package: every decision can be tested
// with tables. A test guards that. Peer identities and signatures use
// libp2p's core crypto and peer types only.
package market
