//! End-to-end support for the pod-deletion-cost policy: the compiled
//! `policy.wasm` driven through waPC in wasmtime, as policy-server runs it.

pub mod cases;
pub mod engine;
pub mod memory;
pub mod rehydrate;
pub mod replay;
pub mod sim;
pub mod snapshot;
pub mod whatif;
