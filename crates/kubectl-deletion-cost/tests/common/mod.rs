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
