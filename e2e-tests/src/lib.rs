//! End-to-end tests support: the case table (`cases/<case>/` folders with
//! request, settings, kwctl replay session and expected answer), and the
//! real policy-server run against a Kubernetes API stand-in on loopback.

pub mod cases;
pub mod kube_api;
pub mod latency;
pub mod policy_server;
pub mod rig_cluster;
