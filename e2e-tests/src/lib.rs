//! End-to-end support for the pod-deletion-cost policy: the compiled
//! `policy.wasm` driven through waPC in wasmtime, as policy-server runs it.

pub mod cases;
pub mod engine;
pub mod kube_api;
pub mod latency;
pub mod memory;
pub mod policy_server;
pub mod replay;
pub mod rig_cluster;
pub mod sim;
pub mod snapshot;
pub mod whatif;
