package market

import (
	"fmt"
	"slices"
)

// State is where a job stands. The requester and the provider each keep
// their own copy of a job's state.
type State string

// Job states.
const (
	// Requester side.
	StateSubmitted State = "submitted" // spec accepted, inputs being added
	StateBidding   State = "bidding"   // announced, collecting bids
	StateAwarded   State = "awarded"   // award sent, waiting for the ack
	StateRunning   State = "running"   // acked, the provider works on it
	StateFetching  State = "fetching"  // result in, outputs being fetched

	// Provider side.
	StateAccepted  State = "accepted"  // award acked, inputs being fetched
	StateExecuting State = "executing" // in the sandbox
	StateReporting State = "reporting" // result signed, being delivered

	// Both sides; final.
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

var transitions = map[State][]State{
	StateSubmitted: {StateBidding, StateFailed, StateCancelled},
	// A round without bids, a refused award or a failed provider sends the
	// job back to bidding: a new auction, not a lost job.
	StateBidding:  {StateAwarded, StateBidding, StateFailed, StateCancelled},
	StateAwarded:  {StateRunning, StateBidding, StateFailed, StateCancelled},
	StateRunning:  {StateFetching, StateBidding, StateFailed, StateCancelled},
	StateFetching: {StateSucceeded, StateBidding, StateFailed, StateCancelled},

	// A job that fails before it runs (inputs, cancel) reports at once.
	StateAccepted:  {StateExecuting, StateReporting, StateFailed, StateCancelled},
	StateExecuting: {StateReporting, StateFailed, StateCancelled},
	StateReporting: {StateSucceeded, StateFailed, StateCancelled},
}

// Final reports whether no transition leaves s.
func (s State) Final() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// CanMove reports whether a job may go from one state to another.
func CanMove(from, to State) error {
	if slices.Contains(transitions[from], to) {
		return nil
	}
	return fmt.Errorf("job cannot go from %s to %s", from, to)
}
