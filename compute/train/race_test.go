//go:build race

package train

// raceEnabled: the race detector's shadow memory makes a worker's
// resident memory several times what the trainer allocates.
const raceEnabled = true
