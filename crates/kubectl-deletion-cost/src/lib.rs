//! What the policy would do to a cluster, before it is installed: the
//! binding of every bound pod of a snapshot is replayed, oldest first,
//! through the real `policy.wasm`, with host calls answered from the
//! snapshot as it stood at that binding; then each ReplicaSet's deletion
//! order is computed as the ReplicaSet controller would, and optional
//! scale-downs are applied.

pub mod apply;
pub mod audit;
pub mod backfill;
pub mod cli;
pub mod expected;
pub mod html;
pub mod live;
pub mod policy_source;
pub mod rebalance;
pub mod registry;

use cluster_sim::snapshot::{Snapshot, format_timestamp};
use cluster_sim::{self as sim, COST_ANNOTATION, Cluster, RANK_ANNOTATION, ZONE_ANNOTATION};
use pod_deletion_cost_policy::decision::{Outcome, Skip};
use pod_deletion_cost_policy::selector::LabelSelector;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use wasm_host::Policy;

pub use pod_deletion_cost_policy::settings::DEFAULT_TOPOLOGY_KEY;
use pod_deletion_cost_policy::settings::{self, Settings};
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The policy's settings and, when they come from a policy manifest, which
/// bindings the API server would send to it.
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    /// Where the settings came from, for messages.
    pub source: String,
    pub settings: Value,
    pub policy_name: Option<String>,
    pub mode: Option<String>,
    /// An AdmissionPolicy only sees its own namespace.
    pub namespace: Option<String>,
    pub namespace_selector: Option<Selector>,
    pub object_selector: Option<Selector>,
    pub warnings: Vec<String>,
}

impl PolicyConfig {
    /// Reads a settings file (YAML or JSON), or a ClusterAdmissionPolicy /
    /// AdmissionPolicy manifest (its `spec.settings`; other documents of a
    /// multi-document file, such as RBAC, are skipped). `None`: the
    /// policy's defaults.
    pub fn load(path: Option<&Path>) -> Result<PolicyConfig, String> {
        let Some(path) = path else {
            return Ok(PolicyConfig {
                source: "no settings given: the policy's defaults".into(),
                settings: json!({}),
                ..Default::default()
            });
        };
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
        Self::parse(&file, &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<PolicyConfig, String> {
        use serde::Deserialize;
        let mut documents = Vec::new();
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let yaml = serde_yaml::Value::deserialize(doc)
                .map_err(|e| format!("{file}: not valid YAML or JSON: {e}"))?;
            let value = serde_json::to_value(yaml)
                .map_err(|e| format!("{file}: document {}: {e}", i + 1))?;
            if !value.is_null() {
                documents.push(value);
            }
        }
        let is_policy = |d: &Value| {
            matches!(
                d.get("kind").and_then(Value::as_str),
                Some("ClusterAdmissionPolicy" | "AdmissionPolicy")
            ) && d
                .get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with("policies.kubewarden.io/"))
        };
        let policies: Vec<&Value> = documents.iter().filter(|d| is_policy(d)).collect();
        match policies.as_slice() {
            [policy] => Self::from_manifest(file, policy),
            [] => match documents.as_slice() {
                [] => Ok(PolicyConfig {
                    source: format!("{file} (empty: the policy's defaults)"),
                    settings: json!({}),
                    ..Default::default()
                }),
                [Value::Object(map)] if !map.contains_key("kind") => Ok(PolicyConfig {
                    source: file.to_string(),
                    settings: Value::Object(map.clone()),
                    ..Default::default()
                }),
                [Value::Object(map)] => Err(format!(
                    "{file}: a {} is neither policy settings nor a ClusterAdmissionPolicy or AdmissionPolicy",
                    map.get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("document")
                )),
                [other] => Err(format!(
                    "{file}: settings must be a map, found {}",
                    short_kind(other)
                )),
                _ => Err(format!(
                    "{file}: {} documents and no ClusterAdmissionPolicy or AdmissionPolicy among them",
                    documents.len()
                )),
            },
            many => Err(format!(
                "{file}: {} Kubewarden policies ({}); keep the one to simulate",
                many.len(),
                many.iter()
                    .map(|p| p
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("?"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// A ClusterAdmissionPolicy or AdmissionPolicy read from `file` (or a
    /// cluster), its settings and scope.
    pub fn from_manifest(file: &str, policy: &Value) -> Result<PolicyConfig, String> {
        let kind = policy
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = policy.pointer("/metadata/name").and_then(Value::as_str);
        let at = format!("{file} ({kind} {})", name.unwrap_or("?"));
        let spec = policy.get("spec").unwrap_or(&Value::Null);
        let text = |key: &str| -> Result<Option<String>, String> {
            match spec.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!(
                    "{at}: spec.{key}: expected a string, found {}",
                    short_kind(other)
                )),
            }
        };
        let settings = match spec.get("settings") {
            None | Some(Value::Null) => json!({}),
            Some(s @ Value::Object(_)) => s.clone(),
            Some(other) => {
                return Err(format!(
                    "{at}: spec.settings: expected a map, found {}",
                    short_kind(other)
                ));
            }
        };
        let selector = |key: &str| -> Result<Option<Selector>, String> {
            match spec.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => Selector::parse(v, &format!("{at}: spec.{key}")).map(Some),
            }
        };
        let mut config = PolicyConfig {
            source: format!("{at}, spec.settings"),
            settings,
            policy_name: name.map(String::from),
            mode: text("mode")?,
            namespace: if kind == "AdmissionPolicy" {
                Some(
                    policy
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("default")
                        .to_string(),
                )
            } else {
                None
            },
            namespace_selector: selector("namespaceSelector")?,
            object_selector: selector("objectSelector")?,
            warnings: Vec::new(),
        };
        if config.mode.as_deref() == Some("monitor") {
            config.warnings.push(format!(
                "{at}: spec.mode is monitor: policy-server only logs these decisions and applies no annotation; the report shows what protect mode would do"
            ));
        }
        if !covers_bindings(spec.get("rules")) {
            config.warnings.push(format!(
                "{at}: spec.rules do not cover pods/binding CREATE: the API server would never send a Binding to this policy; the report shows what it would do if they did"
            ));
        }
        if let Some(s) = &config.namespace_selector {
            for key in s.keys() {
                if key != NAMESPACE_NAME_LABEL {
                    config.warnings.push(format!(
                        "{at}: spec.namespaceSelector uses the namespace label {key:?}, which a snapshot of nodes and pods does not hold: it is treated as absent on every namespace"
                    ));
                }
            }
        }
        Ok(config)
    }

    /// Whether the API server would send this pod's Binding to the policy.
    fn sends(&self, namespace: &str) -> Result<(), &'static str> {
        if self.namespace.as_deref().is_some_and(|n| n != namespace) {
            return Err("outside the AdmissionPolicy's namespace");
        }
        if let Some(s) = &self.namespace_selector {
            let labels =
                BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string())]);
            if !s.matches(&labels) {
                return Err("outside the policy's namespaceSelector");
            }
        }
        // A Binding carries no labels of its own.
        if let Some(s) = &self.object_selector
            && !s.matches(&BTreeMap::new())
        {
            return Err("outside the policy's objectSelector (a Binding has no labels)");
        }
        Ok(())
    }
}

/// The node label the reports group zones by: the policy's topology key,
/// else the standard zone label.
pub fn zone_label(settings: &Settings) -> &str {
    settings
        .zones
        .as_ref()
        .map_or(DEFAULT_TOPOLOGY_KEY, |z| z.topology_key.as_str())
}

fn covers_bindings(rules: Option<&Value>) -> bool {
    let Some(Value::Array(rules)) = rules else {
        return false;
    };
    let has = |rule: &Value, key: &str, wanted: &[&str]| {
        rule.get(key).and_then(Value::as_array).is_some_and(|a| {
            a.iter()
                .any(|v| v.as_str().is_some_and(|s| wanted.contains(&s)))
        })
    };
    rules.iter().any(|r| {
        has(
            r,
            "resources",
            &["pods/binding", "pods/*", "*/*", "*/binding"],
        ) && has(r, "operations", &["CREATE", "*"])
    })
}

fn short_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A Kubernetes LabelSelector of a policy manifest: read here, with
/// messages naming the manifest's fields, and matched by the policy's own
/// `LabelSelector`.
#[derive(Debug, Clone, Default)]
pub struct Selector(LabelSelector);

impl Selector {
    /// Read as the policy reads the selectors of its settings (the same
    /// type, operators and label checks), with the manifest's path in front
    /// of every message.
    pub fn parse(v: &Value, at: &str) -> Result<Selector, String> {
        let selector: LabelSelector = serde_path_to_error::deserialize(v).map_err(|e| {
            match e.path().to_string().as_str() {
                "." => format!("{at}: {}", e.inner()),
                path => format!("{at}.{path}: {}", e.inner()),
            }
        })?;
        selector.validate(at)?;
        Ok(Selector(selector))
    }

    fn keys(&self) -> BTreeSet<&str> {
        self.0
            .match_labels
            .keys()
            .map(String::as_str)
            .chain(self.0.match_expressions.iter().map(|r| r.key.as_str()))
            .collect()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.matches(labels)
    }
}

/// `--scale <namespace>/<replicaset-or-deployment>=<replicas>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleTarget {
    pub namespace: String,
    pub name: String,
    pub replicas: usize,
}

impl std::str::FromStr for ScaleTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "--scale {s:?}: expected <namespace>/<replicaset-or-deployment>=<replicas>, e.g. shop/web=3"
            )
        };
        let (target, n) = s.split_once('=').ok_or_else(bad)?;
        let (namespace, name) = target.split_once('/').ok_or_else(bad)?;
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(bad());
        }
        let replicas = n
            .trim()
            .parse()
            .map_err(|_| format!("--scale {s:?}: {n:?} is not a replica count (0 or more)"))?;
        Ok(ScaleTarget {
            namespace: namespace.into(),
            name: name.into(),
            replicas,
        })
    }
}

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

/// The policy's own check of the settings, its message naming where they
/// came from.
pub fn check_settings(policy: &Policy, config: &PolicyConfig) -> Result<Settings, String> {
    let verdict = policy
        .validate_settings(&config.settings)
        .map_err(|e| format!("{}: validate_settings failed: {e:#}", config.source))?;
    if !verdict.valid {
        return Err(format!(
            "{}: the policy refuses these settings: {}",
            config.source,
            verdict.message.unwrap_or_default()
        ));
    }
    read_accepted_settings(config)
}

/// Settings the module has accepted, read by the policy's own parser, so
/// that the reports use the topology key, zone costs and balance the module
/// does. A module given with --policy may be another version, which is why
/// it is asked first and this can still fail.
fn read_accepted_settings(config: &PolicyConfig) -> Result<Settings, String> {
    let json = serde_json::to_vec(&config.settings).map_err(|e| e.to_string())?;
    settings::parse(&json).map_err(|e| {
        format!(
            "{}: the policy module accepts these settings, but this version of the tool cannot read them: {e}",
            config.source
        )
    })
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
    let mut order: Vec<&cluster_sim::snapshot::SnapshotPod> = snapshot
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
    let mut bindings = Vec::new();
    let mut decisions: BTreeMap<(String, String), String> = BTreeMap::new();
    let (mut evaluated, mut not_sent) = (0, 0);
    let total = order.len();
    for (replayed, s) in order.into_iter().enumerate() {
        progress(replayed, total);
        let p = &s.pod;
        let node = p.node_name.clone().unwrap_or_default();
        let mut report = BindingReport {
            namespace: p.namespace.clone(),
            pod: p.name.clone(),
            node: node.clone(),
            time: format_timestamp(s.scheduled),
            evaluated: false,
            allowed: true,
            decision: String::new(),
            outcome: None,
            rule: None,
            annotations: BTreeMap::new(),
            warnings: Vec::new(),
            message: None,
        };
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
                let outcome = sim::bind(
                    policy,
                    &mut cluster,
                    &config.settings,
                    &p.namespace,
                    &p.name,
                    &node,
                )
                .map_err(|e| {
                    format!(
                        "evaluating the binding of {}/{}: {e:#}",
                        p.namespace, p.name
                    )
                })?;
                if let Some(dir) = &options.export_cases {
                    export_case(dir, evaluated, &config.settings, &outcome)?;
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
                    warnings.push(format!("{}/{} → {node}: {w}", p.namespace, p.name));
                }
                if !r.accepted {
                    report.decision = "rejected".into();
                    warnings.push(format!(
                        "{}/{} → {node}: the binding would be rejected ({}); the scheduler retries it, and it is shown here bound without a cost",
                        p.namespace,
                        p.name,
                        r.message.as_deref().unwrap_or("no message")
                    ));
                    cluster.complete_bind(&p.namespace, &p.name, &node, None);
                }
            }
        }
        decisions.insert(
            (p.namespace.clone(), p.name.clone()),
            report.decision.clone(),
        );
        bindings.push(report);
    }
    progress(total, total);
    // The replay ran every bound pod as running and ready; the deletion
    // order uses the state the snapshot shows.
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
    let now = options.now.unwrap_or(snapshot.latest);
    cluster.now = Some(now);
    let zone_key = zone_label(&settings).to_string();
    let replica_sets = replica_sets(&cluster, &zone_key, &decisions);
    let mut scale = Vec::new();
    let mut seen = BTreeSet::new();
    for t in &options.scales {
        let (uid, name) = resolve(&replica_sets, t)?;
        if !seen.insert(uid.clone()) {
            return Err(format!(
                "--scale {}/{}: ReplicaSet {name} is scaled twice",
                t.namespace, t.name
            ));
        }
        let from = cluster.active_pods(&uid).len();
        let mut after = cluster.clone();
        let removed = after.scale_down(&uid, t.replicas);
        let zones_before = cluster.per_zone(&uid, &zone_key);
        let mut zones_after = after.per_zone(&uid, &zone_key);
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
    let unbound = snapshot
        .pods
        .iter()
        .filter(|p| p.pod.node_name.is_none())
        .count();
    Ok(Report {
        snapshot: SnapshotSummary {
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
        },
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

/// One evaluated binding as a case folder of the end-to-end table
/// (`e2e-tests/cases/` layout), checked by `e2e-runner cases --dir` and by
/// `e2e.bats` under kwctl.
fn export_case(
    dir: &Path,
    index: usize,
    settings: &Value,
    outcome: &sim::BindOutcome,
) -> Result<(), String> {
    let r = &outcome.response;
    let ns = outcome.request["namespace"].as_str().unwrap_or_default();
    let pod = outcome.request["name"].as_str().unwrap_or_default();
    let node = outcome.request["object"]["target"]["name"]
        .as_str()
        .unwrap_or_default();
    let case = dir.join(format!("{index:04}-{ns}-{pod}"));
    let patch = match &r.mutated_object {
        Some(m) => wasm_host::patch(&outcome.request["object"], m),
        None => Value::Null,
    };
    let mut expect = json!({
        "description": format!("simulated binding of {ns}/{pod} to {node}"),
        "allowed": r.accepted,
        "patch": patch,
        "auditAnnotations": r.audit_annotations.clone().unwrap_or_default(),
    });
    match r.warnings.as_deref() {
        None | Some([]) => expect["noWarnings"] = json!(true),
        Some(w) => expect["warnings"] = json!(w),
    }
    if let Some(m) = r.message.as_ref().filter(|_| !r.accepted) {
        expect["message"] = json!([m]);
    }
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": outcome.request,
    });
    let files = [
        ("request.json", pretty(&review)?),
        // JSON is YAML: kwctl and the runner read it as settings.
        ("settings.yml", pretty(settings)?),
        ("session.yml", sim::replay_session_yaml(&outcome.exchanges)),
        ("expect.json", pretty(&expect)?),
    ];
    std::fs::create_dir_all(&case).map_err(|e| format!("{}: {e}", case.display()))?;
    for (name, text) in files {
        let path = case.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn pretty(v: &Value) -> Result<String, String> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
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

/// The ReplicaSet `--scale` names: a ReplicaSet by name, or the one
/// ReplicaSet with pods of a Deployment.
fn resolve(sets: &[ReplicaSetReport], t: &ScaleTarget) -> Result<(String, String), String> {
    let here: Vec<&ReplicaSetReport> = sets.iter().filter(|s| s.namespace == t.namespace).collect();
    let chosen: Vec<&&ReplicaSetReport> = match here.iter().find(|s| s.name == t.name) {
        Some(s) => vec![s],
        None => here
            .iter()
            .filter(|s| s.deployment.as_deref() == Some(t.name.as_str()))
            .collect(),
    };
    let target = format!("{}/{}", t.namespace, t.name);
    match chosen.as_slice() {
        [one] => Ok((one.uid.clone(), one.name.clone())),
        [] => {
            let known: Vec<String> = here
                .iter()
                .map(|s| match &s.deployment {
                    Some(d) => format!("{} (Deployment {d})", s.name),
                    None => s.name.clone(),
                })
                .collect();
            Err(if known.is_empty() {
                format!(
                    "--scale {target}: no ReplicaSet has pods in namespace {:?}",
                    t.namespace
                )
            } else {
                format!(
                    "--scale {target}: no ReplicaSet or Deployment of that name has pods; ReplicaSets with pods in {}: {}",
                    t.namespace,
                    known.join(", ")
                )
            })
        }
        many => Err(format!(
            "--scale {target}: Deployment {} has pods in {} ReplicaSets ({}), a rollout in progress; name the ReplicaSet to scale",
            t.name,
            many.len(),
            many.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The report as tables for a terminal.
pub fn render_table(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let s = &r.snapshot;
    let _ = writeln!(
        out,
        "Snapshot: {} ({} nodes, {} pods): {} bindings evaluated, {} not sent to the policy, {} mirror pods, {} pods not bound",
        s.files.join(", "),
        s.nodes,
        s.pods,
        s.evaluated,
        s.not_sent,
        s.mirror_pods,
        s.unbound
    );
    let _ = writeln!(out, "Settings: {}", r.policy.source);
    let _ = writeln!(
        out,
        "Zones by node label {}; deletion order as of {}",
        r.policy.topology_key, s.now
    );
    for rs in &r.replica_sets {
        let _ = writeln!(out);
        let owner = match &rs.deployment {
            Some(d) => format!(" (Deployment {d})"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "ReplicaSet {}/{}{owner}: {} pods, deleted in this order on scale-down",
            rs.namespace,
            rs.name,
            rs.pods.len()
        );
        let rows: Vec<[String; 7]> = rs
            .pods
            .iter()
            .map(|p| {
                let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                [
                    p.delete_order.to_string(),
                    p.name.clone(),
                    dash(&p.node),
                    dash(&p.zone),
                    dash(&p.cost),
                    dash(&p.rank),
                    if p.phase == "Running" && p.ready {
                        p.decision.clone()
                    } else {
                        format!(
                            "{} ({}{})",
                            p.decision,
                            p.phase,
                            if p.ready { "" } else { ", not ready" }
                        )
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            ["ORDER", "POD", "NODE", "ZONE", "COST", "RANK", "DECISION"],
            &rows,
        ));
    }
    for sc in &r.scale {
        let _ = writeln!(out);
        if sc.removed.is_empty() {
            let _ = writeln!(
                out,
                "Scale {} ({}) {} -> {}: no pod removed{}",
                sc.target,
                sc.replica_set,
                sc.from,
                sc.to,
                if sc.to > sc.from {
                    " (new pods get their cost when the scheduler binds them)"
                } else {
                    ""
                }
            );
        } else {
            let _ = writeln!(
                out,
                "Scale {} ({}) {} -> {}: removes {}",
                sc.target,
                sc.replica_set,
                sc.from,
                sc.to,
                sc.removed.join(", ")
            );
        }
        let zones: BTreeSet<&String> = sc
            .zones_before
            .keys()
            .chain(sc.zones_after.keys())
            .collect();
        let rows: Vec<[String; 3]> = zones
            .into_iter()
            .map(|z| {
                [
                    z.clone(),
                    sc.zones_before.get(z).copied().unwrap_or(0).to_string(),
                    sc.zones_after.get(z).copied().unwrap_or(0).to_string(),
                ]
            })
            .collect();
        out.push_str(&table(["ZONE", "BEFORE", "AFTER"], &rows));
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Notes:");
        for n in &r.notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    let _ = writeln!(out);
    if r.warnings.is_empty() {
        let _ = writeln!(out, "Warnings: none");
    } else {
        let _ = writeln!(out, "Warnings ({}):", r.warnings.len());
        for w in &r.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}

pub(crate) fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::from(" ");
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            l.push(' ');
            l.push_str(c);
            if i + 1 < N {
                l.push_str(&" ".repeat(w - c.chars().count() + 1));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn settings_documents_and_manifests() {
        let c = PolicyConfig::parse("s.yml", "rules: []\n").unwrap();
        assert_eq!(c.settings, json!({"rules": []}));
        assert_eq!(c.source, "s.yml");
        assert!(c.sends("kube-system").is_ok());

        let c = PolicyConfig::parse("s.json", "").unwrap();
        assert_eq!(c.settings, json!({}));

        let manifest = "apiVersion: policies.kubewarden.io/v1
kind: AdmissionPolicy
metadata: {name: p, namespace: shop}
spec:
  mode: monitor
  rules: [{apiGroups: [''], apiVersions: [v1], resources: [pods/binding], operations: [CREATE]}]
  settings: {keepExistingCost: true}
";
        let c = PolicyConfig::parse("p.yaml", manifest).unwrap();
        assert_eq!(c.settings, json!({"keepExistingCost": true}));
        assert_eq!(c.source, "p.yaml (AdmissionPolicy p), spec.settings");
        assert_eq!(c.sends("shop"), Ok(()));
        assert_eq!(
            c.sends("web"),
            Err("outside the AdmissionPolicy's namespace")
        );
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("spec.mode is monitor"));
    }

    #[test]
    fn manifest_scope_and_warnings() {
        let manifest = "apiVersion: policies.kubewarden.io/v1
kind: ClusterAdmissionPolicy
metadata: {name: p}
spec:
  rules: [{resources: [pods], operations: [CREATE]}]
  namespaceSelector:
    matchLabels: {team: a}
    matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}]
  objectSelector: {matchLabels: {x: y}}
";
        let c = PolicyConfig::parse("p.yaml", manifest).unwrap();
        assert_eq!(c.settings, json!({}));
        assert_eq!(
            c.warnings,
            [
                "p.yaml (ClusterAdmissionPolicy p): spec.rules do not cover pods/binding CREATE: the API server would never send a Binding to this policy; the report shows what it would do if they did",
                "p.yaml (ClusterAdmissionPolicy p): spec.namespaceSelector uses the namespace label \"team\", which a snapshot of nodes and pods does not hold: it is treated as absent on every namespace",
            ]
        );
        assert_eq!(
            c.sends("shop"),
            Err("outside the policy's namespaceSelector")
        );
    }

    #[test]
    fn settings_a_newer_module_accepts_are_refused_by_name() {
        let config = PolicyConfig::parse("s.yml", "zones: {balance: true, spread: 2}\n").unwrap();
        assert_eq!(
            read_accepted_settings(&config).unwrap_err(),
            "s.yml: the policy module accepts these settings, but this version of the tool cannot read them: zones.spread: unknown field `spread`, expected one of `topologyKey`, `deletionCosts`, `balance`, `siblingLabels`"
        );
        let config =
            PolicyConfig::parse("s.yml", "zones: {balance: true, topologyKey: az}\n").unwrap();
        let settings = read_accepted_settings(&config).unwrap();
        assert!(settings.balance());
        assert_eq!(zone_label(&settings), "az");
        assert_eq!(zone_label(&Settings::default()), DEFAULT_TOPOLOGY_KEY);
    }

    /// `want` is the whole message but for the YAML parser's own words,
    /// which follow it where the text is not YAML.
    #[rstest]
    #[case::a_list("- a\n- b\n", "s.yml: settings must be a map, found a list")]
    #[case::another_kind(
        "kind: ClusterRole\nmetadata: {name: x}\n",
        "s.yml: a ClusterRole is neither policy settings nor a ClusterAdmissionPolicy or AdmissionPolicy"
    )]
    #[case::not_yaml("a: [\n", "s.yml: not valid YAML or JSON: ")]
    #[case::settings_a_list(
        "apiVersion: policies.kubewarden.io/v1\nkind: ClusterAdmissionPolicy\nmetadata: {name: p}\nspec: {settings: [1]}\n",
        "s.yml (ClusterAdmissionPolicy p): spec.settings: expected a map, found a list"
    )]
    #[case::bad_selector_operator(
        "apiVersion: policies.kubewarden.io/v1\nkind: ClusterAdmissionPolicy\nmetadata: {name: p}\nspec: {namespaceSelector: {matchExpressions: [{key: a, operator: Equals}]}}\n",
        "s.yml (ClusterAdmissionPolicy p): spec.namespaceSelector.matchExpressions[0].operator: \"Equals\" is not a valid operator (expected In, NotIn, Exists or DoesNotExist)"
    )]
    #[case::mode_a_number(
        "apiVersion: policies.kubewarden.io/v1\nkind: ClusterAdmissionPolicy\nmetadata: {name: p}\nspec: {mode: 3}\n",
        "s.yml (ClusterAdmissionPolicy p): spec.mode: expected a string, found a number"
    )]
    fn settings_errors_name_the_file_and_field(#[case] text: &str, #[case] want: &str) {
        let got = PolicyConfig::parse("s.yml", text).unwrap_err();
        if want.ends_with(": ") {
            assert!(got.starts_with(want), "{got}");
        } else {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn selectors_follow_label_selector_semantics() {
        let s = Selector::parse(
            &json!({"matchLabels": {"a": "1"}, "matchExpressions": [
                {"key": "b", "operator": "In", "values": ["x", "y"]},
                {"key": "c", "operator": "DoesNotExist"},
                {"key": "d", "operator": "NotIn", "values": ["z"]}]}),
            "sel",
        )
        .unwrap();
        let labels = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(s.matches(&labels(&[("a", "1"), ("b", "y")])));
        assert!(!s.matches(&labels(&[("a", "1"), ("b", "y"), ("c", "")])));
        assert!(!s.matches(&labels(&[("a", "1"), ("b", "y"), ("d", "z")])));
        assert!(!s.matches(&labels(&[("a", "2"), ("b", "y")])));
        assert!(Selector::default().matches(&BTreeMap::new()));
    }

    #[test]
    fn scale_targets() {
        assert_eq!(
            "shop/web=3".parse::<ScaleTarget>(),
            Ok(ScaleTarget {
                namespace: "shop".into(),
                name: "web".into(),
                replicas: 3
            })
        );
        assert_eq!(
            "shop/web=-1".parse::<ScaleTarget>().unwrap_err(),
            "--scale \"shop/web=-1\": \"-1\" is not a replica count (0 or more)"
        );
    }

    #[rstest::rstest]
    #[case::no_namespace("web=3")]
    #[case::empty_namespace("/web=3")]
    #[case::empty_name("shop/=3")]
    #[case::no_replicas("shop/web")]
    #[case::two_slashes("a/b/c=1")]
    fn scale_targets_refused(#[case] bad: &str) {
        assert!(
            bad.parse::<ScaleTarget>()
                .unwrap_err()
                .starts_with(&format!("--scale {bad:?}: expected <namespace>/"))
        );
    }
}
