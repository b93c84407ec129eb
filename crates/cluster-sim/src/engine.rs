//! The cluster model driving the real `policy.wasm`: it answers the host
//! calls, and a bind goes through the policy as the scheduler's would.
//! Behind the `engine` feature, so that the snapshot reader can be built
//! (and fuzzed) without wasmtime.

use crate::{COST_ANNOTATION, Cluster, Exchange};
use serde_json::Value;

impl wasm_host::HostResponder for Cluster {
    fn call(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.answer(operation, payload)
    }
}

/// What one bind through the policy did.
#[derive(Debug, Clone)]
pub struct BindOutcome {
    pub response: wasm_host::ValidationResponse,
    pub exchanges: Vec<Exchange>,
    pub request: Value,
}

impl BindOutcome {
    pub fn cost(&self) -> Option<&str> {
        self.response
            .mutated_object
            .as_ref()?
            .get("metadata")?
            .get("annotations")?
            .get(COST_ANNOTATION)?
            .as_str()
    }
}

/// Binds `pod` to `node` as the scheduler would: the Binding goes through
/// the policy, and when admitted the pod takes its annotations and runs.
/// A rejected binding leaves the pod pending.
pub fn bind(
    policy: &wasm_host::Policy,
    cluster: &mut Cluster,
    settings: &Value,
    namespace: &str,
    pod: &str,
    node: &str,
) -> anyhow::Result<BindOutcome> {
    let request = cluster.binding_request(namespace, pod, node);
    cluster.exchanges.clear();
    let (response, back) = policy.validate(&request, settings, std::mem::take(cluster))?;
    *cluster = back;
    let exchanges = cluster.take_exchanges();
    if response.accepted {
        cluster.complete_bind(namespace, pod, node, response.mutated_object.as_ref());
    }
    Ok(BindOutcome {
        response,
        exchanges,
        request,
    })
}
