//! Properties of `evaluate` over random settings and random clusters.
//!
//! Each case builds a small cluster (nodes with random labels, pods of two
//! ReplicaSets and others, some bound, some placeholders, some finished or
//! terminating, with random zone/rank/cost annotations), then binds a few
//! pending pods one after another through an in-memory host that answers
//! from that cluster, applying every returned annotation to the simulated
//! pod before the next binding, as the API server would.

use pod_deletion_cost_policy::cluster::Host;
use pod_deletion_cost_policy::evaluate::{self, Response};
use pod_deletion_cost_policy::objects::{COST_ANNOTATION, RANK_ANNOTATION, ZONE_ANNOTATION};
use pod_deletion_cost_policy::settings::{self, OnLookupError};
use proptest::prelude::*;
use proptest::sample::select;
use rstest::rstest;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

const NAMESPACE: &str = "shop";
const ZONE_KEYS: [&str; 2] = ["topology.kubernetes.io/zone", "available_zone"];
const LABEL_KEYS: [&str; 4] = [
    "tier",
    "eks.amazonaws.com/compute-type",
    "topology.kubernetes.io/zone",
    "available_zone",
];
// Zone names overlap the other values on purpose: a node's zone value can
// also be what a rule selects on.
const VALUES: [&str; 6] = ["a", "b", "c", "hybrid", "ec2", ""];
const ZONES: [&str; 3] = ["a", "b", "c"];
const PLACEHOLDER_CLASS: &str = "hold";
const PLACEHOLDER_LABEL: (&str, &str) = ("role", "placeholder");

// ---- settings ----

fn cost() -> impl Strategy<Value = i32> {
    prop_oneof![
        6 => -5i32..=20,
        1 => any::<i32>(),
        1 => Just(i32::MAX),
        1 => Just(i32::MIN),
    ]
}

fn expression() -> impl Strategy<Value = Value> {
    (
        select(&LABEL_KEYS[..]),
        0..4u8,
        prop::collection::vec(select(&VALUES[..]), 1..3),
    )
        .prop_map(|(key, op, values)| match op {
            0 => json!({"key": key, "operator": "In", "values": values}),
            1 => json!({"key": key, "operator": "NotIn", "values": values}),
            2 => json!({"key": key, "operator": "Exists"}),
            _ => json!({"key": key, "operator": "DoesNotExist"}),
        })
}

fn selector() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map(select(&LABEL_KEYS[..]), select(&VALUES[..]), 0..2),
        prop::collection::vec(expression(), 0..2),
    )
        .prop_map(|(labels, exprs)| json!({"matchLabels": labels, "matchExpressions": exprs}))
}

fn rule() -> impl Strategy<Value = (bool, Value, i32)> {
    (any::<bool>(), selector(), cost())
}

fn zones() -> impl Strategy<Value = Value> {
    (
        select(&ZONE_KEYS[..]),
        prop::collection::btree_map(select(&ZONES[..]), cost(), 0..3),
        prop::bool::weighted(0.7),
    )
        .prop_map(|(key, costs, balance)| {
            json!({"topologyKey": key, "deletionCosts": costs, "balance": balance})
        })
}

fn placeholders() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        any::<bool>(),
        // -1 takes the placeholder-class pods (priority -1) whether or not
        // the class is listed; 0 takes every pod.
        prop::option::weighted(0.4, select(&[-1, 0][..])),
    )
        .prop_map(|(by_class, by_label, max_priority)| {
            let mut p = Map::new();
            // At least one of the three: the settings require it.
            if by_class || (!by_label && max_priority.is_none()) {
                p.insert("priorityClassNames".into(), json!([PLACEHOLDER_CLASS]));
            }
            if by_label {
                p.insert(
                    "podSelector".into(),
                    json!({"matchLabels": {PLACEHOLDER_LABEL.0: PLACEHOLDER_LABEL.1}}),
                );
            }
            if let Some(max) = max_priority {
                p.insert("maxPriority".into(), json!(max));
            }
            Value::Object(p)
        })
}

fn settings() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop::collection::vec(rule(), 0..3)),
        prop::option::of(cost()),
        prop::option::weighted(0.7, zones()),
        prop::option::of(placeholders()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(rules, default, zones, placeholders, keep, reject)| {
            let mut s = Map::new();
            if let Some(rules) = rules {
                let rules: Vec<Value> = rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, (named, sel, cost))| {
                        let mut r = json!({"nodeSelector": sel, "deletionCost": cost});
                        if named {
                            r["name"] = json!(format!("rule-{i}"));
                        }
                        r
                    })
                    .collect();
                s.insert("rules".into(), json!(rules));
            }
            if let Some(d) = default {
                s.insert("defaultDeletionCost".into(), json!(d));
            }
            if let Some(z) = zones {
                s.insert("zones".into(), z);
            }
            if let Some(p) = placeholders {
                s.insert("placeholders".into(), p);
            }
            s.insert("keepExistingCost".into(), json!(keep));
            s.insert(
                "onLookupError".into(),
                json!(if reject { "reject" } else { "allow" }),
            );
            Value::Object(s)
        })
}

// ---- cluster ----

#[derive(Debug, Clone)]
struct PodGen {
    /// 0 and 1: ReplicaSets rs-0 and rs-1; 2: a StatefulSet; 3: no owner.
    owner: u8,
    node: Option<usize>,
    phase: &'static str,
    deleting: bool,
    placeholder_class: bool,
    zone: Option<&'static str>,
    rank: Option<&'static str>,
    cost: Option<&'static str>,
}

fn pod_gen(nodes: usize) -> impl Strategy<Value = PodGen> {
    (
        prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
        prop::option::weighted(0.85, 0..nodes),
        select(
            &[
                "Running",
                "Running",
                "Running",
                "Pending",
                "Succeeded",
                "Failed",
            ][..],
        ),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::option::of(select(&["a", "b", "c", "", "zz"][..])),
        prop::option::of(select(&["0", "1", "2", "3", "7", "01", "-1", "x", ""][..])),
        prop::option::weighted(0.2, select(&["1", "-4", "100"][..])),
    )
        .prop_map(
            |(owner, node, phase, deleting, placeholder_class, zone, rank, cost)| PodGen {
                owner,
                node,
                phase,
                deleting,
                placeholder_class,
                zone,
                rank,
                cost,
            },
        )
}

/// A pending pod to bind and where the scheduler sends it (an index past
/// the last node names a node that does not exist).
#[derive(Debug, Clone)]
struct Pending {
    owner: u8,
    target: usize,
    placeholder_class: bool,
    cost: Option<&'static str>,
    /// Annotations the Binding itself carries: none, `null`, or others.
    binding_annotations: u8,
}

fn pending_gen(nodes: usize) -> impl Strategy<Value = Pending> {
    (
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
        prop_oneof![12 => 0..nodes, 1 => Just(nodes)],
        prop::bool::weighted(0.1),
        prop::option::weighted(0.15, select(&["1", "-4", "100"][..])),
        0..3u8,
    )
        .prop_map(
            |(owner, target, placeholder_class, cost, binding_annotations)| Pending {
                owner,
                target,
                placeholder_class,
                cost,
                binding_annotations,
            },
        )
}

/// Which host call fails, if any: the others answer from the cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fail {
    Nothing,
    NodeGet,
    PodGet,
    List,
}

#[derive(Debug, Clone)]
struct Scenario {
    settings: Value,
    nodes: Vec<BTreeMap<&'static str, &'static str>>,
    pods: Vec<PodGen>,
    pending: Vec<Pending>,
    fail: Fail,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let node = prop::collection::btree_map(select(&LABEL_KEYS[..]), select(&VALUES[..]), 0..4);
    (prop::collection::vec(node, 1..5), settings())
        .prop_flat_map(|(nodes, settings)| {
            let n = nodes.len();
            (
                Just(nodes),
                Just(settings),
                prop::collection::vec(pod_gen(n), 0..8),
                prop::collection::vec(pending_gen(n), 1..6),
                prop_oneof![
                    12 => Just(Fail::Nothing),
                    1 => Just(Fail::NodeGet),
                    1 => Just(Fail::PodGet),
                    1 => Just(Fail::List),
                ],
            )
        })
        .prop_map(|(nodes, settings, pods, pending, fail)| Scenario {
            settings,
            nodes,
            pods,
            pending,
            fail,
        })
}

fn node_name(i: usize) -> String {
    format!("node-{i}")
}

fn pod_json(
    name: &str,
    owner: u8,
    node: &str,
    phase: &str,
    placeholder_class: bool,
    annotations: Map<String, Value>,
) -> Value {
    // Labels follow the owner, as they do for pods of one template: the
    // policy finds siblings by the pod's own labels. rs-1 is the
    // placeholder Deployment when placeholders are chosen by label.
    let mut labels = json!({"app": "web", "pod-template-hash": format!("h{owner}")});
    if owner == 1 {
        labels[PLACEHOLDER_LABEL.0] = json!(PLACEHOLDER_LABEL.1);
    }
    let owners = match owner {
        0 | 1 => {
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("web-h{owner}"),
                         "uid": format!("rs-{owner}"), "controller": true}])
        }
        2 => json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                     "uid": "sts-0", "controller": true}]),
        _ => json!([]),
    };
    let mut spec = json!({"nodeName": node, "priority": 0});
    if placeholder_class {
        spec["priorityClassName"] = json!(PLACEHOLDER_CLASS);
        spec["priority"] = json!(-1);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": format!("uid-{name}"),
                     "labels": labels, "annotations": annotations, "ownerReferences": owners},
        "spec": spec,
        "status": {"phase": phase}
    })
}

/// The simulated cluster: what the API server would answer.
#[derive(Debug, Clone)]
struct Cluster {
    nodes: BTreeMap<String, Value>,
    /// In the order the API server lists them.
    pods: Vec<Value>,
}

impl Cluster {
    fn new(s: &Scenario) -> Self {
        let nodes = s
            .nodes
            .iter()
            .enumerate()
            .map(|(i, labels)| {
                let name = node_name(i);
                let node = json!({"apiVersion": "v1", "kind": "Node",
                                  "metadata": {"name": name, "labels": labels},
                                  "spec": {"providerID": "x"}, "status": {"phase": "Running"}});
                (name, node)
            })
            .collect();
        let mut pods = Vec::new();
        for (i, p) in s.pods.iter().enumerate() {
            let mut ann = Map::new();
            if let Some(z) = p.zone {
                ann.insert(ZONE_ANNOTATION.into(), json!(z));
            }
            if let Some(r) = p.rank {
                ann.insert(RANK_ANNOTATION.into(), json!(r));
            }
            if let Some(c) = p.cost {
                ann.insert(COST_ANNOTATION.into(), json!(c));
            }
            let node = p.node.map(node_name).unwrap_or_default();
            let mut pod = pod_json(
                &format!("web-{i}"),
                p.owner,
                &node,
                p.phase,
                p.placeholder_class,
                ann,
            );
            if p.deleting {
                pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            pods.push(pod);
        }
        for (i, p) in s.pending.iter().enumerate() {
            let mut ann = Map::new();
            if let Some(c) = p.cost {
                ann.insert(COST_ANNOTATION.into(), json!(c));
            }
            pods.push(pod_json(
                &format!("new-{i}"),
                p.owner,
                "",
                "Pending",
                p.placeholder_class,
                ann,
            ));
        }
        Cluster { nodes, pods }
    }

    fn pod_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.pods.iter_mut().find(|p| p["metadata"]["name"] == name)
    }
}

struct MemHost<'a> {
    cluster: &'a Cluster,
    fail: Fail,
    calls: Vec<(String, Value)>,
}

fn forbidden(verb: &str, resource: &str) -> String {
    format!(
        "{resource} is forbidden: User \"system:serviceaccount:kubewarden:policy-server-default\" cannot {verb} resource \"{resource}\""
    )
}

impl Host for MemHost<'_> {
    fn kubernetes(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        let req: Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        self.calls.push((operation.to_string(), req.clone()));
        let answer = match (operation, req["kind"].as_str()) {
            ("get_resource", Some("Node")) => {
                if self.fail == Fail::NodeGet {
                    return Err(forbidden("get", "nodes"));
                }
                let name = req["name"].as_str().unwrap_or_default();
                self.cluster
                    .nodes
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("nodes \"{name}\" not found"))?
            }
            ("get_resource", Some("Pod")) => {
                if self.fail == Fail::PodGet {
                    return Err(forbidden("get", "pods"));
                }
                let name = req["name"].as_str().unwrap_or_default();
                assert_eq!(req["namespace"], NAMESPACE);
                self.cluster
                    .pods
                    .iter()
                    .find(|p| p["metadata"]["name"] == name)
                    .cloned()
                    .ok_or_else(|| format!("pods \"{name}\" not found"))?
            }
            ("list_resources_by_namespace", Some("Pod")) => {
                if self.fail == Fail::List {
                    return Err(forbidden("list", "pods"));
                }
                assert_eq!(req["namespace"], NAMESPACE);
                let selector = req["label_selector"].as_str().unwrap_or_default();
                let wanted: Vec<(&str, &str)> = selector
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|kv| kv.split_once('=').expect("k=v selector terms"))
                    .collect();
                let items: Vec<&Value> = self
                    .cluster
                    .pods
                    .iter()
                    .filter(|p| {
                        wanted
                            .iter()
                            .all(|(k, v)| p["metadata"]["labels"][*k] == *v)
                    })
                    .collect();
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
            }
            other => panic!("unexpected host call {other:?}: {req}"),
        };
        Ok(serde_json::to_vec(&answer).expect("answers serialise"))
    }
}

fn binding(name: &str, node: &str, annotations: u8) -> Value {
    let mut meta = json!({"name": name, "namespace": NAMESPACE,
                          "uid": format!("binding-{name}"), "creationTimestamp": null});
    match annotations {
        0 => {}
        1 => meta["annotations"] = Value::Null,
        _ => meta["annotations"] = json!({"example.com/note": "kept"}),
    }
    json!({"kind": "Binding", "apiVersion": "v1", "metadata": meta,
           "target": {"kind": "Node", "name": node}})
}

fn payload(object: &Value, settings: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "request": {
            "uid": "0b7e0a5c-1d64-4a57-8f6e-4a2f6f0e8a01",
            "kind": {"group": "", "version": "v1", "kind": "Binding"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": "binding",
            "requestSubResource": "binding",
            "name": object["metadata"]["name"],
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {"username": "system:kube-scheduler"},
            "object": object,
            "oldObject": null,
            "dryRun": false
        },
        "settings": settings
    }))
    .expect("payloads serialise")
}

/// `^-?(0|[1-9][0-9]*)$` and within int32: the only form the ReplicaSet
/// controller reads as the number written (it reads anything else as 0).
/// Told by a round trip through i32, not by the policy's way of writing it.
fn is_kubernetes_int32(s: &str) -> bool {
    s.parse::<i32>().is_ok_and(|n| n.to_string() == s)
}

/// The policy's annotations on a mutated Binding, after checking that
/// nothing else differs from the original.
fn written_annotations(original: &Value, mutated: &Value) -> BTreeMap<String, String> {
    let mut rest = mutated.clone();
    let annotations = rest["metadata"]["annotations"]
        .as_object_mut()
        .expect("a mutated Binding has metadata.annotations");
    let mut written = BTreeMap::new();
    for key in [COST_ANNOTATION, ZONE_ANNOTATION, RANK_ANNOTATION] {
        if let Some(v) = annotations.remove(key) {
            written.insert(
                key.to_string(),
                v.as_str()
                    .expect("annotation values are strings")
                    .to_string(),
            );
        }
    }
    match &original["metadata"]["annotations"] {
        Value::Null if original["metadata"].get("annotations").is_none() => {
            assert!(annotations.is_empty());
            rest["metadata"]
                .as_object_mut()
                .expect("metadata is an object")
                .remove("annotations");
        }
        Value::Null => {
            assert!(annotations.is_empty());
            rest["metadata"]["annotations"] = Value::Null;
        }
        _ => {}
    }
    assert_eq!(
        &rest, original,
        "the mutation touched more than annotations"
    );
    written
}

/// The zone a sibling counts in, as the policy resolves it.
fn sibling_zone(cluster: &Cluster, pod: &Value, topology_key: &str) -> Option<String> {
    match pod["metadata"]["annotations"][ZONE_ANNOTATION].as_str() {
        Some(z) if !z.is_empty() => Some(z.to_string()),
        _ => {
            let node = pod["spec"]["nodeName"].as_str()?;
            cluster.nodes.get(node)?["metadata"]["labels"][topology_key]
                .as_str()
                .filter(|z| !z.is_empty())
                .map(str::to_string)
        }
    }
}

/// A placeholder by the generated settings' own terms (`placeholders` is
/// their `placeholders` value, `null` when absent), read from the JSON
/// rather than through the policy's parsed settings.
fn is_placeholder(pod: &Value, placeholders: &Value) -> bool {
    let by_class = placeholders["priorityClassNames"]
        .as_array()
        .is_some_and(|names| names.contains(&pod["spec"]["priorityClassName"]));
    let by_label = !placeholders["podSelector"].is_null()
        && pod["metadata"]["labels"][PLACEHOLDER_LABEL.0] == PLACEHOLDER_LABEL.1;
    // The scheduler counts a pod without a priority as 0.
    let priority = pod["spec"]["priority"].as_i64().unwrap_or(0);
    let by_priority = placeholders["maxPriority"]
        .as_i64()
        .is_some_and(|max| priority <= max);
    by_class || by_label || by_priority
}

fn is_live_sibling(pod: &Value, owner_uid: &str, placeholders: &Value) -> bool {
    pod["metadata"]["ownerReferences"][0]["uid"] == owner_uid
        && pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        && pod["metadata"].get("deletionTimestamp").is_none()
        && !matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
        && pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        && !is_placeholder(pod, placeholders)
}

/// A rank as the policy writes it (plain decimal), by a round trip through
/// u32 rather than by the policy's own `parse_rank`.
fn canonical_rank(s: &str) -> Option<u32> {
    s.parse::<u32>().ok().filter(|n| n.to_string() == s)
}

fn evaluate_on(cluster: &Cluster, fail: Fail, payload: &[u8]) -> (Response, Vec<(String, Value)>) {
    let mut host = MemHost {
        cluster,
        fail,
        calls: Vec::new(),
    };
    let resp = evaluate::evaluate(payload, &mut host);
    (resp, host.calls)
}

fn run(s: &Scenario) -> Result<(), TestCaseError> {
    let parsed = settings::parse(&serde_json::to_vec(&s.settings).expect("settings serialise"))
        .map_err(|e| TestCaseError::fail(format!("generated settings invalid: {e}")))?;
    let reject = parsed.on_lookup_error == OnLookupError::Reject;
    let topology_key = parsed.zones.as_ref().map(|z| z.topology_key.clone());
    let mut cluster = Cluster::new(s);
    // Ranks held before the first binding: live siblings' canonical ranks,
    // by (owner, zone).
    let held_before = |cluster: &Cluster, owner: &str, zone: &str, key: &str| -> BTreeSet<u32> {
        cluster
            .pods
            .iter()
            .filter(|p| is_live_sibling(p, owner, &s.settings["placeholders"]))
            .filter(|p| sibling_zone(cluster, p, key).as_deref() == Some(zone))
            .filter_map(|p| p["metadata"]["annotations"][RANK_ANNOTATION].as_str())
            .filter_map(canonical_rank)
            .collect()
    };
    let initial = cluster.clone();
    let mut written_ranks: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();

    for (i, p) in s.pending.iter().enumerate() {
        let name = format!("new-{i}");
        let node = node_name(p.target);
        let object = binding(&name, &node, p.binding_annotations);
        let payload = payload(&object, &s.settings);

        let (resp, calls) = evaluate_on(&cluster, s.fail, &payload);
        let (again, calls_again) = evaluate_on(&cluster, s.fail, &payload);
        prop_assert_eq!(
            resp.to_json(),
            again.to_json(),
            "same inputs, different responses"
        );
        prop_assert_eq!(&calls, &calls_again, "same inputs, different host calls");

        if !resp.accepted {
            prop_assert!(reject, "rejected without onLookupError: reject: {:?}", resp);
            prop_assert!(resp.message.as_deref().is_some_and(|m| !m.is_empty()));
            prop_assert!(resp.mutated_object.is_none());
        }
        let mut written = BTreeMap::new();
        if let Some(raw) = &resp.mutated_object {
            let parsed = serde_json::from_str::<serde_json::Value>(raw);
            prop_assert!(
                parsed.is_ok(),
                "mutated object policy-server cannot read: {raw}"
            );
            let mutated = &parsed.unwrap_or_default();
            let placeholder = cluster
                .pods
                .iter()
                .find(|pod| pod["metadata"]["name"] == name.as_str())
                .is_some_and(|pod| is_placeholder(pod, &s.settings["placeholders"]));
            prop_assert!(!placeholder, "placeholder pod {} annotated", name);
            written = written_annotations(&object, mutated);
            let cost = written
                .get(COST_ANNOTATION)
                .ok_or_else(|| TestCaseError::fail("mutated without a cost"))?;
            prop_assert!(is_kubernetes_int32(cost), "cost {:?}", cost);
            prop_assert_eq!(
                written.contains_key(ZONE_ANNOTATION),
                written.contains_key(RANK_ANNOTATION)
            );
            if let (Some(zone), Some(rank)) =
                (written.get(ZONE_ANNOTATION), written.get(RANK_ANNOTATION))
            {
                let rank = canonical_rank(rank)
                    .ok_or_else(|| TestCaseError::fail(format!("rank {rank:?}")))?;
                let owner = format!("rs-{}", p.owner);
                written_ranks
                    .entry((owner, zone.clone()))
                    .or_default()
                    .push(rank);
            }
        }

        // The API server binds the pod and copies the Binding's annotations.
        if resp.accepted && p.target < s.nodes.len() {
            let pod = cluster
                .pod_mut(&name)
                .ok_or_else(|| TestCaseError::fail("pending pod missing"))?;
            pod["spec"]["nodeName"] = json!(node);
            pod["status"]["phase"] = json!("Running");
            for (k, v) in written {
                pod["metadata"]["annotations"][k] = json!(v);
            }
        }
    }

    for ((owner, zone), ranks) in &written_ranks {
        let unique: BTreeSet<u32> = ranks.iter().copied().collect();
        prop_assert_eq!(
            unique.len(),
            ranks.len(),
            "ranks written twice in zone {} of {}: {:?}",
            zone,
            owner,
            ranks
        );
        let key = topology_key.as_deref().unwrap_or_default();
        let before = held_before(&initial, owner, zone, key);
        prop_assert!(
            unique.is_disjoint(&before),
            "ranks {:?} written in zone {} of {} were already held: {:?}",
            ranks,
            zone,
            owner,
            before
        );
    }
    Ok(())
}

/// The share of generated pod texts, in tenths, that serde must read for
/// `answer_reader_matches_serde` to count as a comparison.
const MIN_COMPARED_TENTHS: usize = 9;

/// 600 cases keep `cargo test` within seconds; PROPTEST_CASES, when set,
/// asks for a longer run.
fn config() -> ProptestConfig {
    let base = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_some() {
        base
    } else {
        ProptestConfig { cases: 600, ..base }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Only documented keys are added, costs are plain int32 decimals,
    /// nothing is rejected unless asked, the output is a function of the
    /// input, and ranks never collide within a zone.
    #[test]
    fn bindings_in_sequence(s in scenario()) {
        run(&s)?;
    }

    /// Balance on, every node in a zone, nothing failing: the case where
    /// ranks are written most and collisions would show.
    #[test]
    fn balanced_bindings_in_sequence(
        s in scenario().prop_map(|mut s| {
            s.settings["zones"] = json!({"topologyKey": ZONE_KEYS[0], "balance": true,
                                         "deletionCosts": {"a": 10}});
            for (i, n) in s.nodes.iter_mut().enumerate() {
                n.insert(ZONE_KEYS[0], ZONES[i % 2]);
            }
            s.fail = Fail::Nothing;
            s
        })
    ) {
        run(&s)?;
    }
}

#[rstest]
#[case::zero("0", true)]
#[case::positive("7", true)]
#[case::negative("-7", true)]
#[case::max("2147483647", true)]
#[case::min("-2147483648", true)]
#[case::empty("", false)]
#[case::minus_zero("-0", false)]
#[case::plus_sign("+1", false)]
#[case::leading_zero("01", false)]
#[case::a_fraction("1.0", false)]
#[case::over_max("2147483648", false)]
#[case::a_blank(" 1", false)]
fn kubernetes_int32_shape(#[case] text: &str, #[case] canonical: bool) {
    assert_eq!(is_kubernetes_int32(text), canonical);
}

// ---- the answer reader against serde's derived views ----

/// Any JSON value, with strings that need escaping.
fn any_json() -> impl Strategy<Value = Value> {
    let text = "[a-z\"\\\\/\\n\\t\u{e9}\u{1F600}{}\\[\\]:,]{0,12}";
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|n| json!(n)),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text, inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn string_or_null() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        "[a-z0-9\"\\\\\u{e9}.-]{0,10}".prop_map(Value::String)
    ]
}

/// A `spec.priority` as the API server writes it: any int32, or none.
fn priority_or_null() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i32>().prop_map(|n| json!(n)),
        Just(json!(i32::MIN)),
        Just(json!(i32::MAX)),
    ]
}

/// Pod-shaped JSON: the fields the policy reads, with odd but valid
/// values, next to arbitrary other fields.
fn pod_shaped_json() -> impl Strategy<Value = Value> {
    let labels = prop::collection::btree_map("[a-z./\"\\\\]{1,8}", "[a-z0-9\"\u{e9}]{0,8}", 0..4);
    let annotations = prop::collection::btree_map(
        prop_oneof![
            Just(COST_ANNOTATION.to_string()),
            Just(ZONE_ANNOTATION.to_string()),
            Just(RANK_ANNOTATION.to_string()),
            "[a-z./]{1,8}".prop_map(String::from),
        ],
        "[a-z0-9-]{0,6}",
        0..4,
    );
    let owner = (
        "[a-zA-Z\"]{0,6}",
        "[a-z0-9-]{0,6}",
        prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool)],
        any_json(),
    )
        .prop_map(|(kind, uid, controller, extra)| {
            json!({"apiVersion": "apps/v1", "kind": kind, "uid": uid, "controller": controller, "extra": extra})
        });
    (
        (string_or_null(), string_or_null(), labels, annotations),
        prop::collection::vec(owner, 0..3),
        prop_oneof![Just(Value::Null), Just(json!("2026-01-01T00:00:00Z")), Just(json!({"a": [1]}))],
        (string_or_null(), string_or_null(), string_or_null(), priority_or_null()),
        any_json(),
    )
        .prop_map(|((name, uid, labels, annotations), owners, deletion, (node, class, phase, priority), extra)| {
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "uid": uid, "labels": labels, "annotations": annotations,
                             "ownerReferences": owners, "deletionTimestamp": deletion, "managedFields": extra.clone()},
                "spec": {"nodeName": node, "priorityClassName": class, "priority": priority,
                         "containers": extra.clone()},
                "status": {"phase": phase, "conditions": extra}
            })
        })
}

/// The hand-written answer reader and serde's derived views read the
/// same pods, compact or pretty-printed, alone or in a list. serde's views
/// refuse a few nulls the reader takes as empty (an owner's kind or uid),
/// and a pod serde refuses cannot be compared: the comparisons made are
/// counted, and too few fail the test instead of passing it silently.
#[test]
fn answer_reader_matches_serde() {
    use pod_deletion_cost_policy::objects::Pod;
    use pod_deletion_cost_policy::scan;
    use proptest::test_runner::TestRunner;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    let (read, compared) = (AtomicUsize::new(0), AtomicUsize::new(0));
    // As `proptest!` sets them, so saved failing cases are replayed first.
    let config = ProptestConfig {
        source_file: Some(file!()),
        test_name: Some("answer_reader_matches_serde"),
        ..config()
    };
    let mut runner = TestRunner::new(config);
    let pods = prop::collection::vec(pod_shaped_json(), 0..4);
    let outcome = runner.run(&pods, |pods| {
        for p in &pods {
            for text in [p.to_string(), serde_json::to_string_pretty(p).unwrap()] {
                let ours = scan::pod(&text).unwrap();
                read.fetch_add(1, Relaxed);
                if let Ok(theirs) = serde_json::from_str::<Pod>(&text) {
                    compared.fetch_add(1, Relaxed);
                    prop_assert_eq!(ours, theirs);
                }
            }
        }
        let texts: Vec<String> = pods.iter().map(Value::to_string).collect();
        let alone: Vec<Pod> = texts.iter().map(|t| scan::pod(t).unwrap()).collect();
        let list = json!({"kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": pods})
            .to_string();
        let mut ours = Vec::new();
        scan::each_pod(&list, true, |p| ours.push(p.clone())).unwrap();
        prop_assert_eq!(ours, alone);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}\n{runner}");
    }
    let (read, compared) = (read.into_inner(), compared.into_inner());
    println!("{compared} of {read} pod texts compared with serde's reading");
    assert!(
        compared * 10 >= read * MIN_COMPARED_TENTHS,
        "only {compared} of {read} pod texts were compared with serde's reading: the generator drifted to pods serde refuses"
    );
}
