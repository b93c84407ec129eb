//! A real Kubernetes control plane on loopback, with the real policy-server
//! as this policy's webhook: what `make kube`, `make cluster`, the cluster
//! stories and the burst benchmark run.
//!
//! - [`binaries`]: where the Kubernetes programs are, and building them from
//!   the Go modules pinned in `kube/`;
//! - [`pki`]: the certificates and keys a cluster needs, made fresh;
//! - [`cluster`]: etcd, kube-apiserver, kube-controller-manager,
//!   kube-scheduler and kwok, started and stopped;
//! - [`webhook`]: policy-server serving the policy over TLS, registered as
//!   the Kubewarden controller registers a ClusterAdmissionPolicy;
//! - [`policy_server`]: starting policy-server against the cluster, and
//!   policy-server serving plain HTTP for tests that post AdmissionReviews
//!   to it directly ([`http`] is their client);
//! - [`fixture`]: the fixture cluster of those tests and the load tools,
//!   created through the API.

pub mod binaries;
pub mod cluster;
pub mod fixture;
pub mod http;
pub mod nodes;
pub mod pki;
pub mod policy_server;
pub mod process;
pub mod webhook;
pub mod workload;

pub use binaries::Binaries;
pub use cluster::ControlPlane;
