//! The real policy-server run against a Kubernetes API stand-in on
//! loopback: the stand-in (`kube_api`), policy-server started in front of
//! it (`policy_server`) and the fixture cluster it serves (`rig_cluster`).
//! The end-to-end tests drive it in process; the `policy-server-rig`
//! binary serves it from a shell and under `make load`.

pub mod kube_api;
pub mod policy_server;
pub mod rig_cluster;
