//! Kubewarden policy that gives every pod a
//! `controller.kubernetes.io/pod-deletion-cost` when it is bound to a node.
//!
//! This file wires the waPC entry points, with the `validate_settings`
//! answer and the error-text helpers they share; see `evaluate` for the
//! flow.

// A panic traps the wasm instance: policy-server answers with an opaque
// error instead of the policy's own warning, and with `failurePolicy: Fail`
// the pod cannot be scheduled. Every failure must be a value instead.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod binding;
pub mod cluster;
pub mod decision;
pub mod evaluate;
pub mod json;
pub mod objects;
pub mod scan;
pub mod selector;
pub mod settings;
pub mod view;

use kubewarden_policy_sdk::settings::SettingsValidationResponse;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use crate::cluster::WapcHost;
    use kubewarden_policy_sdk::wapc_guest as guest;

    #[unsafe(no_mangle)]
    pub extern "C" fn wapc_init() {
        guest::register_function("validate", validate);
        guest::register_function("validate_settings", validate_settings);
        guest::register_function(
            "protocol_version",
            kubewarden_policy_sdk::protocol_version_guest,
        );
    }

    fn validate(payload: &[u8]) -> guest::CallResult {
        Ok(crate::evaluate::evaluate(payload, &mut WapcHost).to_json())
    }

    fn validate_settings(payload: &[u8]) -> guest::CallResult {
        Ok(serde_json::to_vec(&crate::validate_settings(payload))?)
    }
}

/// The `validate_settings` answer. A settings document that does not even
/// parse is reported as invalid (with the path of the bad field) rather
/// than as a host error, so policy-server shows the reason.
pub fn validate_settings(payload: &[u8]) -> SettingsValidationResponse {
    match settings::parse(payload) {
        Ok(_) => SettingsValidationResponse {
            valid: true,
            message: None,
        },
        Err(e) => SettingsValidationResponse {
            valid: false,
            message: Some(e),
        },
    }
}

/// The cluster's own words from a failed host call. wapc-guest prefixes
/// every host error with "Host error: " and policy-evaluator (kwctl and
/// policy-server alike) with "Callback evaluation failure: "; neither tells
/// an administrator anything.
pub fn host_error_text(text: &str) -> &str {
    let text = text.strip_prefix("Host error: ").unwrap_or(text);
    text.strip_prefix("Callback evaluation failure: ")
        .unwrap_or(text)
}

/// serde_json's message without the "at line 1 column 42" suffix, which
/// means nothing for JSON that was produced by a program.
pub(crate) fn json_error_text(e: &impl std::fmt::Display) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg.get(..i).unwrap_or(&msg).to_string(),
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    #[rstest]
    #[case::both_prefixes(
        "Host error: Callback evaluation failure: nodes \"n1\" not found",
        "nodes \"n1\" not found"
    )]
    #[case::host_prefix("Host error: denied", "denied")]
    #[case::callback_prefix("Callback evaluation failure: denied", "denied")]
    #[case::no_prefix("nodes \"n1\" is forbidden", "nodes \"n1\" is forbidden")]
    fn host_errors_keep_only_the_clusters_words(#[case] sent: &str, #[case] kept: &str) {
        assert_eq!(super::host_error_text(sent), kept);
    }
}
