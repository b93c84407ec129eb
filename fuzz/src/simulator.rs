//! Harnesses for the what-if simulator's readers: whatever a user points
//! it at (a kubectl snapshot, a settings file or policy manifest), the
//! answer is the model or an error naming the file, never a panic.

use cluster_sim::snapshot::{Snapshot, format_timestamp, parse_timestamp};
#[cfg(feature = "policy-config")]
use kubectl_deletion_cost::PolicyConfig;

/// The name the inputs are read under; every error must start with it.
const FILE: &str = "fuzz-input";

/// `snapshot` target: any bytes as one kubectl output (JSON or YAML).
pub fn snapshot(data: &[u8]) {
    // `Snapshot::load` reads files as UTF-8 and reports other bytes
    // itself; the reader only ever sees text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut snapshot = Snapshot::default();
    if let Err(e) = snapshot.add(FILE, text) {
        assert!(e.starts_with(FILE), "an error not naming the file: {e:?}");
        return;
    }
    if let Err(e) = snapshot.check() {
        assert!(!e.is_empty(), "an empty snapshot error");
        return;
    }
    for p in &snapshot.pods {
        let pod = &p.pod;
        assert!(!pod.name.is_empty() && !pod.namespace.is_empty());
        for t in [pod.created, p.scheduled, pod.ready_since] {
            assert!(t <= snapshot.latest, "{t} after the latest time");
        }
        // Any time accepted is one the simulator can print and read back.
        let written = format_timestamp(pod.created);
        assert_eq!(parse_timestamp(&written), Ok(pod.created), "{written}");
    }
    for n in &snapshot.nodes {
        assert!(!n.name.is_empty(), "a node without a name was accepted");
    }
}

#[cfg(feature = "policy-config")]
/// `policy_config` target: any bytes as `simulate --settings` reads them
/// (settings, or a ClusterAdmissionPolicy / AdmissionPolicy manifest).
pub fn policy_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PolicyConfig::parse(FILE, text) {
        Err(e) => assert!(e.starts_with(FILE), "an error not naming the file: {e:?}"),
        Ok(config) => assert!(
            config.settings.is_object(),
            "settings accepted that are not a map: {}",
            config.settings
        ),
    }
}
