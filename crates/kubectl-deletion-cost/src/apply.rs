//! `--apply`: the patches of `backfill` or `rebalance` written to the live
//! cluster they were read from, each on the condition that its pod is
//! still at the resourceVersion read. A pod changed since is refused by
//! the API server, reported and left alone, never overwritten: running
//! the command again reads it anew.

use crate::backfill::Patch;
use crate::live::{Live, Refusal};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// A test hook: when set to a file path, `--apply` creates `PATH.paused`
/// once everything is read and planned, and waits until `PATH` exists
/// before the first patch, so that a test can change a pod between the
/// read and the patch and see the API server refuse it.
pub const PAUSE_ENV: &str = "KUBECTL_DELETION_COST_PAUSE_BEFORE_PATCH";
/// The hook never holds a command longer than this.
const PAUSE_AT_MOST: Duration = Duration::from_secs(300);

/// What became of one patch.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    #[serde(flatten)]
    pub patch: Patch,
    /// `patched` or `refused`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub outcomes: Vec<Outcome>,
    pub patched: usize,
    pub refused: usize,
}

/// Writes `patches` through `live`. `Err`: the context may not patch pods
/// (checked before the first change) or the API server failed; a refused
/// pod is counted in [`Applied::refused`].
pub fn apply(live: &Live, patches: &[Patch]) -> Result<Applied, String> {
    let namespaces: BTreeSet<String> = patches.iter().map(|p| p.namespace.clone()).collect();
    live.check_can_patch_pods(&namespaces)?;
    if let Some(path) = std::env::var_os(PAUSE_ENV) {
        pause(Path::new(&path))?;
    }
    let mut applied = Applied::default();
    for patch in patches {
        let outcome = live.patch_pod(patch).map_err(|e| {
            format!(
                "{e} ({} of {} pods patched before this one)",
                applied.patched,
                patches.len()
            )
        })?;
        let (result, reason) = match outcome {
            Ok(()) => {
                applied.patched += 1;
                ("patched", None)
            }
            Err(refusal) => {
                applied.refused += 1;
                ("refused", Some(refusal))
            }
        };
        applied.outcomes.push(Outcome {
            patch: patch.clone(),
            result,
            reason: reason.as_ref().map(Refusal::to_string),
        });
    }
    Ok(applied)
}

fn pause(path: &Path) -> Result<(), String> {
    let marker = path.with_extension("paused");
    std::fs::write(&marker, "").map_err(|e| format!("{PAUSE_ENV}: {}: {e}", marker.display()))?;
    let started = Instant::now();
    while !path.exists() {
        if started.elapsed() > PAUSE_AT_MOST {
            return Err(format!(
                "{PAUSE_ENV}: {} did not appear within {PAUSE_AT_MOST:?}; nothing was changed",
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// One line per pod, then the counts.
pub fn render(applied: &Applied) -> String {
    let mut out = String::new();
    for o in &applied.outcomes {
        let p = &o.patch;
        let pairs: Vec<String> = p
            .annotations
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        match &o.reason {
            None => out.push_str(&format!(
                "patched {}/{}: {}\n",
                p.namespace,
                p.pod,
                pairs.join(" ")
            )),
            Some(why) => out.push_str(&format!(
                "refused {}/{}: {why}; left alone\n",
                p.namespace, p.pod
            )),
        }
    }
    out.push_str(&summary(applied));
    out
}

/// `3 pods patched, 1 refused (changed since it was read: run the command
/// again to read it anew)`.
pub fn summary(applied: &Applied) -> String {
    let pods = |n: usize| if n == 1 { "pod" } else { "pods" };
    let mut line = format!(
        "{} {} patched, {} refused",
        applied.patched,
        pods(applied.patched),
        applied.refused
    );
    if applied.refused > 0 {
        line.push_str(
            " (changed or deleted since they were read: run the command again to read them anew)",
        );
    }
    line + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn outcome(pod: &str, reason: Option<&str>) -> Outcome {
        Outcome {
            patch: Patch {
                namespace: "shop".into(),
                pod: pod.into(),
                resource_version: Some("7".into()),
                annotations: BTreeMap::from([("a/b".to_string(), "1".to_string())]),
            },
            result: if reason.is_some() {
                "refused"
            } else {
                "patched"
            },
            reason: reason.map(String::from),
        }
    }

    #[test]
    fn the_report_names_each_pod_and_counts_the_refused() {
        let applied = Applied {
            outcomes: vec![
                outcome("web-1", None),
                outcome("web-2", Some("changed since it was read (409 Conflict: x)")),
            ],
            patched: 1,
            refused: 1,
        };
        assert_eq!(
            render(&applied),
            "patched shop/web-1: a/b=1\n\
             refused shop/web-2: changed since it was read (409 Conflict: x); left alone\n\
             1 pod patched, 1 refused (changed or deleted since they were read: run the command again to read them anew)\n"
        );
        assert_eq!(summary(&Applied::default()), "0 pods patched, 0 refused\n");
    }
}
