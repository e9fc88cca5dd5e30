// Package market will hold the pure decision logic of the compute market:
// capacity records, job specs, bid strategies, bid scoring, award and ack,
// and the job state machine. It is to import no network or chain package,
// so that every decision can be tested with tables.
//
// It holds no code yet: the daemon's swarm, content store and API come
// first, the market is built on them.
package market
