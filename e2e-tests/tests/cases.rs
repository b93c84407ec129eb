//! Every case folder under `e2e-tests/cases/`, through the compiled policy.

use e2e_tests::cases;
use wasm_host::Policy;

#[test]
fn every_case_passes() {
    let wasm = wasm_host::default_policy_wasm();
    let policy = Policy::load(&wasm).unwrap_or_else(|e| panic!("{e:#}"));
    let all = cases::load_all(&cases::default_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(all.len() >= 30, "the case table shrank to {}", all.len());
    let mut failed = Vec::new();
    for case in &all {
        let failures = case.run(&policy).unwrap_or_else(|e| vec![format!("{e:#}")]);
        if failures.is_empty() {
            println!("ok   {}", case.name);
        } else {
            println!(
                "FAIL {}: {}\n  {}",
                case.name,
                case.expect.description,
                failures.join("\n  ")
            );
            failed.push(case.name.clone());
        }
    }
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}

/// A session with a wrong field mask, or one exchange too few, must fail the
/// case with a diff: the table is only as good as its ability to fail.
#[test]
fn broken_sessions_fail_the_case() {
    let policy =
        Policy::load(&wasm_host::default_policy_wasm()).unwrap_or_else(|e| panic!("{e:#}"));
    let mut case =
        cases::Case::load(&cases::default_dir().join("hybrid-node-default-settings")).unwrap();
    let good = case.session.clone();

    let mut wrong_mask = good.clone();
    wrong_mask[0]
        .request
        .insert("field_masks".into(), serde_json::json!(["metadata"]));
    case.session = wrong_mask;
    let failures = case.run(&policy).unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f.contains("field_masks: expected [\"metadata\"], got [\"metadata.labels\"]")),
        "{failures:#?}"
    );

    case.session = Vec::new();
    let failures = case.run(&policy).unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f.contains("the session has no more exchanges")),
        "{failures:#?}"
    );

    let mut extra = good.clone();
    extra.push(good[0].clone());
    case.session = extra;
    let failures = case.run(&policy).unwrap();
    assert!(
        failures.iter().any(|f| f.contains("was never requested")),
        "{failures:#?}"
    );

    case.session = good;
    assert!(case.run(&policy).unwrap().is_empty());
}
