//! What this crate's test files share: where the repository and the bundled
//! snapshots are, and the time the snapshots are read at.

// Each test file is a crate of its own and uses only part of this.
#![allow(dead_code)]

use std::path::PathBuf;

/// Shortly after the bundled snapshots were taken: pod ages in the
/// reports stay the same whenever the tests run.
pub const NOW: &str = "2026-11-22T00:00:00Z";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file of the bundled snapshots (`crates/kubectl-deletion-cost/snapshots`).
pub fn snapshot(rel: &str) -> PathBuf {
    root()
        .join("crates/kubectl-deletion-cost/snapshots")
        .join(rel)
}

/// What one run of the command gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `kubectl-deletion_cost SUBCOMMAND --policy policy.wasm ARGS…`: the built
/// binary with this checkout's module.
pub fn run<A: AsRef<std::ffi::OsStr>>(subcommand: &str, args: impl IntoIterator<Item = A>) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-deletion_cost"))
        .arg(subcommand)
        .arg("--policy")
        .arg(wasm_host::default_policy_wasm())
        .args(args)
        .output()
        .expect("the command runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        // What the command prints is UTF-8, always.
        stdout: String::from_utf8(out.stdout).expect("UTF-8 output"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
