//! A waPC guest that does the least a mutating, context-aware binding
//! policy can do: the host calls the policy makes, then a fixed accept
//! carrying the annotated Binding. It parses nothing. The benchmark reports
//! the policy as a ratio to this module, instantiated afresh per request as
//! policy-server does, so what remains is the policy's own cost.
//!
//! Modes, told apart from the payload's last bytes (where the settings
//! are, after the request) without reading the rest: one node lookup for a
//! plain binding; one node lookup plus one sibling list when the settings
//! turn zone balance on; and with `"readPod":"NAME"` in the settings as
//! well, the uncached read of pod `shop/NAME` between the two, which the
//! policy makes whenever balance or placeholders are set (SPEC §4 step 2).

use wapc_guest::{CallResult, host_call, register_function};

const NODE_REQUEST: &[u8] = br#"{"api_version":"v1","kind":"Node","name":"mi-0ebe45e33a53e04f2","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}"#;
const ANNOTATED: &[u8] = br#"{"accepted":true,"message":null,"code":null,"mutated_object":{"kind":"Binding","apiVersion":"v1","metadata":{"name":"nginx-deployment-7474978d4f-9wbgw","namespace":"default","uid":"5f0c2a34-0b7e-4c1e-9b1a-6a4f3f0d2c11","creationTimestamp":null,"annotations":{"controller.kubernetes.io/pod-deletion-cost":"1"}},"target":{"kind":"Node","name":"mi-0ebe45e33a53e04f2"}},"audit_annotations":null,"warnings":null}"#;

const BALANCE_NODE_REQUEST: &[u8] = br#"{"api_version":"v1","kind":"Node","name":"cn-beijing.192.168.2.17","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}"#;
const SIBLINGS_REQUEST: &[u8] = br#"{"api_version":"v1","kind":"Pod","namespace":"shop","label_selector":"app=web","field_selector":null,"field_masks":["spec.nodeName","spec.priority","spec.priorityClassName","status.phase"]}"#;
const BALANCED: &[u8] = br#"{"accepted":true,"message":null,"code":null,"mutated_object":{"kind":"Binding","apiVersion":"v1","metadata":{"name":"web-6d9c7b8f5d-new","namespace":"shop","uid":"5f0c2a34-2d9f-4c1e-9b1a-6a4f3f0d2c11","creationTimestamp":null,"annotations":{"controller.kubernetes.io/pod-deletion-cost":"-3","pod-deletion-cost.kubewarden.io/zone":"k","pod-deletion-cost.kubewarden.io/rank":"3"}},"target":{"kind":"Node","name":"cn-beijing.192.168.2.17"}},"audit_annotations":null,"warnings":null}"#;

const POD_READ: &[u8] = br#""readPod":""#;

/// How far from the end the settings' balance switch is looked for.
const SETTINGS_TAIL: usize = 256;
const BALANCE_ON: &[u8] = br#""balance":true"#;

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", validate_settings);
    register_function("protocol_version", protocol_version);
}

fn validate(payload: &[u8]) -> CallResult {
    if balance_on(payload) {
        host_call(
            "kubewarden",
            "kubernetes",
            "get_resource",
            BALANCE_NODE_REQUEST,
        )?;
        if let Some(pod) = pod_to_read(payload) {
            host_call(
                "kubewarden",
                "kubernetes",
                "get_resource",
                &pod_request(pod),
            )?;
        }
        host_call(
            "kubewarden",
            "kubernetes",
            "list_resources_by_namespace",
            SIBLINGS_REQUEST,
        )?;
        Ok(BALANCED.to_vec())
    } else {
        host_call("kubewarden", "kubernetes", "get_resource", NODE_REQUEST)?;
        Ok(ANNOTATED.to_vec())
    }
}

fn balance_on(payload: &[u8]) -> bool {
    settings_tail(payload)
        .windows(BALANCE_ON.len())
        .any(|w| w == BALANCE_ON)
}

fn settings_tail(payload: &[u8]) -> &[u8] {
    &payload[payload.len().saturating_sub(SETTINGS_TAIL)..]
}

/// The pod name after `"readPod":"`, up to the next quote.
fn pod_to_read(payload: &[u8]) -> Option<&[u8]> {
    let tail = settings_tail(payload);
    let at = tail.windows(POD_READ.len()).position(|w| w == POD_READ)? + POD_READ.len();
    let rest = &tail[at..];
    Some(&rest[..rest.iter().position(|&b| b == b'"')?])
}

fn pod_request(name: &[u8]) -> Vec<u8> {
    [
        &br#"{"api_version":"v1","kind":"Pod","name":""#[..],
        name,
        br#"","namespace":"shop","disable_cache":true,"field_masks":["spec.priority","spec.priorityClassName"]}"#,
    ]
    .concat()
}

fn validate_settings(_payload: &[u8]) -> CallResult {
    Ok(br#"{"valid":true}"#.to_vec())
}

fn protocol_version(_payload: &[u8]) -> CallResult {
    Ok(br#""v1""#.to_vec())
}
