// Package compute will hold the Executor interface and its sandboxed
// implementations (WASM through wazero, the built-in ML training runtime),
// and the hardware inventory that feeds capacity records.
//
// It holds no code yet: executors come with the market.
package compute
