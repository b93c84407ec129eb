//! What a simulation found, as the table, JSON and html renderings read it.

use pod_deletion_cost_policy::decision::Outcome;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub snapshot: SnapshotSummary,
    pub policy: PolicySummary,
    pub bindings: Vec<BindingReport>,
    pub replica_sets: Vec<ReplicaSetReport>,
    pub scale: Vec<ScaleReport>,
    /// What the policy decided without a warning but an administrator
    /// should know: placeholders found, existing costs kept, bindings the
    /// API server would not send.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    pub files: Vec<String>,
    pub nodes: usize,
    pub pods: usize,
    /// Bindings sent to the policy.
    pub evaluated: usize,
    /// Bound pods whose binding the API server would not send to it.
    pub not_sent: usize,
    /// Static pods' mirrors: created bound, never through a Binding.
    pub mirror_pods: usize,
    /// Pods not bound to a node yet.
    pub unbound: usize,
    pub ignored_objects: BTreeMap<String, usize>,
    /// The ReplicaSet controller's "now" for the deletion order.
    pub now: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySummary {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    pub topology_key: String,
    pub settings: Value,
}

/// One replayed binding.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingReport {
    pub namespace: String,
    pub pod: String,
    pub node: String,
    pub time: String,
    /// Whether the API server would send this Binding to the policy.
    pub evaluated: bool,
    pub allowed: bool,
    /// The policy's `decision` audit annotation, or why it was not asked.
    pub decision: String,
    /// That audit annotation read back; `None` when the policy was not
    /// asked or gave no decision (a warning, a rejection).
    #[serde(skip)]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The annotations the Binding would carry to the pod.
    pub annotations: BTreeMap<String, String>,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetReport {
    pub namespace: String,
    pub name: String,
    #[serde(skip)]
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// In the order the ReplicaSet controller would delete them.
    pub pods: Vec<PodReport>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    /// 1: deleted first on scale-down.
    pub delete_order: usize,
    pub name: String,
    pub node: Option<String>,
    pub zone: Option<String>,
    /// The pod's pod-deletion-cost annotation after the replay.
    pub cost: Option<String>,
    pub rank: Option<String>,
    pub phase: String,
    pub ready: bool,
    pub decision: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleReport {
    pub target: String,
    pub replica_set: String,
    pub from: usize,
    pub to: usize,
    /// In deletion order.
    pub removed: Vec<String>,
    pub zones_before: BTreeMap<String, usize>,
    pub zones_after: BTreeMap<String, usize>,
}
