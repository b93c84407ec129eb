//! `kubectl deletion-cost simulate --export-cases` against the case table:
//! every binding the simulator evaluates, written as a case folder, gives
//! the same answer when evaluated alone from its kwctl replay session (the
//! form `e2e.bats` runs under the real kwctl), and the patch it expects
//! carries the cost the report predicts. It lives here, beside the table it
//! feeds, so the tool does not depend on the test crate.

use cluster_sim::COST_ANNOTATION;
use cluster_sim::snapshot::{Snapshot, parse_timestamp};
use e2e_tests::cases::{self, Case};
use kubectl_deletion_cost::{Options, PolicyConfig, Report};
use rstest::rstest;
use std::path::PathBuf;
use wasm_host::Policy;

/// Shortly after the bundled snapshots were taken, as the tool's own
/// tests read them.
const NOW: &str = "2026-11-22T00:00:00Z";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[rstest]
#[case::eks("eks-hybrid-bursting.yaml", &["eks-hybrid/cluster.json"])]
#[case::ack("ack-zones-placeholders.yaml", &["ack-zones/nodes.json", "ack-zones/pods.json"])]
fn predictions_replay_as_kwctl_sessions(#[case] example_policy: &str, #[case] files: &[&str]) {
    let policy = Policy::load(&wasm_host::default_policy_wasm()).unwrap();
    let config = PolicyConfig::load(Some(&root().join("examples").join(example_policy))).unwrap();
    let snapshots = root().join("crates/kubectl-deletion-cost/snapshots");
    let paths: Vec<PathBuf> = files.iter().map(|f| snapshots.join(f)).collect();
    let snapshot = Snapshot::load(&paths).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "simulate-export-{}-{example_policy}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let options = Options {
        now: Some(parse_timestamp(NOW).unwrap()),
        export_cases: Some(dir.clone()),
        ..Default::default()
    };
    let report = kubectl_deletion_cost::simulate(&policy, &snapshot, &config, &options).unwrap();
    let exported = cases::load_all(&dir).unwrap();
    assert_eq!(exported.len(), report.snapshot.evaluated);
    for case in &exported {
        let failures = case.run(&policy).unwrap();
        assert!(failures.is_empty(), "{}: {failures:?}", case.name);
        check_cost_matches(case, &report);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn check_cost_matches(case: &Case, report: &Report) {
    let pod = case.request["name"].as_str().unwrap();
    let binding = report.bindings.iter().find(|b| b.pod == pod).unwrap();
    let want = binding.annotations.get(COST_ANNOTATION).cloned();
    let patched = case
        .expect
        .patch
        .as_ref()
        .and_then(|p| p.as_array())
        .and_then(|ops| ops.first())
        .and_then(|op| op["value"].get(COST_ANNOTATION))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    assert_eq!(patched, want, "{}", case.name);
}
