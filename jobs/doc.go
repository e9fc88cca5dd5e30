// Package jobs runs the market over the network: a requester announces a
// job on gossipsub, collects signed bids over direct streams, awards the
// best and waits for the provider's ack and signed result; a provider
// decides with its bid strategy, fetches the inputs, runs the job in a
// sandboxed executor, streams its logs and delivers outputs by CID. Both
// sides keep every job in an embedded store, so a restart loses none.
//
// The decisions themselves (validation, scoring, strategies, the state
// machine) live in package market; this package moves the messages.
package jobs
