//! A waPC guest that does the least a context-aware binding policy can do:
//! it reads nothing of the request, makes the same node host call as the
//! policy, and returns a fixed accept. Benchmarks report the policy as a
//! ratio to this module, so the engine's own cost is visible.

use wapc_guest::{CallResult, host_call, register_function};

const NODE_REQUEST: &[u8] = br#"{"api_version":"v1","kind":"Node","name":"mi-0ebe45e33a53e04f2","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}"#;
const ACCEPT: &[u8] = br#"{"accepted":true,"message":null,"code":null,"mutated_object":null,"audit_annotations":null,"warnings":null}"#;

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", validate_settings);
    register_function("protocol_version", protocol_version);
}

fn validate(_payload: &[u8]) -> CallResult {
    host_call("kubewarden", "kubernetes", "get_resource", NODE_REQUEST)?;
    Ok(ACCEPT.to_vec())
}

fn validate_settings(_payload: &[u8]) -> CallResult {
    Ok(br#"{"valid":true}"#.to_vec())
}

fn protocol_version(_payload: &[u8]) -> CallResult {
    Ok(br#""v1""#.to_vec())
}
