//! An in-memory cluster: nodes and pods that answer the policy's host calls,
//! take the annotations of each admitted Binding, and scale ReplicaSets down
//! in the order the ReplicaSet controller uses.
//!
//! It is a library, not test-only code: scenario tests, benchmarks and the
//! `simulate` command all drive the real `policy.wasm` through it.

mod pod_index;
pub mod snapshot;

#[cfg(feature = "engine")]
mod engine;
#[cfg(feature = "engine")]
pub use engine::{BindOutcome, bind};

use pod_deletion_cost_policy::cluster::TEMPLATE_HASH_LABEL;
use pod_index::{Before, PodIndex};
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

pub use pod_deletion_cost_policy::objects::{COST_ANNOTATION, RANK_ANNOTATION, ZONE_ANNOTATION};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub owner: Option<Owner>,
    pub node_name: Option<String>,
    pub priority_class_name: Option<String>,
    pub priority: Option<i32>,
    /// Pending, Running, Succeeded, Failed, Unknown.
    pub phase: String,
    pub ready: bool,
    pub deleting: bool,
    /// Creation time: seconds since the epoch for pods read from a
    /// snapshot, a logical clock for pods the simulator creates. Larger is
    /// newer.
    pub created: u64,
    /// Time the pod became ready, on the same clock; 0 when unknown.
    pub ready_since: u64,
    pub restarts: u32,
}

impl Pod {
    pub fn cost(&self) -> i32 {
        // The ReplicaSet controller reads an unparsable cost as 0.
        self.annotations
            .get(COST_ANNOTATION)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// The pod as the API server would list it, before any field mask.
    pub fn to_json(&self) -> Value {
        let mut meta = json!({
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "creationTimestamp": crate::snapshot::format_timestamp(self.created),
        });
        if !self.labels.is_empty() {
            meta["labels"] = json!(self.labels);
        }
        if !self.annotations.is_empty() {
            meta["annotations"] = json!(self.annotations);
        }
        if let Some(o) = &self.owner {
            meta["ownerReferences"] = json!([{
                "apiVersion": "apps/v1", "kind": o.kind, "name": o.name, "uid": o.uid,
                "controller": true, "blockOwnerDeletion": true
            }]);
        }
        if self.deleting {
            meta["deletionTimestamp"] = json!("2026-11-01T00:00:00Z");
        }
        let mut spec =
            json!({"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]});
        if let Some(n) = &self.node_name {
            spec["nodeName"] = json!(n);
        }
        if let Some(pc) = &self.priority_class_name {
            spec["priorityClassName"] = json!(pc);
        }
        if let Some(p) = self.priority {
            spec["priority"] = json!(p);
        }
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": self.phase,
                       "conditions": [{"type": "Ready", "status": if self.ready {"True"} else {"False"}}]}
        })
    }
}

/// Keeps only `metadata` and the masked paths, as policy-server does.
pub fn apply_field_masks(object: &Value, masks: &[String]) -> Value {
    let mut out = json!({});
    for key in ["apiVersion", "kind", "metadata"] {
        if let Some(v) = object.get(key) {
            out[key] = v.clone();
        }
    }
    for mask in masks {
        let parts: Vec<&str> = mask.split('.').collect();
        if parts.first() == Some(&"metadata") {
            continue;
        }
        let mut src = object;
        let mut found = true;
        for p in &parts {
            match src.get(p) {
                Some(v) => src = v,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let mut dst = &mut out;
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                dst[*p] = src.clone();
            } else {
                if dst.get(*p).is_none() {
                    dst[*p] = json!({});
                }
                dst = &mut dst[*p];
            }
        }
    }
    out
}

/// A PodList answer around its items, already serialised and joined by
/// commas: the bytes `serde_json` writes for the whole list as one value.
fn pod_list(items: &str) -> String {
    const ITEMS: &str = "\"items\":[]";
    let envelope = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": []})
        .to_string();
    let (head, tail) = envelope.split_once(ITEMS).unwrap_or((&envelope, ""));
    let mut out = String::with_capacity(envelope.len() + items.len());
    out.push_str(head);
    out.push_str("\"items\":[");
    out.push_str(items);
    out.push(']');
    out.push_str(tail);
    out
}

/// The zone counted for pods whose node has no zone label.
pub const NO_ZONE: &str = "<none>";

/// One host call and its answer, as kwctl records them.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub operation: String,
    pub request: Value,
    pub response: Result<String, String>,
}

impl Exchange {
    /// This exchange as an entry of a kwctl replay session: the request a
    /// tagged YAML document inside a string, as kwctl records it.
    pub fn to_replay_yaml(&self) -> String {
        replay_session_yaml(std::slice::from_ref(self))
    }

    fn to_replay_entry(&self) -> serde_yaml::Value {
        use serde_yaml::value::{Tag, TaggedValue};
        let tag = pod_deletion_cost_policy::cluster::kwctl_tag(&self.operation)
            .unwrap_or("KubernetesCanI");
        let request = serde_yaml::to_value(&self.request).unwrap_or_default();
        let request = serde_yaml::to_string(&serde_yaml::Value::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value: request,
        })))
        .unwrap_or_default();
        let response = match &self.response {
            Ok(payload) => serde_json::json!({"type": "Success", "payload": payload}),
            Err(message) => serde_json::json!({"type": "Error", "message": message}),
        };
        serde_yaml::to_value(serde_json::json!({
            "type": "Exchange",
            "request": request,
            "response": response,
        }))
        .unwrap_or_default()
    }
}

pub fn replay_session_yaml(exchanges: &[Exchange]) -> String {
    let entries: Vec<serde_yaml::Value> = exchanges.iter().map(Exchange::to_replay_entry).collect();
    serde_yaml::to_string(&entries).unwrap_or_else(|_| "[]\n".into())
}

// The model's own copy of the masks the README documents, not the policy's
// constants: it checks that the policy sends them, so it must not read
// them from the policy.
const NODE_MASKS: &[&str] = &["metadata.labels"];
const POD_MASKS: &[&str] = &["spec.priority", "spec.priorityClassName"];
const LIST_MASKS: &[&str] = &[
    "spec.nodeName",
    "spec.priority",
    "spec.priorityClassName",
    "status.phase",
];

/// What policy-server keys a reflector by: one per distinct value, created
/// at the first list call with it and never released.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListKey {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub field_masks: Vec<String>,
}

/// The strings of a list field of a host call's payload (absent, or
/// anything but a list of strings, reads as empty).
fn string_list(req: &Value, key: &str) -> Vec<String> {
    req.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl ListKey {
    fn of(req: &Value) -> ListKey {
        let s = |k: &str| req.get(k).and_then(Value::as_str).map(String::from);
        let mut field_masks = string_list(req, "field_masks");
        field_masks.sort();
        ListKey {
            api_version: s("api_version").unwrap_or_default(),
            kind: s("kind").unwrap_or_default(),
            namespace: s("namespace").unwrap_or_default(),
            label_selector: s("label_selector"),
            field_selector: s("field_selector"),
            field_masks,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// In list order (the order the API server's cache returns them).
    /// Private so that every change keeps `index` in step.
    pods: Vec<Pod>,
    index: PodIndex,
    /// The pod `pod_mut` handed out last, as it was: the index takes its
    /// change in before its next use.
    lent: Option<(usize, Before)>,
    pub clock: u64,
    /// Host calls answered since the last `take_exchanges`.
    pub exchanges: Vec<Exchange>,
    /// Answer host calls without recording them in `exchanges`: a replay
    /// that writes no replay session spares a copy of every list answer.
    pub forget_exchanges: bool,
    /// Nodes that answer "not found" although pods run on them.
    pub missing_nodes: BTreeSet<String>,
    /// Operations that answer with an RBAC error.
    pub forbidden: BTreeSet<String>,
    /// Every distinct list the policy asked for, keyed as policy-server
    /// keys its watch-backed caches (reflectors): each one is a WATCH that
    /// policy-server keeps open until it restarts.
    pub list_keys: BTreeSet<ListKey>,
    /// The controller's "now" (same clock as `Pod::created`). When set,
    /// ready and creation times compare by their logarithmic age bucket, as
    /// with the LogarithmicScaleDown feature (on by default since 1.22);
    /// unset, they compare exactly.
    pub now: Option<u64>,
}

impl Cluster {
    pub fn add_node(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.nodes.push(Node {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Every pod, in list order.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The pods to change at will: the lookup index is rebuilt on its next
    /// use.
    pub fn pods_mut(&mut self) -> &mut Vec<Pod> {
        self.lent = None;
        self.index.reset();
        &mut self.pods
    }

    pub fn add_pod(&mut self, pod: Pod) {
        self.settle();
        self.pods.push(pod);
        self.index.pushed(&self.pods);
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.name == name && p.namespace == namespace)
    }

    /// One pod to change at will; the index takes the change in before its
    /// next use. `update_pod` says the same in one call.
    pub fn pod_mut(&mut self, namespace: &str, name: &str) -> Option<&mut Pod> {
        self.settle();
        let i = self.index.position(&self.pods, namespace, name)?;
        self.lent = Some((i, Before::of(&self.pods[i])));
        Some(&mut self.pods[i])
    }

    /// Takes in the change of the pod `pod_mut` handed out.
    fn settle(&mut self) {
        if let Some((i, before)) = self.lent.take()
            && let Some(pod) = self.pods.get(i)
        {
            self.index.changed(i, &before, pod);
        }
    }

    /// Changes one pod through `f`; `None` when there is no such pod.
    pub fn update_pod<R>(
        &mut self,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Pod) -> R,
    ) -> Option<R> {
        self.settle();
        let i = self.index.position(&self.pods, namespace, name)?;
        let pod = &mut self.pods[i];
        let before = Before::of(pod);
        let out = f(pod);
        self.index.changed(i, &before, pod);
        Some(out)
    }

    /// Creates an unscheduled pod of a ReplicaSet, as the controller would.
    pub fn create_rs_pod(&mut self, namespace: &str, rs: &str, labels: &[(&str, &str)]) -> String {
        self.clock += 1;
        let name = format!("{rs}-{:05}", self.clock);
        self.add_pod(Pod {
            name: name.clone(),
            namespace: namespace.into(),
            uid: format!("uid-{name}"),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            owner: Some(Owner {
                kind: "ReplicaSet".into(),
                name: rs.into(),
                uid: format!("uid-rs-{rs}"),
            }),
            node_name: None,
            priority_class_name: None,
            priority: Some(0),
            phase: "Pending".into(),
            ready: false,
            deleting: false,
            created: self.clock,
            ready_since: 0,
            restarts: 0,
        });
        name
    }

    pub fn take_exchanges(&mut self) -> Vec<Exchange> {
        std::mem::take(&mut self.exchanges)
    }

    /// Answers a `kubewarden`/`kubernetes` host call the way policy-server
    /// would, after checking the payload is exactly one the README
    /// documents: a wrong mask or cache flag is an error, not a silent answer.
    pub fn answer(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        let request: Value = serde_json::from_slice(payload)
            .map_err(|e| format!("host call payload is not JSON: {e}"))?;
        self.settle();
        let response = self.answer_checked(operation, &request);
        if operation == "list_resources_by_namespace" && response.is_ok() {
            self.list_keys.insert(ListKey::of(&request));
        }
        if self.forget_exchanges {
            return response.map(String::into_bytes);
        }
        self.exchanges.push(Exchange {
            operation: operation.into(),
            request,
            response: response.clone(),
        });
        response.map(String::into_bytes)
    }

    fn answer_checked(&mut self, operation: &str, req: &Value) -> Result<String, String> {
        let s = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or("");
        let masks = string_list(req, "field_masks");
        let expect = |cond: bool, what: &str| -> Result<(), String> {
            if cond {
                Ok(())
            } else {
                Err(format!("unexpected host call payload ({what}): {req}"))
            }
        };
        if self.forbidden.contains(operation) {
            return Err(format!(
                "pods is forbidden: User \"system:serviceaccount:kubewarden:policy-server-default\" cannot {operation} resource \"{}\"",
                s("kind").to_lowercase()
            ));
        }
        expect(s("api_version") == "v1", "api_version")?;
        match (operation, s("kind")) {
            ("get_resource", "Node") => {
                expect(req.get("namespace") == Some(&Value::Null), "namespace")?;
                expect(
                    req.get("disable_cache") == Some(&json!(false)),
                    "disable_cache",
                )?;
                expect(masks == NODE_MASKS, "field_masks")?;
                let name = s("name");
                match self.node(name) {
                    Some(n) if !self.missing_nodes.contains(name) => Ok(json!({
                        "apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": n.name, "uid": format!("uid-node-{}", n.name), "labels": n.labels}
                    })
                    .to_string()),
                    _ => Err(format!("nodes \"{name}\" not found")),
                }
            }
            ("get_resource", "Pod") => {
                expect(
                    req.get("disable_cache") == Some(&json!(true)),
                    "disable_cache",
                )?;
                expect(masks == POD_MASKS, "field_masks")?;
                let ns = s("namespace");
                let name = s("name");
                match self.index.position(&self.pods, ns, name) {
                    Some(i) => Ok(apply_field_masks(&self.pods[i].to_json(), &masks).to_string()),
                    None => Err(format!("pods \"{name}\" not found")),
                }
            }
            ("list_resources_by_namespace", "Pod") => {
                expect(
                    req.get("field_selector") == Some(&Value::Null),
                    "field_selector",
                )?;
                expect(masks == LIST_MASKS, "field_masks")?;
                let ns = s("namespace");
                let selector = match req.get("label_selector") {
                    Some(Value::Null) => Vec::new(),
                    Some(Value::String(sel)) if !sel.is_empty() => parse_selector(sel)?,
                    _ => {
                        return Err(format!(
                            "unexpected host call payload (label_selector): {req}"
                        ));
                    }
                };
                let items = self.index.list(&self.pods, ns, selector, |p| {
                    apply_field_masks(&p.to_json(), &masks).to_string()
                });
                Ok(pod_list(items))
            }
            _ => Err(format!("unexpected host call {operation}: {req}")),
        }
    }

    /// The Binding admission request the scheduler's bind would cause.
    pub fn binding_request(&self, namespace: &str, pod: &str, node: &str) -> Value {
        json!({
            "uid": format!("bind-{namespace}-{pod}"),
            "kind": {"group": "", "version": "v1", "kind": "Binding"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": "binding",
            "requestKind": {"group": "", "version": "v1", "kind": "Binding"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "requestSubResource": "binding",
            "name": pod,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:kube-scheduler", "groups": ["system:authenticated"]},
            "object": {
                "kind": "Binding", "apiVersion": "v1",
                "metadata": {"name": pod, "namespace": namespace, "uid": format!("uid-{pod}"), "creationTimestamp": null},
                "target": {"kind": "Node", "name": node}
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        })
    }

    /// Completes a bind the policy admitted: copies the Binding's
    /// annotations onto the pod (as the API server does) and starts it.
    pub fn complete_bind(
        &mut self,
        namespace: &str,
        pod: &str,
        node: &str,
        mutated: Option<&Value>,
    ) {
        self.clock += 1;
        let clock = self.clock;
        self.update_pod(namespace, pod, |p| {
            if let Some(Value::Object(ann)) = mutated
                .and_then(|b| b.get("metadata"))
                .and_then(|m| m.get("annotations"))
            {
                for (k, v) in ann {
                    if let Some(v) = v.as_str() {
                        p.annotations.insert(k.clone(), v.to_string());
                    }
                }
            }
            p.node_name = Some(node.into());
            p.phase = "Running".into();
            p.ready = true;
            p.ready_since = clock;
        });
    }

    /// Pods of a ReplicaSet that the controller counts (not being deleted,
    /// not finished).
    pub fn active_pods(&self, rs_uid: &str) -> Vec<&Pod> {
        self.pods
            .iter()
            .filter(|p| {
                p.owner.as_ref().is_some_and(|o| o.uid == rs_uid)
                    && !p.deleting
                    && p.phase != "Succeeded"
                    && p.phase != "Failed"
            })
            .collect()
    }

    /// The active pods of every ReplicaSet of the Deployment that owns
    /// `rs_uid` (just the ReplicaSet's own when no Deployment owns it): the
    /// controller's "related pods" (`getIndirectlyRelatedPods`).
    pub fn related_pods(&self, rs_uid: &str) -> Vec<&Pod> {
        let owned = |p: &Pod| p.owner.as_ref().is_some_and(|o| o.uid == rs_uid);
        let Some(deployment) = self
            .pods
            .iter()
            .find(|p| owned(p))
            .and_then(|p| deployment_of(p).map(|d| (p.namespace.clone(), d.to_string())))
        else {
            return self.active_pods(rs_uid);
        };
        self.pods
            .iter()
            .filter(|p| {
                p.namespace == deployment.0
                    && deployment_of(p) == Some(deployment.1.as_str())
                    && !p.deleting
                    && p.phase != "Succeeded"
                    && p.phase != "Failed"
            })
            .collect()
    }

    /// The ReplicaSet controller's deletion order for `rs_uid`: the pods it
    /// would delete first come first. "More replicas on the same node"
    /// counts the related pods, so during a rollout the other ReplicaSets'
    /// pods weigh on a node too.
    pub fn deletion_order(&self, rs_uid: &str) -> Vec<&Pod> {
        let pods = self.active_pods(rs_uid);
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for p in self.related_pods(rs_uid) {
            if let Some(n) = p.node_name.as_deref() {
                *per_node.entry(n).or_default() += 1;
            }
        }
        let related = |p: &Pod| {
            p.node_name
                .as_deref()
                .and_then(|n| per_node.get(n).copied())
                .unwrap_or(0)
        };
        let mut ordered = pods.clone();
        ordered.sort_by(|a, b| deletion_cmp(a, b, related(a), related(b), self.now));
        ordered
    }

    /// Scales a ReplicaSet down to `replicas`, removing pods in the
    /// controller's order; returns the names removed.
    pub fn scale_down(&mut self, rs_uid: &str, replicas: usize) -> Vec<String> {
        let order: Vec<String> = self
            .deletion_order(rs_uid)
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let excess = order.len().saturating_sub(replicas);
        let removed: Vec<String> = order.into_iter().take(excess).collect();
        let gone: BTreeSet<&String> = removed.iter().collect();
        self.pods_mut().retain(|p| !gone.contains(&p.name));
        removed
    }

    /// Pods per zone label value for `rs_uid`, by the node's label `key`
    /// (`NO_ZONE` for pods on a node without it).
    pub fn per_zone(&self, rs_uid: &str, key: &str) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for p in self.active_pods(rs_uid) {
            let zone = p
                .node_name
                .as_deref()
                .and_then(|n| self.node(n))
                .and_then(|n| n.labels.get(key))
                .cloned()
                .unwrap_or_else(|| NO_ZONE.into());
            *out.entry(zone).or_default() += 1;
        }
        out
    }
}

/// The Deployment that owns a pod's ReplicaSet, by the Deployment
/// controller's naming: the ReplicaSet is `<deployment>-<pod-template-hash>`
/// and its pods carry that hash. A snapshot of pods has no ReplicaSet
/// objects, so this is what tells the ReplicaSets of one Deployment apart.
pub fn deployment_of(p: &Pod) -> Option<&str> {
    let owner = p.owner.as_ref().filter(|o| o.kind == "ReplicaSet")?;
    let hash = p.labels.get(TEMPLATE_HASH_LABEL)?;
    owner
        .name
        .strip_suffix(hash.as_str())?
        .strip_suffix('-')
        .filter(|d| !d.is_empty())
}

fn parse_selector(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("label selector term {kv:?} is not key=value"))
        })
        .collect()
}

fn phase_rank(phase: &str) -> u8 {
    match phase {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    }
}

/// `ActivePodsWithRanks.Less` of the ReplicaSet controller: `Less` means
/// deleted earlier.
pub fn deletion_cmp(
    a: &Pod,
    b: &Pod,
    a_related: usize,
    b_related: usize,
    now: Option<u64>,
) -> Ordering {
    let assigned = |p: &Pod| p.node_name.as_deref().is_some_and(|n| !n.is_empty());
    let by_state = assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(&a.phase).cmp(&phase_rank(&b.phase)))
        .then(a.ready.cmp(&b.ready))
        .then(a.cost().cmp(&b.cost()))
        // More replicas on the same node: deleted first.
        .then(b_related.cmp(&a_related));
    if by_state != Ordering::Equal {
        return by_state;
    }
    // Ready more recently: deleted first.
    if a.ready && b.ready && a.ready_since != b.ready_since {
        return newer_first(a, b, a.ready_since, b.ready_since, now);
    }
    if a.restarts != b.restarts {
        return b.restarts.cmp(&a.restarts);
    }
    if a.created != b.created {
        return newer_first(a, b, a.created, b.created, now);
    }
    a.name.cmp(&b.name)
}

/// The controller's time comparison: a zero (unknown) time goes first, then
/// the newer; with a `now`, times in the same power-of-two age bucket are
/// equal and the pod UID decides.
fn newer_first(a: &Pod, b: &Pod, ta: u64, tb: u64, now: Option<u64>) -> Ordering {
    if ta == 0 {
        return Ordering::Less;
    }
    if tb == 0 {
        return Ordering::Greater;
    }
    match now {
        None => tb.cmp(&ta),
        Some(now) => {
            let bucket = |t: u64| -> i64 {
                // Go's time.Duration is in nanoseconds.
                let age = now.saturating_sub(t) as f64 * 1e9;
                if age > 0.0 { age.log2() as i64 } else { -1 }
            };
            match bucket(ta).cmp(&bucket(tb)) {
                Ordering::Equal => a.uid.cmp(&b.uid),
                other => other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        let mut c = Cluster::default();
        c.add_node("n1", &[("zone", "a")]);
        c.add_node("n2", &[("zone", "b")]);
        c
    }

    #[test]
    fn deletion_prefers_lower_cost_then_fuller_node_then_newer() {
        let mut c = cluster();
        let p1 = c.create_rs_pod("ns", "web", &[("app", "web")]);
        let p2 = c.create_rs_pod("ns", "web", &[("app", "web")]);
        let p3 = c.create_rs_pod("ns", "web", &[("app", "web")]);
        c.complete_bind("ns", &p1, "n1", None);
        c.complete_bind("ns", &p2, "n1", None);
        c.complete_bind("ns", &p3, "n2", None);
        let order: Vec<&str> = c
            .deletion_order("uid-rs-web")
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        // Equal costs: the two on n1 go first, the most recently ready first.
        assert_eq!(order, [p2.as_str(), p1.as_str(), p3.as_str()]);
        c.update_pod("ns", &p1, |p| {
            p.annotations.insert(COST_ANNOTATION.into(), "-5".into())
        });
        let order: Vec<&str> = c
            .deletion_order("uid-rs-web")
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(order[0], p1);
        let removed = c.scale_down("uid-rs-web", 1);
        assert_eq!(removed, [p1.clone(), p2.clone()]);
    }

    #[test]
    fn logarithmic_scale_down_buckets_ages_and_breaks_ties_by_uid() {
        let mut c = cluster();
        let a = c.create_rs_pod("ns", "web", &[]);
        let b = c.create_rs_pod("ns", "web", &[]);
        c.complete_bind("ns", &a, "n1", None);
        c.complete_bind("ns", &b, "n2", None);
        for (name, ready, uid) in [(&a, 1_000, "uid-z"), (&b, 1_100, "uid-a")] {
            c.update_pod("ns", name, |p| {
                p.ready_since = ready;
                p.uid = uid.into();
            });
        }
        let order = |c: &Cluster| -> Vec<String> {
            c.deletion_order("uid-rs-web")
                .iter()
                .map(|p| p.name.clone())
                .collect()
        };
        // Exact times: the more recently ready pod goes first.
        assert_eq!(order(&c), [b.clone(), a.clone()]);
        // 10,000 s later both are 2^43..2^44 ns old: one bucket, the UID decides.
        c.now = Some(11_000);
        assert_eq!(order(&c), [b.clone(), a.clone()]);
        c.update_pod("ns", &b, |p| p.uid = "uid-zz".into());
        assert_eq!(order(&c), [a.clone(), b.clone()]);
        // 150 s and 50 s old: different buckets, the younger goes first.
        c.now = Some(1_150);
        assert_eq!(order(&c), [b.clone(), a.clone()]);
    }

    #[test]
    fn unassigned_and_pending_go_first() {
        let mut c = cluster();
        let running = c.create_rs_pod("ns", "web", &[]);
        c.complete_bind("ns", &running, "n1", None);
        let pending = c.create_rs_pod("ns", "web", &[]);
        let order: Vec<&str> = c
            .deletion_order("uid-rs-web")
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(order, [pending.as_str(), running.as_str()]);
    }

    #[test]
    fn answers_check_payloads() {
        let mut c = cluster();
        let ok = br#"{"api_version":"v1","kind":"Node","name":"n1","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}"#;
        let v: Value = serde_json::from_slice(&c.answer("get_resource", ok).unwrap()).unwrap();
        assert_eq!(v["metadata"]["labels"]["zone"], "a");
        let wrong = br#"{"api_version":"v1","kind":"Node","name":"n1","namespace":null,"disable_cache":true,"field_masks":["metadata.labels"]}"#;
        assert!(
            c.answer("get_resource", wrong)
                .unwrap_err()
                .contains("disable_cache")
        );
        let missing = br#"{"api_version":"v1","kind":"Node","name":"zz","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}"#;
        assert_eq!(
            c.answer("get_resource", missing).unwrap_err(),
            "nodes \"zz\" not found"
        );
        assert_eq!(c.take_exchanges().len(), 3);
    }

    #[test]
    fn forgotten_exchanges_answer_the_same() {
        let mut c = cluster();
        let ok = br#"{"api_version":"v1","kind":"Node","name":"n1","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}"#;
        let recorded = c.answer("get_resource", ok).unwrap();
        c.forget_exchanges = true;
        assert_eq!(c.answer("get_resource", ok).unwrap(), recorded);
        assert_eq!(c.take_exchanges().len(), 1);
    }

    #[test]
    fn lists_are_counted_by_their_cache_key() {
        let mut c = cluster();
        let a = c.create_rs_pod(
            "ns",
            "web-abc",
            &[("app", "web"), ("pod-template-hash", "abc")],
        );
        c.complete_bind("ns", &a, "n1", None);
        let list = |selector: &str| {
            format!(
                r#"{{"api_version":"v1","kind":"Pod","namespace":"ns","label_selector":{selector},"field_selector":null,"field_masks":["spec.nodeName","spec.priority","spec.priorityClassName","status.phase"]}}"#
            )
        };
        let items = |c: &mut Cluster, selector: &str| -> usize {
            let v: Value = serde_json::from_slice(
                &c.answer("list_resources_by_namespace", list(selector).as_bytes())
                    .unwrap(),
            )
            .unwrap();
            v["items"].as_array().unwrap().len()
        };
        assert_eq!(items(&mut c, r#""app=web""#), 1);
        assert_eq!(items(&mut c, r#""app=web""#), 1);
        assert_eq!(items(&mut c, r#""app=db""#), 0);
        // No label left on the pod: the whole namespace, one more key.
        assert_eq!(items(&mut c, "null"), 1);
        assert_eq!(c.list_keys.len(), 3);
        assert!(c.list_keys.iter().any(|k| k.label_selector.is_none()));
        // An empty selector string is not what the policy sends.
        let err = c
            .answer("list_resources_by_namespace", list(r#""""#).as_bytes())
            .unwrap_err();
        assert!(err.contains("label_selector"), "{err}");
        assert_eq!(c.list_keys.len(), 3);
    }

    #[test]
    fn related_pods_span_the_deployments_replicasets() {
        let mut c = cluster();
        let old = c.create_rs_pod(
            "ns",
            "web-old1",
            &[("app", "web"), ("pod-template-hash", "old1")],
        );
        let new = c.create_rs_pod(
            "ns",
            "web-new1",
            &[("app", "web"), ("pod-template-hash", "new1")],
        );
        let other = c.create_rs_pod(
            "ns",
            "api-new1",
            &[("app", "api"), ("pod-template-hash", "new1")],
        );
        let bare = c.create_rs_pod("ns", "bare", &[("app", "bare")]);
        for p in [&old, &new, &other, &bare] {
            c.complete_bind("ns", p, "n1", None);
        }
        let names =
            |pods: Vec<&Pod>| -> Vec<String> { pods.iter().map(|p| p.name.clone()).collect() };
        assert_eq!(deployment_of(c.pod("ns", &old).unwrap()), Some("web"));
        assert_eq!(deployment_of(c.pod("ns", &bare).unwrap()), None);
        assert_eq!(
            names(c.related_pods("uid-rs-web-new1")),
            [old.clone(), new.clone()]
        );
        assert_eq!(names(c.related_pods("uid-rs-bare")), [bare]);
    }

    #[test]
    fn field_masks_keep_metadata_and_masked_paths() {
        let mut c = cluster();
        let p = c.create_rs_pod("ns", "web", &[("app", "web")]);
        c.complete_bind("ns", &p, "n1", None);
        let masked = apply_field_masks(
            &c.pod("ns", &p).unwrap().to_json(),
            &["spec.nodeName".into(), "status.phase".into()],
        );
        assert_eq!(masked["spec"], json!({"nodeName": "n1"}));
        assert_eq!(masked["status"], json!({"phase": "Running"}));
        assert_eq!(masked["metadata"]["name"], json!(p));
    }

    /// A cluster change, or a lookup whose answer is checked.
    #[derive(Debug, Clone)]
    enum Step {
        Create {
            ns: usize,
            app: usize,
            tier: Option<usize>,
        },
        Bind {
            pod: usize,
            node: usize,
            cost: i32,
        },
        Relabel {
            pod: usize,
            app: usize,
        },
        RelabelLent {
            pod: usize,
            app: usize,
        },
        Rename {
            pod: usize,
        },
        Remove {
            pod: usize,
        },
        ScaleDown {
            app: usize,
            replicas: usize,
        },
        List {
            ns: usize,
            app: Option<usize>,
            tier: Option<usize>,
        },
        Get {
            pod: usize,
        },
    }

    const NAMESPACES: [&str; 2] = ["shop", "team"];
    const APPS: [&str; 3] = ["web", "api", "db"];
    const TIERS: [&str; 2] = ["front", "back"];

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        // Lookups and label changes weigh more than removals, which reset
        // the whole index.
        prop_oneof![
            4 => (0..2usize, 0..3usize, proptest::option::of(0..2usize))
                .prop_map(|(ns, app, tier)| Step::Create { ns, app, tier }),
            2 => (0..64usize, 0..2usize, -5..5i32).prop_map(|(pod, node, cost)| Step::Bind {
                pod,
                node,
                cost
            }),
            2 => (0..64usize, 0..3usize).prop_map(|(pod, app)| Step::Relabel { pod, app }),
            2 => (0..64usize, 0..3usize).prop_map(|(pod, app)| Step::RelabelLent { pod, app }),
            1 => (0..64usize).prop_map(|pod| Step::Rename { pod }),
            1 => (0..64usize).prop_map(|pod| Step::Remove { pod }),
            1 => (0..3usize, 0..4usize).prop_map(|(app, replicas)| Step::ScaleDown { app, replicas }),
            6 => (
                0..2usize,
                proptest::option::of(0..3usize),
                proptest::option::of(0..2usize)
            )
                .prop_map(|(ns, app, tier)| Step::List { ns, app, tier }),
            2 => (0..64usize).prop_map(|pod| Step::Get { pod }),
        ]
    }

    fn masks(fields: &[&str]) -> Vec<String> {
        fields.iter().map(|m| m.to_string()).collect()
    }

    /// The list answer as it was built before the index: every pod walked,
    /// the matching ones masked, the whole list serialised as one value.
    fn list_by_walking(c: &Cluster, ns: &str, selector: &[(String, String)]) -> String {
        let items: Vec<Value> = c
            .pods()
            .iter()
            .filter(|p| {
                p.namespace == ns && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
            })
            .map(|p| apply_field_masks(&p.to_json(), &masks(LIST_MASKS)))
            .collect();
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items})
            .to_string()
    }

    fn apply(c: &mut Cluster, step: &Step) -> Result<(), String> {
        let nth = |c: &Cluster, i: usize| {
            let pods = c.pods();
            (!pods.is_empty()).then(|| {
                let p = &pods[i % pods.len()];
                (p.namespace.clone(), p.name.clone())
            })
        };
        match *step {
            Step::Create { ns, app, tier } => {
                let mut labels = vec![("app", APPS[app])];
                labels.extend(tier.map(|t| ("tier", TIERS[t])));
                c.create_rs_pod(NAMESPACES[ns], APPS[app], &labels);
            }
            Step::Bind { pod, node, cost } => {
                if let Some((ns, name)) = nth(c, pod) {
                    let binding =
                        json!({"metadata": {"annotations": {COST_ANNOTATION: cost.to_string()}}});
                    c.complete_bind(&ns, &name, ["n1", "n2"][node], Some(&binding));
                }
            }
            Step::Relabel { pod, app } => {
                if let Some((ns, name)) = nth(c, pod) {
                    c.update_pod(&ns, &name, |p| {
                        p.labels.insert("app".into(), APPS[app].into())
                    });
                }
            }
            Step::RelabelLent { pod, app } => {
                if let Some((ns, name)) = nth(c, pod)
                    && let Some(p) = c.pod_mut(&ns, &name)
                {
                    p.labels.insert("app".into(), APPS[app].into());
                    p.phase = "Unknown".into();
                }
            }
            Step::Rename { pod } => {
                if let Some((ns, name)) = nth(c, pod) {
                    c.update_pod(&ns, &name, |p| p.name.push('x'));
                }
            }
            Step::Remove { pod } => {
                if !c.pods().is_empty() {
                    let i = pod % c.pods().len();
                    c.pods_mut().remove(i);
                }
            }
            Step::ScaleDown { app, replicas } => {
                c.scale_down(&format!("uid-rs-{}", APPS[app]), replicas);
            }
            Step::List { ns, app, tier } => {
                let mut terms: Vec<(String, String)> = Vec::new();
                terms.extend(app.map(|a| ("app".to_string(), APPS[a].to_string())));
                terms.extend(tier.map(|t| ("tier".to_string(), TIERS[t].to_string())));
                let selector = match terms.is_empty() {
                    true => Value::Null,
                    false => json!(
                        terms
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                };
                let req = json!({"api_version": "v1", "kind": "Pod", "namespace": NAMESPACES[ns],
                    "label_selector": selector, "field_selector": null, "field_masks": LIST_MASKS});
                let got = c.answer("list_resources_by_namespace", req.to_string().as_bytes())?;
                let want = list_by_walking(c, NAMESPACES[ns], &terms);
                if got != want.as_bytes() {
                    return Err(format!(
                        "list {req}: {} instead of {want}",
                        String::from_utf8_lossy(&got)
                    ));
                }
            }
            Step::Get { pod } => {
                if let Some((ns, name)) = nth(c, pod) {
                    let req = json!({"api_version": "v1", "kind": "Pod", "name": name, "namespace": ns,
                        "disable_cache": true, "field_masks": POD_MASKS});
                    let got = c.answer("get_resource", req.to_string().as_bytes())?;
                    let pod = c.pod(&ns, &name).ok_or("the pod vanished")?;
                    let want = apply_field_masks(&pod.to_json(), &masks(POD_MASKS)).to_string();
                    if got != want.as_bytes() {
                        return Err(format!(
                            "get {req}: {} instead of {want}",
                            String::from_utf8_lossy(&got)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn a_bound_pod_is_patched_into_the_lists_it_is_in() {
        let mut c = cluster();
        let names: Vec<String> = (0..20)
            .map(|_| c.create_rs_pod("shop", "web", &[("app", "web")]))
            .collect();
        let list = Step::List {
            ns: 0,
            app: Some(0),
            tier: None,
        };
        apply(&mut c, &list).unwrap();
        for (i, name) in names.iter().enumerate().skip(3).step_by(5) {
            let cost = json!({"metadata": {"annotations": {COST_ANNOTATION: format!("-{i}")}}});
            c.complete_bind("shop", name, "n1", Some(&cost));
            apply(&mut c, &list).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn indexed_answers_equal_the_ones_built_by_walking_every_pod(
            steps in proptest::collection::vec(step(), 1..160)
        ) {
            let mut c = cluster();
            for s in &steps {
                if let Err(e) = apply(&mut c, s) {
                    proptest::prop_assert!(false, "after {s:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn replay_yaml_shape() {
        let e = Exchange {
            operation: "get_resource".into(),
            request: json!({"api_version":"v1","kind":"Node","name":"n1","namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]}),
            response: Ok(r#"{"a":"it's"}"#.into()),
        };
        let y = e.to_replay_yaml();
        // Read back as kwctl reads it: a list of exchanges whose request
        // is a tagged document in a string.
        let back: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        let entry = &back[0];
        assert_eq!(entry["type"], "Exchange");
        let request: serde_yaml::Value =
            serde_yaml::from_str(entry["request"].as_str().unwrap()).unwrap();
        let serde_yaml::Value::Tagged(tagged) = request else {
            panic!("the request is not tagged: {y}");
        };
        assert_eq!(
            tagged.tag,
            serde_yaml::value::Tag::new("KubernetesGetResource")
        );
        assert_eq!(tagged.value["field_masks"][0], "metadata.labels");
        assert_eq!(tagged.value["namespace"], serde_yaml::Value::Null);
        assert_eq!(entry["response"]["type"], "Success");
        assert_eq!(entry["response"]["payload"], r#"{"a":"it's"}"#);
        assert_eq!(replay_session_yaml(&[]), "[]\n");
    }
}
