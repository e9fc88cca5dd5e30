// Package compute defines the Executor interface that runs a job's code in
// a sandbox on a provider, with one implementation per job kind in its
// subpackages (wasm: WebAssembly through wazero). Package computetest holds
// the conformance suite every executor passes.
package compute
