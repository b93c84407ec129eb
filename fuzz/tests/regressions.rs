//! Replays every saved input through its harness on the stable toolchain:
//! `regressions/<target>/` holds inputs that once crashed (kept so the bug
//! stays fixed), `seeds/<target>/` the starting corpus.

use std::fs;
use std::path::Path;

fn replay(dir: &str, target: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("a readable directory entry").path();
        if path.file_name().is_some_and(|f| f == ".gitkeep") {
            continue;
        }
        let data = fs::read(&path).expect("a readable input");
        let outcome = std::panic::catch_unwind(|| target(&data));
        assert!(outcome.is_ok(), "{} fails again", path.display());
        n += 1;
    }
    n
}

#[test]
fn settings_inputs() {
    let n = replay(
        "regressions/settings",
        pod_deletion_cost_policy_fuzz::settings,
    ) + replay("seeds/settings", pod_deletion_cost_policy_fuzz::settings);
    assert!(n > 0, "no settings inputs found");
}

#[test]
fn evaluate_inputs() {
    let n = replay(
        "regressions/evaluate",
        pod_deletion_cost_policy_fuzz::evaluate,
    ) + replay("seeds/evaluate", pod_deletion_cost_policy_fuzz::evaluate);
    assert!(n > 0, "no evaluate inputs found");
}

#[test]
fn snapshot_inputs() {
    let n = replay(
        "regressions/snapshot",
        pod_deletion_cost_policy_fuzz::simulator::snapshot,
    ) + replay(
        "seeds/snapshot",
        pod_deletion_cost_policy_fuzz::simulator::snapshot,
    );
    assert!(n > 0, "no snapshot inputs found");
}

#[cfg(feature = "policy-config")]
#[test]
fn policy_config_inputs() {
    let n = replay(
        "regressions/policy_config",
        pod_deletion_cost_policy_fuzz::simulator::policy_config,
    ) + replay(
        "seeds/policy_config",
        pod_deletion_cost_policy_fuzz::simulator::policy_config,
    );
    assert!(n > 0, "no policy_config inputs found");
}

/// What a corpus exercises, for the figures in README.md:
/// `cargo test --test regressions -- --ignored --nocapture`.
#[test]
#[ignore]
fn corpus_outcomes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/evaluate");
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for entry in fs::read_dir(dir).expect("a corpus/evaluate directory") {
        // A running fuzzer replaces inputs as it reduces them.
        let Ok(data) = fs::read(entry.expect("an entry").path()) else {
            continue;
        };
        *counts.entry("inputs").or_default() += 1;
        let Some((payload, answers)) = pod_deletion_cost_policy_fuzz::decode(&data) else {
            *counts.entry("undecodable").or_default() += 1;
            continue;
        };
        let resp = pod_deletion_cost_policy_fuzz::run(&payload, answers);
        let audit = resp.audit_annotations.unwrap_or_default();
        let outcome = if !resp.accepted {
            "rejected"
        } else if resp.mutated_object.is_some() {
            "annotated"
        } else if resp.warnings.is_some() {
            "warned"
        } else {
            "left unchanged"
        };
        *counts.entry(outcome).or_default() += 1;
        if audit.contains_key("rank") {
            *counts.entry("annotated with a rank").or_default() += 1;
        }
        if audit.get("siblings").is_some_and(|n| n != "0") {
            *counts.entry("with siblings").or_default() += 1;
        }
    }
    println!("{counts:#?}");
}
