//! Evaluated bindings written as end-to-end case folders.

use cluster_sim as sim;
use serde_json::{Value, json};
use std::path::Path;

/// One evaluated binding as a case folder of the end-to-end table
/// (`e2e-tests/cases/` layout), checked by `e2e-runner cases --dir` and by
/// `e2e.bats` under kwctl.
pub(crate) fn export_case(
    dir: &Path,
    index: usize,
    settings: &Value,
    outcome: &sim::BindOutcome,
) -> Result<(), String> {
    let r = &outcome.response;
    let ns = outcome.request["namespace"].as_str().unwrap_or_default();
    let pod = outcome.request["name"].as_str().unwrap_or_default();
    let node = outcome.request["object"]["target"]["name"]
        .as_str()
        .unwrap_or_default();
    let case = dir.join(format!("{index:04}-{ns}-{pod}"));
    let patch = match &r.mutated_object {
        Some(m) => wasm_host::patch(&outcome.request["object"], m),
        None => Value::Null,
    };
    let mut expect = json!({
        "description": format!("simulated binding of {ns}/{pod} to {node}"),
        "allowed": r.accepted,
        "patch": patch,
        "auditAnnotations": r.audit_annotations.clone().unwrap_or_default(),
    });
    match r.warnings.as_deref() {
        None | Some([]) => expect["noWarnings"] = json!(true),
        Some(w) => expect["warnings"] = json!(w),
    }
    if let Some(m) = r.message.as_ref().filter(|_| !r.accepted) {
        expect["message"] = json!([m]);
    }
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": outcome.request,
    });
    let files = [
        ("request.json", pretty(&review)?),
        // JSON is YAML: kwctl and the runner read it as settings.
        ("settings.yml", pretty(settings)?),
        ("session.yml", sim::replay_session_yaml(&outcome.exchanges)),
        ("expect.json", pretty(&expect)?),
    ];
    std::fs::create_dir_all(&case).map_err(|e| format!("{}: {e}", case.display()))?;
    for (name, text) in files {
        let path = case.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn pretty(v: &Value) -> Result<String, String> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}
