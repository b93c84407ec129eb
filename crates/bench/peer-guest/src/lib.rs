//! A context-aware binding policy written the way Kubewarden's SDK guides
//! one to: the request deserialised into the SDK's typed
//! `ValidationRequest`, the Binding into k8s-openapi's `Binding`, the node
//! fetched as a typed `Node` with the same host call (and field mask) as
//! pod-deletion-cost, one cost annotation from one node label, the whole
//! Binding serialised back. It is the benchmark's peer: the same job done
//! the common way, with none of the policy's rules, zones or placeholders.

use k8s_openapi::api::core::v1::{Binding, Node};
use kubewarden_policy_sdk::host_capabilities::kubernetes::{GetResourceRequest, get_resource};
use kubewarden_policy_sdk::request::ValidationRequest;
use kubewarden_policy_sdk::settings::Validatable;
use kubewarden_policy_sdk::wapc_guest::{self as guest, CallResult};
use kubewarden_policy_sdk::{accept_request, mutate_request, protocol_version_guest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

const COST: &str = "controller.kubernetes.io/pod-deletion-cost";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Settings {}

impl Validatable for Settings {
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    guest::register_function("validate", validate);
    guest::register_function("validate_settings", validate_settings);
    guest::register_function("protocol_version", protocol_version_guest);
}

fn validate(payload: &[u8]) -> CallResult {
    let request = ValidationRequest::<Settings>::new(payload)?;
    let mut binding: Binding = serde_json::from_value(request.request.object)?;
    let Some(node_name) = binding.target.name.clone() else {
        return accept_request();
    };
    let node: Node = get_resource(&GetResourceRequest {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node_name,
        namespace: None,
        disable_cache: false,
        field_masks: Some(BTreeSet::from(["metadata.labels".to_string()])),
    })?;
    let hybrid = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("eks.amazonaws.com/compute-type"))
        .is_some_and(|t| t == "hybrid");
    let cost = if hybrid { "-1000" } else { "0" };
    binding
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(COST.to_string(), cost.to_string());
    mutate_request(serde_json::to_value(&binding)?)
}

fn validate_settings(payload: &[u8]) -> CallResult {
    kubewarden_policy_sdk::validate_settings::<Settings>(payload)
}
