//! The replay: every bound pod's binding through the real module, oldest
//! first, then each ReplicaSet's deletion order and the scale-downs.

use crate::export::export_case;
use crate::manifest::{PolicyConfig, check_settings, zone_label};
use crate::report::{
    BindingReport, PodReport, PolicySummary, ReplicaSetReport, Report, ScaleReport, SnapshotSummary,
};
use crate::scale::{ScaleTarget, resolve};
use cluster_sim::snapshot::{Snapshot, SnapshotPod, format_timestamp};
use cluster_sim::{self as sim, COST_ANNOTATION, Cluster, RANK_ANNOTATION, ZONE_ANNOTATION};
use pod_deletion_cost_policy::decision::{Outcome, Skip};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use wasm_host::Policy;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Drop every pod-deletion-cost annotation of the snapshot before the
    /// replay (for instance when the Kyverno policy this one replaces wrote
    /// them after binding).
    pub strip_costs: bool,
    /// When the scale-down happens (the ReplicaSet controller's "now");
    /// default: the snapshot's newest timestamp.
    pub now: Option<u64>,
    pub scales: Vec<ScaleTarget>,
    /// When the policy was installed: bindings before it never reached
    /// it, and the pods keep what they carried.
    pub installed_at: Option<u64>,
    /// Write every evaluated binding as an end-to-end case folder (request,
    /// settings, kwctl replay session, expected answer) under this
    /// directory, so the prediction can be checked under kwctl.
    pub export_cases: Option<std::path::PathBuf>,
}

/// Replays the snapshot's bindings through `policy` and reports.
pub fn simulate(
    policy: &Policy,
    snapshot: &Snapshot,
    config: &PolicyConfig,
    options: &Options,
) -> Result<Report, String> {
    simulate_with_progress(policy, snapshot, config, options, &mut |_, _| {})
}

/// [`simulate`], calling `progress(replayed, total)` before each binding
/// is replayed and once all are.
pub fn simulate_with_progress(
    policy: &Policy,
    snapshot: &Snapshot,
    config: &PolicyConfig,
    options: &Options,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Report, String> {
    let settings = check_settings(policy, config)?;
    let mut warnings = config.warnings.clone();
    let mut cluster = Cluster::default();
    cluster.nodes = snapshot.nodes.clone();
    cluster.forget_exchanges = options.export_cases.is_none();
    for s in &snapshot.pods {
        cluster.add_pod(as_before_binding(&s.pod, options.strip_costs));
    }
    let order = replay_order(snapshot);
    let mut bindings = Vec::new();
    let mut decisions: BTreeMap<(String, String), String> = BTreeMap::new();
    let (mut evaluated, mut not_sent) = (0, 0);
    let total = order.len();
    for (replayed, s) in order.into_iter().enumerate() {
        progress(replayed, total);
        let p = &s.pod;
        let node = p.node_name.clone().unwrap_or_default();
        let mut report = unasked(s);
        let sent = match options.installed_at {
            Some(t) if s.scheduled < t => Err("bound before the policy was installed"),
            _ => config.sends(&p.namespace),
        };
        match sent {
            Err(why) => {
                not_sent += 1;
                report.decision = why.to_string();
                cluster.complete_bind(&p.namespace, &p.name, &node, None);
            }
            Ok(()) => {
                evaluated += 1;
                let replay = Replay {
                    policy,
                    config,
                    options,
                    index: evaluated,
                };
                replay.bind(&mut cluster, &mut report, &mut warnings)?;
            }
        }
        decisions.insert(
            (p.namespace.clone(), p.name.clone()),
            report.decision.clone(),
        );
        bindings.push(report);
    }
    progress(total, total);
    restore_snapshot_state(&mut cluster, snapshot, &mut decisions);
    let now = options.now.unwrap_or(snapshot.latest);
    cluster.now = Some(now);
    let zone_key = zone_label(&settings).to_string();
    let replica_sets = replica_sets(&cluster, &zone_key, &decisions);
    let scale = scale_downs(&cluster, &replica_sets, &zone_key, &options.scales)?;
    Ok(Report {
        snapshot: summary(snapshot, evaluated, not_sent, now),
        policy: PolicySummary {
            source: config.source.clone(),
            name: config.policy_name.clone(),
            mode: config.mode.clone(),
            topology_key: zone_key,
            settings: config.settings.clone(),
        },
        notes: notes(&bindings),
        bindings,
        replica_sets,
        scale,
        warnings,
    })
}

/// The binding of `s` before the policy is asked about it.
fn unasked(s: &SnapshotPod) -> BindingReport {
    BindingReport {
        namespace: s.pod.namespace.clone(),
        pod: s.pod.name.clone(),
        node: s.pod.node_name.clone().unwrap_or_default(),
        time: format_timestamp(s.scheduled),
        evaluated: false,
        allowed: true,
        decision: String::new(),
        outcome: None,
        rule: None,
        annotations: BTreeMap::new(),
        warnings: Vec::new(),
        message: None,
    }
}

fn summary(snapshot: &Snapshot, evaluated: usize, not_sent: usize, now: u64) -> SnapshotSummary {
    let unbound = snapshot
        .pods
        .iter()
        .filter(|p| p.pod.node_name.is_none())
        .count();
    SnapshotSummary {
        files: snapshot
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        nodes: snapshot.nodes.len(),
        pods: snapshot.pods.len(),
        evaluated,
        not_sent,
        mirror_pods: snapshot.pods.iter().filter(|p| p.mirror).count(),
        unbound,
        ignored_objects: snapshot.ignored.clone(),
        now: format_timestamp(now),
    }
}

/// The bound pods other than mirrors, in the order the scheduler bound them.
fn replay_order(snapshot: &Snapshot) -> Vec<&SnapshotPod> {
    let mut order: Vec<&SnapshotPod> = snapshot
        .pods
        .iter()
        .filter(|p| p.pod.node_name.is_some() && !p.mirror)
        .collect();
    order.sort_by(|a, b| {
        (a.scheduled, a.pod.created, &a.pod.namespace, &a.pod.name).cmp(&(
            b.scheduled,
            b.pod.created,
            &b.pod.namespace,
            &b.pod.name,
        ))
    });
    order
}

/// What sending one binding to the policy needs besides the cluster.
struct Replay<'a> {
    policy: &'a Policy,
    config: &'a PolicyConfig,
    options: &'a Options,
    /// The binding's number among those evaluated, from 1: its case folder.
    index: usize,
}

impl Replay<'_> {
    /// Sends the binding `report` names to the policy and fills `report`
    /// with its answer; a rejected binding is completed without a cost, as
    /// the scheduler's retry would leave it here.
    fn bind(
        &self,
        cluster: &mut Cluster,
        report: &mut BindingReport,
        warnings: &mut Vec<String>,
    ) -> Result<(), String> {
        let (namespace, name, node) = (
            report.namespace.clone(),
            report.pod.clone(),
            report.node.clone(),
        );
        let outcome = sim::bind(
            self.policy,
            cluster,
            &self.config.settings,
            &namespace,
            &name,
            &node,
        )
        .map_err(|e| format!("evaluating the binding of {namespace}/{name}: {e:#}"))?;
        if let Some(dir) = &self.options.export_cases {
            export_case(dir, self.index, &self.config.settings, &outcome)?;
        }
        let r = &outcome.response;
        let audit = r.audit_annotations.clone().unwrap_or_default();
        report.evaluated = true;
        report.allowed = r.accepted;
        let decision = audit.get(Outcome::AUDIT_KEY);
        report.outcome = decision.and_then(|d| Outcome::parse(d));
        report.decision = decision.cloned().unwrap_or_else(|| {
            if r.accepted {
                "admitted unchanged".into()
            } else {
                "rejected".into()
            }
        });
        report.rule = audit.get("rule").cloned();
        report.warnings = r.warnings.clone().unwrap_or_default();
        report.message = r.message.clone();
        if let Some(Value::Object(ann)) = r
            .mutated_object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/annotations"))
        {
            for (k, v) in ann {
                if let Some(v) = v.as_str() {
                    report.annotations.insert(k.clone(), v.to_string());
                }
            }
        }
        for w in &report.warnings {
            warnings.push(format!("{namespace}/{name} → {node}: {w}"));
        }
        if !r.accepted {
            report.decision = "rejected".into();
            warnings.push(format!(
                "{namespace}/{name} → {node}: the binding would be rejected ({}); the scheduler retries it, and it is shown here bound without a cost",
                r.message.as_deref().unwrap_or("no message")
            ));
            cluster.complete_bind(&namespace, &name, &node, None);
        }
        Ok(())
    }
}

/// The replay ran every bound pod as running and ready; the deletion
/// order uses the state the snapshot shows.
fn restore_snapshot_state(
    cluster: &mut Cluster,
    snapshot: &Snapshot,
    decisions: &mut BTreeMap<(String, String), String>,
) {
    for s in &snapshot.pods {
        if let Some(c) = cluster.pod_mut(&s.pod.namespace, &s.pod.name) {
            c.node_name = s.pod.node_name.clone();
            c.phase = s.pod.phase.clone();
            c.ready = s.pod.ready;
            c.ready_since = s.pod.ready_since;
            c.restarts = s.pod.restarts;
            c.deleting = s.pod.deleting;
            c.created = s.pod.created;
        }
        if s.mirror {
            decisions.insert(
                (s.pod.namespace.clone(), s.pod.name.clone()),
                "mirror pod: never bound through the API".into(),
            );
        } else if s.pod.node_name.is_none() {
            decisions.insert(
                (s.pod.namespace.clone(), s.pod.name.clone()),
                "not bound yet".into(),
            );
        }
    }
}

/// Each `--scale`, applied to its own copy of the replayed cluster.
fn scale_downs(
    cluster: &Cluster,
    replica_sets: &[ReplicaSetReport],
    zone_key: &str,
    scales: &[ScaleTarget],
) -> Result<Vec<ScaleReport>, String> {
    let mut scale = Vec::new();
    let mut seen = BTreeSet::new();
    for t in scales {
        let (uid, name) = resolve(replica_sets, t)?;
        if !seen.insert(uid.clone()) {
            return Err(format!(
                "--scale {}/{}: ReplicaSet {name} is scaled twice",
                t.namespace, t.name
            ));
        }
        let from = cluster.active_pods(&uid).len();
        let mut after = cluster.clone();
        let removed = after.scale_down(&uid, t.replicas);
        let zones_before = cluster.per_zone(&uid, zone_key);
        let mut zones_after = after.per_zone(&uid, zone_key);
        // A zone emptied by the scale-down shows as 0, not as missing.
        for zone in zones_before.keys() {
            zones_after.entry(zone.clone()).or_insert(0);
        }
        scale.push(ScaleReport {
            target: format!("{}/{}", t.namespace, t.name),
            replica_set: name,
            from,
            to: t.replicas,
            removed,
            zones_before,
            zones_after,
        });
    }
    Ok(scale)
}

/// Counts of the decisions that leave pods without the policy's cost.
fn notes(bindings: &[BindingReport]) -> Vec<String> {
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for b in bindings {
        let what = match (&b.outcome, b.decision.as_str()) {
            (Some(Outcome::Unchanged(Skip::Placeholder)), _) => {
                "placeholder pods detected, left without a cost and not counted as replicas"
            }
            (Some(Outcome::Unchanged(Skip::ExistingCost(_))), _) => {
                "pods that keep the cost they already carried (keepExistingCost)"
            }
            (Some(_), _) => continue,
            // The tool's own reasons for a binding the policy never saw.
            (None, d) if d.starts_with("outside") => {
                "bindings the API server would not send to the policy"
            }
            (None, d) if d.starts_with("bound before") => {
                "pods bound before the policy was installed"
            }
            (None, _) => continue,
        };
        groups
            .entry(what)
            .or_default()
            .push(format!("{}/{}", b.namespace, b.pod));
    }
    groups
        .into_iter()
        .map(|(what, pods)| {
            const SHOWN: usize = 5;
            let more = pods.len().saturating_sub(SHOWN);
            let mut list = pods
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if more > 0 {
                list.push_str(&format!(" and {more} more"));
            }
            format!("{} {what}: {list}", pods.len())
        })
        .collect()
}

/// The pod as it was when the scheduler bound it: not on a node yet, and
/// without the annotations a Binding from this policy would have brought.
fn as_before_binding(p: &sim::Pod, strip_costs: bool) -> sim::Pod {
    let mut pod = p.clone();
    // Zone and rank are only ever written by this policy, together with
    // the cost: a pod carrying them got its cost from the policy already.
    let written_here = pod.annotations.contains_key(ZONE_ANNOTATION)
        || pod.annotations.contains_key(RANK_ANNOTATION);
    pod.annotations.remove(ZONE_ANNOTATION);
    pod.annotations.remove(RANK_ANNOTATION);
    if strip_costs || written_here {
        pod.annotations.remove(COST_ANNOTATION);
    }
    pod.node_name = None;
    pod.phase = "Pending".into();
    pod.ready = false;
    pod.ready_since = 0;
    pod.restarts = 0;
    pod.deleting = false;
    pod
}

fn replica_sets(
    cluster: &Cluster,
    zone_key: &str,
    decisions: &BTreeMap<(String, String), String>,
) -> Vec<ReplicaSetReport> {
    let mut owners: BTreeSet<(String, String, String)> = BTreeSet::new();
    for p in cluster.pods() {
        if let Some(o) = p.owner.as_ref().filter(|o| o.kind == "ReplicaSet") {
            owners.insert((p.namespace.clone(), o.name.clone(), o.uid.clone()));
        }
    }
    let mut out = Vec::new();
    for (namespace, name, uid) in owners {
        let ordered = cluster.deletion_order(&uid);
        if ordered.is_empty() {
            continue;
        }
        let deployments: BTreeSet<Option<&str>> =
            ordered.iter().map(|p| sim::deployment_of(p)).collect();
        let deployment = match deployments.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(d)] => Some(d.to_string()),
            _ => None,
        };
        let pods = ordered
            .iter()
            .enumerate()
            .map(|(i, p)| PodReport {
                delete_order: i + 1,
                name: p.name.clone(),
                node: p.node_name.clone(),
                zone: p
                    .node_name
                    .as_deref()
                    .and_then(|n| cluster.node(n))
                    .and_then(|n| n.labels.get(zone_key))
                    .cloned(),
                cost: p.annotations.get(COST_ANNOTATION).cloned(),
                rank: p.annotations.get(RANK_ANNOTATION).cloned(),
                phase: p.phase.clone(),
                ready: p.ready,
                decision: decisions
                    .get(&(p.namespace.clone(), p.name.clone()))
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        out.push(ReplicaSetReport {
            namespace,
            name,
            uid,
            deployment,
            pods,
        });
    }
    out
}
