//! `audit`: what is wrong in a cluster where the policy runs. Compares the
//! annotations of every ReplicaSet pod of a snapshot with what the policy
//! would write now, checks the ranks within each zone of a balanced
//! ReplicaSet, and scales each balanced ReplicaSet down by half to see
//! whether its zones stay within one pod of each other.

use crate::PolicyConfig;
use crate::expected::{self, PodView, Verdict};
use cluster_sim::Cluster;
use cluster_sim::snapshot::Snapshot;
use pod_deletion_cost_policy::settings::Settings;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use wasm_host::Policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A pod the policy would annotate carries no cost.
    MissingCost,
    /// The pod's cost is not what the policy would write now.
    CostDiffers,
    /// A pod of a balanced ReplicaSet that the policy would rank has no
    /// valid rank.
    RankMissing,
    /// Two pods of one zone hold the same rank.
    RankDuplicated,
    /// Ranks free in a zone below ranks held: the zone looks fuller than it is.
    RankGap,
    /// Scaled down by half, the ReplicaSet's zones differ by more than one pod.
    ZoneImbalance,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::MissingCost => "missing-cost",
            FindingKind::CostDiffers => "cost-differs",
            FindingKind::RankMissing => "rank-missing",
            FindingKind::RankDuplicated => "rank-duplicated",
            FindingKind::RankGap => "rank-gap",
            FindingKind::ZoneImbalance => "zone-imbalance",
        }
    }

    /// The command that fixes a finding of this kind; `zone-imbalance`
    /// says more where pods lack a cost (see [`Finding::fix`]).
    pub fn fix(self) -> &'static str {
        match self {
            FindingKind::MissingCost => "kubectl deletion-cost backfill",
            FindingKind::CostDiffers => "kubectl deletion-cost backfill --include-existing",
            FindingKind::RankMissing
            | FindingKind::RankDuplicated
            | FindingKind::RankGap
            | FindingKind::ZoneImbalance => "kubectl deletion-cost rebalance",
        }
    }
}

/// The fix of a zone-imbalance in a ReplicaSet whose pods lack costs too:
/// the backfill gives them the ranks the policy would have, then the
/// rebalance evens out what is left.
const BACKFILL_THEN_REBALANCE: &str =
    "kubectl deletion-cost backfill, then kubectl deletion-cost rebalance";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub namespace: String,
    pub replica_set: String,
    pub kind: FindingKind,
    /// The pods concerned (none for a whole-ReplicaSet finding).
    pub pods: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub detail: String,
    /// The command that fixes it (with the options the audit was given).
    pub fix: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub files: Vec<String>,
    pub settings: String,
    /// Bound, live ReplicaSet pods checked.
    pub pods_checked: usize,
    pub findings: Vec<Finding>,
    /// What is as the settings ask but worth knowing.
    pub notes: Vec<String>,
    /// Pods whose binding the policy could not evaluate, and settings warnings.
    pub warnings: Vec<String>,
}

/// Audits `snapshot` against what the policy would do; `now` is the
/// ReplicaSet controller's clock for the scale-down check.
pub fn audit(
    policy: &Policy,
    snapshot: &Snapshot,
    config: &PolicyConfig,
    now: u64,
) -> Result<AuditReport, String> {
    let settings = crate::check_settings(policy, config)?;
    let views = expected::evaluate(policy, snapshot, config, &settings)?;
    let mut findings = Vec::new();
    let mut warnings = config.warnings.clone();
    for v in &views {
        findings.extend(cost_finding(v));
        if let Verdict::Failed(why) = &v.verdict {
            for w in why {
                warnings.push(format!("{}/{} → {}: {w}", v.namespace, v.name, v.node));
            }
        }
    }
    for (key, members) in zone_groups(&views) {
        findings.extend(rank_findings(&key, &members));
    }
    let mut notes = Vec::new();
    let cluster = expected::cluster_of(snapshot, now);
    for set in balanced_sets(&views) {
        match halving(&cluster, &settings, &set) {
            Halving::Even => {}
            Halving::Uneven(f) => findings.push(f),
            Halving::AsZoneCostsAsk(note) => notes.push(note),
        }
    }
    let lacking: BTreeSet<(String, String)> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::MissingCost)
        .map(|f| (f.namespace.clone(), f.replica_set.clone()))
        .collect();
    for f in &mut findings {
        if f.kind == FindingKind::ZoneImbalance
            && lacking.contains(&(f.namespace.clone(), f.replica_set.clone()))
        {
            f.fix = BACKFILL_THEN_REBALANCE.to_string();
        }
    }
    findings.sort();
    Ok(AuditReport {
        files: snapshot
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        settings: config.source.clone(),
        pods_checked: views.len(),
        findings,
        notes,
        warnings,
    })
}

fn finding(v: &PodView, kind: FindingKind, detail: String) -> Finding {
    Finding {
        namespace: v.namespace.clone(),
        replica_set: v.replica_set.clone(),
        kind,
        pods: vec![v.name.clone()],
        zone: v.zone.clone(),
        detail,
        fix: kind.fix().to_string(),
    }
}

/// A missing or different cost. A ranked pod's cost is compared with
/// its own rank: the rank is history, checked by `rank_findings`.
fn cost_finding(v: &PodView) -> Option<Finding> {
    let Verdict::Annotate { base, ranked } = v.verdict else {
        return None;
    };
    match (&v.cost, ranked) {
        (None, false) => Some(finding(
            v,
            FindingKind::MissingCost,
            format!("no cost; the policy would write {base}"),
        )),
        (None, true) => Some(finding(
            v,
            FindingKind::MissingCost,
            match (v.rank, v.cost_with_rank(v.rank)) {
                (Some(r), Some(want)) => {
                    format!("no cost; the policy would write {want} ({base} minus rank {r})")
                }
                _ => format!(
                    "no cost nor rank; the policy would write {base} minus the pod's rank in zone {}",
                    v.zone.as_deref().unwrap_or("-")
                ),
            },
        )),
        // With balance the policy writes a zone and a rank with every
        // cost: a ranked pod with neither carries a cost from elsewhere
        // (its pod template, say), which the binding would have replaced.
        (Some(cost), true) if v.cost_predates_policy() => {
            let mut f = finding(
                v,
                FindingKind::CostDiffers,
                format!(
                    "cost {cost} without the policy's zone and rank (set before the policy saw the pod); the policy would have replaced it at binding with {base} minus the pod's rank in zone {}",
                    v.zone.as_deref().unwrap_or("-")
                ),
            );
            f.fix = FindingKind::RankMissing.fix().to_string();
            Some(f)
        }
        (Some(cost), _) => {
            let want = v.cost_with_rank(v.rank)?;
            (*cost != want).then(|| {
                let with_rank = match v.rank.filter(|_| ranked) {
                    Some(r) => format!(" ({base} minus rank {r})"),
                    None => String::new(),
                };
                finding(
                    v,
                    FindingKind::CostDiffers,
                    format!("cost {cost}; the policy would write {want}{with_rank}"),
                )
            })
        }
    }
}

/// (namespace, ReplicaSet name, ReplicaSet uid, zone).
pub type ZoneKey = (String, String, String, String);

/// The pods that hold (or take) ranks in each zone of each balanced
/// ReplicaSet, as the policy counts siblings: every live, bound pod that
/// is not a placeholder, oldest binding first.
pub fn zone_groups(views: &[PodView]) -> BTreeMap<ZoneKey, Vec<&PodView>> {
    let balanced: BTreeSet<&str> = views
        .iter()
        .filter(|v| v.balanced)
        .map(|v| v.replica_set_uid.as_str())
        .collect();
    let mut groups: BTreeMap<ZoneKey, Vec<&PodView>> = BTreeMap::new();
    for v in views {
        let Some(zone) = &v.zone else { continue };
        if v.is_placeholder() || !balanced.contains(v.replica_set_uid.as_str()) {
            continue;
        }
        groups
            .entry((
                v.namespace.clone(),
                v.replica_set.clone(),
                v.replica_set_uid.clone(),
                zone.clone(),
            ))
            .or_default()
            .push(v);
    }
    for members in groups.values_mut() {
        members.sort_by(|a, b| (a.scheduled, &a.name).cmp(&(b.scheduled, &b.name)));
    }
    groups
}

/// The ranks free below the highest rank held once every pod without a
/// rank has taken the lowest free slot (as the policy counts them).
pub fn rank_gaps(members: &[&PodView]) -> Vec<u32> {
    let held: BTreeSet<u32> = members.iter().filter_map(|v| v.rank).collect();
    let Some(&top) = held.iter().next_back() else {
        return Vec::new();
    };
    let unranked = members.iter().filter(|v| v.rank.is_none()).count();
    (0..top)
        .filter(|r| !held.contains(r))
        .skip(unranked)
        .collect()
}

fn rank_findings(key: &ZoneKey, members: &[&PodView]) -> Vec<Finding> {
    let (namespace, replica_set, _, zone) = key;
    let mut out = Vec::new();
    let whole = |kind, pods: Vec<String>, detail| Finding {
        namespace: namespace.clone(),
        replica_set: replica_set.clone(),
        kind,
        pods,
        zone: Some(zone.clone()),
        detail,
        fix: FindingKind::fix(kind).to_string(),
    };
    // A pod without a cost is reported as such, its rank with it.
    for v in members
        .iter()
        .filter(|v| v.ranked() && v.rank.is_none() && v.cost.is_some() && !v.cost_predates_policy())
    {
        let detail = match &v.rank_text {
            None => "no rank".to_string(),
            Some(t) => format!("rank {t:?} is not a rank (plain decimal, no sign)"),
        };
        out.push(finding(v, FindingKind::RankMissing, detail));
    }
    let mut holders: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for v in members {
        if let Some(r) = v.rank {
            holders.entry(r).or_default().push(v.name.clone());
        }
    }
    for (rank, pods) in holders.into_iter().filter(|(_, p)| p.len() > 1) {
        let detail = format!("{} pods hold rank {rank}", pods.len());
        out.push(whole(FindingKind::RankDuplicated, pods, detail));
    }
    let gaps = rank_gaps(members);
    if !gaps.is_empty() {
        let list: Vec<String> = gaps.iter().map(u32::to_string).collect();
        out.push(whole(
            FindingKind::RankGap,
            Vec::new(),
            format!(
                "{} pods, rank {} free below rank {} held",
                members.len(),
                list.join(", "),
                members.iter().filter_map(|v| v.rank).max().unwrap_or(0)
            ),
        ));
    }
    out
}

/// A ReplicaSet with zones.balance applying to its pods.
struct BalancedSet {
    namespace: String,
    name: String,
    uid: String,
}

fn balanced_sets(views: &[PodView]) -> Vec<BalancedSet> {
    let mut seen = BTreeSet::new();
    views
        .iter()
        .filter(|v| v.balanced && seen.insert(v.replica_set_uid.clone()))
        .map(|v| BalancedSet {
            namespace: v.namespace.clone(),
            name: v.replica_set.clone(),
            uid: v.replica_set_uid.clone(),
        })
        .collect()
}

enum Halving {
    Even,
    Uneven(Finding),
    /// Uneven, but the zones' costs differ: the settings ask for it.
    AsZoneCostsAsk(String),
}

/// Scales the ReplicaSet down to half its pods (rounded down) in the
/// controller's order and compares the zones it had pods in.
fn halving(cluster: &Cluster, settings: &Settings, set: &BalancedSet) -> Halving {
    let zone_key = crate::zone_label(settings);
    let before = cluster.per_zone(&set.uid, zone_key);
    let from = cluster.active_pods(&set.uid).len();
    let to = from / 2;
    let mut after_cluster = cluster.clone();
    after_cluster.scale_down(&set.uid, to);
    let after = after_cluster.per_zone(&set.uid, zone_key);
    let zones: Vec<&String> = before
        .keys()
        .filter(|z| *z != cluster_sim::NO_ZONE)
        .collect();
    let counts: Vec<usize> = zones
        .iter()
        .map(|z| after.get(*z).copied().unwrap_or(0))
        .collect();
    let (Some(min), Some(max)) = (counts.iter().min(), counts.iter().max()) else {
        return Halving::Even;
    };
    if max - min <= 1 {
        return Halving::Even;
    }
    let shown: Vec<String> = zones
        .iter()
        .map(|z| {
            format!(
                "{z} {}→{}",
                before.get(*z).copied().unwrap_or(0),
                after.get(*z).copied().unwrap_or(0)
            )
        })
        .collect();
    let detail = format!("scaled {from} → {to}: {}", shown.join(", "));
    let zone_costs: BTreeSet<i32> = zones.iter().map(|z| zone_cost(settings, z)).collect();
    if zone_costs.len() > 1 {
        return Halving::AsZoneCostsAsk(format!(
            "{}/{}: {detail}; not flagged: zones.deletionCosts gives these zones different costs",
            set.namespace, set.name
        ));
    }
    Halving::Uneven(Finding {
        namespace: set.namespace.clone(),
        replica_set: set.name.clone(),
        kind: FindingKind::ZoneImbalance,
        pods: Vec::new(),
        zone: None,
        detail,
        fix: FindingKind::ZoneImbalance.fix().to_string(),
    })
}

fn zone_cost(settings: &Settings, zone: &str) -> i32 {
    settings
        .zones
        .as_ref()
        .and_then(|z| z.deletion_costs.get(zone))
        .copied()
        .unwrap_or(0)
}

/// The report as a table for a terminal.
pub fn render_table(r: &AuditReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Audit of {}: {} ReplicaSet pods checked",
        r.files.join(", "),
        r.pods_checked
    );
    let _ = writeln!(out, "Settings: {}", r.settings);
    let _ = writeln!(out);
    if r.findings.is_empty() {
        let _ = writeln!(out, "Findings: none");
    } else {
        let _ = writeln!(out, "Findings ({}):", r.findings.len());
        let rows: Vec<[String; 6]> = r
            .findings
            .iter()
            .map(|f| {
                [
                    f.kind.as_str().to_string(),
                    format!("{}/{}", f.namespace, f.replica_set),
                    if f.pods.is_empty() {
                        "-".into()
                    } else {
                        f.pods.join(",")
                    },
                    f.zone.clone().unwrap_or_else(|| "-".into()),
                    f.detail.clone(),
                    f.fix.clone(),
                ]
            })
            .collect();
        out.push_str(&crate::table(
            ["KIND", "REPLICASET", "POD", "ZONE", "DETAIL", "FIX"],
            &rows,
        ));
    }
    for (title, lines) in [("Notes", &r.notes), ("Warnings", &r.warnings)] {
        if !lines.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "{title}:");
            for l in lines {
                let _ = writeln!(out, "  {l}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// What each kind of finding tells the administrator to run.
    #[rstest]
    #[case::missing_cost(FindingKind::MissingCost, "kubectl deletion-cost backfill")]
    #[case::cost_differs(
        FindingKind::CostDiffers,
        "kubectl deletion-cost backfill --include-existing"
    )]
    #[case::rank_missing(FindingKind::RankMissing, "kubectl deletion-cost rebalance")]
    #[case::rank_duplicated(FindingKind::RankDuplicated, "kubectl deletion-cost rebalance")]
    #[case::rank_gap(FindingKind::RankGap, "kubectl deletion-cost rebalance")]
    #[case::zone_imbalance(FindingKind::ZoneImbalance, "kubectl deletion-cost rebalance")]
    fn every_kind_names_its_fix(#[case] kind: FindingKind, #[case] fix: &str) {
        assert_eq!(kind.fix(), fix);
    }
}
