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
