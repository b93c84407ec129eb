//! What the policy would write on each ReplicaSet pod of a snapshot if the
//! pod were bound to its node now: the base of `audit` and `backfill`.
//!
//! Each pod's binding goes through the real policy module, against the
//! cluster exactly as the snapshot shows it (every other pod with the
//! annotations it carries). The pod's own rank is history (it depends on
//! the siblings bound before it), so what is kept from the answer is the
//! part that does not depend on history: the class and zone cost (the cost
//! written plus the rank given), whether a rank applies at all, and why
//! the pod would be left alone (placeholder, kept cost).

use crate::PolicyConfig;
use cluster_sim::snapshot::Snapshot;
use cluster_sim::{self as sim, COST_ANNOTATION, Cluster, RANK_ANNOTATION, ZONE_ANNOTATION};
use pod_deletion_cost_policy::decision::{Outcome, Skip, parse_rank, saturating_cost};
use pod_deletion_cost_policy::settings::Settings;
use serde_json::Value;
use std::collections::BTreeMap;
use wasm_host::Policy;

/// One ReplicaSet pod that is bound and counted by its ReplicaSet.
#[derive(Debug, Clone)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub replica_set: String,
    pub replica_set_uid: String,
    pub node: String,
    /// The zone the policy counts the pod in: its zone annotation, else
    /// its node's zone label (as the policy reads a sibling's zone).
    pub zone: Option<String>,
    /// The zone label of its node, which the policy writes.
    pub node_zone: Option<String>,
    pub zone_annotation: Option<String>,
    pub cost: Option<String>,
    /// The rank annotation as written, and read as the policy reads it.
    pub rank_text: Option<String>,
    pub rank: Option<u32>,
    pub scheduled: u64,
    pub resource_version: Option<String>,
    pub verdict: Verdict,
    /// `zones.balance` is on, the pod's node has a zone and the policy
    /// counts the pod: its ReplicaSet is balanced, even when the policy
    /// would keep this pod's own cost (`keepExistingCost`).
    pub balanced: bool,
}

/// The policy's answer for the pod's binding now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The policy would annotate it: `base` is the class plus zone cost,
    /// `ranked` whether balancing gives it a rank (the cost is then
    /// `base - rank`).
    Annotate { base: i64, ranked: bool },
    /// Placeholder: never annotated nor counted.
    Placeholder,
    /// Left unchanged: no rule applies, or `keepExistingCost` keeps the
    /// pod's own cost.
    Unchanged(Skip),
    /// The API server would not send the binding to the policy.
    NotSent(String),
    /// The evaluation failed (a lookup error); the policy's warnings.
    Failed(Vec<String>),
}

impl PodView {
    /// The cost the policy would give with the pod's current rank (or
    /// `rank` when given one), when it would give one: the class and zone
    /// cost the module answered minus the rank, clamped to int32, as
    /// `decision::decide` computes it (tests/audit.rs holds the two
    /// together). `decide` itself is not called: it takes the zone's
    /// siblings and walks every slot below the rank, which for a damaged
    /// annotation such as rank 4000000000 would be billions of steps.
    pub fn cost_with_rank(&self, rank: Option<u32>) -> Option<String> {
        let Verdict::Annotate { base, ranked } = self.verdict else {
            return None;
        };
        let rank = if ranked { i64::from(rank?) } else { 0 };
        Some(saturating_cost(base - rank).to_string())
    }

    pub fn ranked(&self) -> bool {
        matches!(self.verdict, Verdict::Annotate { ranked: true, .. })
    }

    pub fn is_placeholder(&self) -> bool {
        self.verdict == Verdict::Placeholder
    }

    /// The pod carries a cost but neither of the policy's zone and rank
    /// annotations, which it writes with every cost when it balances:
    /// the cost came from elsewhere (the pod template, another tool).
    pub fn cost_predates_policy(&self) -> bool {
        self.cost.is_some() && self.zone_annotation.is_none() && self.rank_text.is_none()
    }
}

/// The snapshot's pods as a cluster, in the state the snapshot shows.
pub fn cluster_of(snapshot: &Snapshot, now: u64) -> Cluster {
    let mut cluster = Cluster::default();
    cluster.nodes = snapshot.nodes.clone();
    cluster.now = Some(now);
    *cluster.pods_mut() = snapshot.pods.iter().map(|p| p.pod.clone()).collect();
    cluster
}

/// Every bound, live ReplicaSet pod of the snapshot with the policy's
/// answer for it, in snapshot order. `settings` are `config`'s as
/// [`crate::check_settings`] returned them.
pub fn evaluate(
    policy: &Policy,
    snapshot: &Snapshot,
    config: &PolicyConfig,
    settings: &Settings,
) -> Result<Vec<PodView>, String> {
    // Without `zones` the policy reads no zone at all.
    let zone_key = settings.zones.as_ref().map(|z| z.topology_key.clone());
    let balance = settings.balance();
    let mut cluster = cluster_of(snapshot, snapshot.latest);
    let mut out = Vec::new();
    for s in &snapshot.pods {
        let p = &s.pod;
        let (Some(owner), Some(node)) = (
            p.owner.as_ref().filter(|o| o.kind == "ReplicaSet"),
            p.node_name.as_deref(),
        ) else {
            continue;
        };
        if s.mirror || p.deleting || matches!(p.phase.as_str(), "Succeeded" | "Failed") {
            continue;
        }
        let node_zone = zone_key
            .as_ref()
            .and_then(|key| cluster.node(node)?.labels.get(key))
            .filter(|z| !z.is_empty())
            .cloned();
        let verdict = match config.sends(&p.namespace) {
            Err(why) => Verdict::NotSent(why.to_string()),
            Ok(()) => verdict_now(policy, &mut cluster, config, p, node)?,
        };
        let balanced = balance
            && node_zone.is_some()
            && !matches!(verdict, Verdict::Placeholder | Verdict::NotSent(_));
        let rank_text = p.annotations.get(RANK_ANNOTATION).cloned();
        out.push(PodView {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            replica_set: owner.name.clone(),
            replica_set_uid: owner.uid.clone(),
            node: node.to_string(),
            zone: p
                .annotations
                .get(ZONE_ANNOTATION)
                .cloned()
                .or_else(|| node_zone.clone()),
            node_zone,
            zone_annotation: p.annotations.get(ZONE_ANNOTATION).cloned(),
            cost: p.annotations.get(COST_ANNOTATION).cloned(),
            rank: rank_text.as_deref().and_then(parse_rank),
            rank_text,
            scheduled: s.scheduled,
            resource_version: s.resource_version.clone(),
            verdict,
            balanced,
        });
    }
    Ok(out)
}

/// The policy's answer for binding `pod` to `node` now; the cluster is
/// left as it was.
fn verdict_now(
    policy: &Policy,
    cluster: &mut Cluster,
    config: &PolicyConfig,
    pod: &sim::Pod,
    node: &str,
) -> Result<Verdict, String> {
    let Some(saved) = cluster.pod_mut(&pod.namespace, &pod.name) else {
        return Err(format!(
            "{}/{}: not in the cluster",
            pod.namespace, pod.name
        ));
    };
    let saved_pod = saved.clone();
    // As the scheduler sees it when binding: not on a node yet.
    saved.node_name = None;
    saved.phase = "Pending".into();
    let outcome = sim::bind(
        policy,
        cluster,
        &config.settings,
        &pod.namespace,
        &pod.name,
        node,
    );
    if let Some(p) = cluster.pod_mut(&pod.namespace, &pod.name) {
        *p = saved_pod;
    }
    let outcome = outcome.map_err(|e| {
        format!(
            "evaluating the binding of {}/{}: {e:#}",
            pod.namespace, pod.name
        )
    })?;
    let r = &outcome.response;
    let warnings = r.warnings.clone().unwrap_or_default();
    if !r.accepted || !warnings.is_empty() {
        let mut why = warnings;
        if let Some(m) = r.message.as_ref().filter(|_| !r.accepted) {
            why.push(m.clone());
        }
        return Ok(Verdict::Failed(why));
    }
    let decision = r
        .audit_annotations
        .as_ref()
        .and_then(|a| a.get(Outcome::AUDIT_KEY));
    // A binding admitted without a warning always carries its decision;
    // one this build does not know comes from another version of the
    // policy (`--policy`), and guessing what it meant would mislead.
    Ok(match decision.and_then(|d| Outcome::parse(d)) {
        Some(Outcome::Annotated) => annotated(&outcome, pod)?,
        Some(Outcome::Unchanged(Skip::Placeholder)) => Verdict::Placeholder,
        Some(Outcome::Unchanged(skip)) => Verdict::Unchanged(skip),
        None => {
            return Err(format!(
                "{}/{}: the policy's answer has no decision this tool knows ({} {:?})",
                pod.namespace,
                pod.name,
                Outcome::AUDIT_KEY,
                decision.map_or("", String::as_str)
            ));
        }
    })
}

fn annotated(outcome: &sim::BindOutcome, pod: &sim::Pod) -> Result<Verdict, String> {
    let written: BTreeMap<String, String> = match outcome
        .response
        .mutated_object
        .as_ref()
        .and_then(|o| o.pointer("/metadata/annotations"))
    {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    };
    let bad = |what: &str| {
        format!(
            "{}/{}: the policy's answer has {what}",
            pod.namespace, pod.name
        )
    };
    let cost: i64 = written
        .get(COST_ANNOTATION)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no integer cost"))?;
    let rank = match written.get(RANK_ANNOTATION) {
        None => None,
        Some(r) => Some(parse_rank(r).ok_or_else(|| bad("an invalid rank"))?),
    };
    Ok(Verdict::Annotate {
        base: cost + rank.map_or(0, i64::from),
        ranked: rank.is_some(),
    })
}
