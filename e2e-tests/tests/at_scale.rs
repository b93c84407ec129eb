//! Balance at scale through the real `policy.wasm`: many Deployments rolled
//! out again and again, pods bound one by one. policy-server keeps a watch
//! for every distinct list the policy asks for and never releases it, so
//! the number of distinct list keys is what this story measures, along
//! with ranks and scale-down staying right.

use cluster_sim::{self as sim, Cluster, ListKey, RANK_ANNOTATION, ZONE_ANNOTATION};
use e2e_tests::Lcg;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use wasm_host::Policy;

const ZONE_KEY: &str = "topology.kubernetes.io/zone";
const ZONES: [&str; 3] = ["a", "b", "c"];
const ROLLOUTS: usize = 5;

struct Deployment {
    namespace: String,
    name: String,
    /// Labels of its pod template, without pod-template-hash.
    labels: Vec<(String, String)>,
    replicas: usize,
}

/// Twenty Deployments in four namespaces, 4 to 7 replicas each.
fn deployments() -> Vec<Deployment> {
    (0..20)
        .map(|i| {
            let name = format!("d{i:02}");
            Deployment {
                namespace: format!("team-{}", i % 4),
                labels: vec![
                    ("app".into(), name.clone()),
                    ("tier".into(), "backend".into()),
                    (
                        "track".into(),
                        if i % 2 == 0 { "stable" } else { "canary" }.into(),
                    ),
                ],
                name,
                replicas: 4 + i % 4,
            }
        })
        .collect()
}

fn cluster() -> Cluster {
    let mut c = Cluster::default();
    for zone in ZONES {
        for n in 0..2 {
            c.add_node(&format!("node-{zone}-{n}"), &[(ZONE_KEY, zone)]);
        }
    }
    c
}

fn zone_of_node(c: &Cluster, node: &str) -> String {
    c.node(node).unwrap().labels[ZONE_KEY].clone()
}

/// The scheduler's choice, uneven on purpose (half the pods in zone a) so
/// that one zone is fuller than the others.
fn pick_node(rng: &mut Lcg) -> String {
    let zone = match rng.next(10) {
        0..=4 => "a",
        5..=7 => "b",
        _ => "c",
    };
    format!("node-{zone}-{}", rng.next(2))
}

fn rs_name(d: &Deployment, rollout: usize) -> (String, String) {
    // A pod-template-hash looks like this: ten characters of [0-9a-f].
    let seed = d.name.bytes().fold(rollout as u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let hash = format!("{:010x}", seed.wrapping_mul(0x9e37_79b9) & 0xff_ffff_ffff);
    (format!("{}-{hash}", d.name), hash)
}

fn rs_uid(rs: &str) -> String {
    format!("uid-rs-{rs}")
}

/// `k=v` sorted by key, joined by `,`: a label selector as the policy
/// writes it.
fn selector(labels: &[(&str, &str)]) -> String {
    let sorted: BTreeMap<&str, &str> = labels.iter().copied().collect();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

struct Story {
    cluster: Cluster,
    /// The lists the policy would have asked for had the selector been
    /// every label of the pod, pod-template-hash included.
    keys_with_the_hash: BTreeSet<(String, String)>,
}

/// Creates one pod of `rs` and binds it through the policy.
fn bind_one(
    p: &Policy,
    story: &mut Story,
    settings: &Value,
    d: &Deployment,
    rs: &str,
    hash: &str,
    rng: &mut Lcg,
) {
    let c = &mut story.cluster;
    let mut labels: Vec<(&str, &str)> = d
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    labels.push(("pod-template-hash", hash));
    story
        .keys_with_the_hash
        .insert((d.namespace.clone(), selector(&labels)));
    let pod = c.create_rs_pod(&d.namespace, rs, &labels);
    let node = pick_node(rng);
    let out = sim::bind(p, c, settings, &d.namespace, &pod, &node).unwrap();
    assert!(out.response.accepted, "{:?}", out.response);
    assert_eq!(out.response.warnings, None, "{:?}", out.response);
    assert_ranks_unique_per_zone(c, &rs_uid(rs));
}

/// Within one ReplicaSet, no two pods of a zone hold the same rank, and the
/// zone written is the node's.
fn assert_ranks_unique_per_zone(c: &Cluster, rs_uid: &str) {
    let mut seen = BTreeSet::new();
    for pod in c.active_pods(rs_uid) {
        let zone = &pod.annotations[ZONE_ANNOTATION];
        assert_eq!(zone, &zone_of_node(c, pod.node_name.as_deref().unwrap()));
        let rank = &pod.annotations[RANK_ANNOTATION];
        assert!(
            seen.insert((zone.clone(), rank.clone())),
            "{rs_uid}: rank {rank} held twice in zone {zone}"
        );
    }
}

/// Every Deployment scaled up, then rolled out `ROLLOUTS` times the way the
/// Deployment controller does with maxSurge 1, maxUnavailable 0: one pod of
/// the new ReplicaSet bound, one of the old removed in the controller's
/// order, until the new one has every replica. The Deployments' steps
/// interleave, as they would in a cluster.
fn story(settings: &Value, ds: &[Deployment]) -> Story {
    let p = Policy::load(&wasm_host::default_policy_wasm()).unwrap_or_else(|e| panic!("{e:#}"));
    let mut story = Story {
        cluster: cluster(),
        keys_with_the_hash: BTreeSet::new(),
    };
    let mut rng = Lcg(0xa7_5ca1e);
    for step in 0..ds.iter().map(|d| d.replicas).max().unwrap() {
        for d in ds.iter().filter(|d| step < d.replicas) {
            let (rs, hash) = rs_name(d, 0);
            bind_one(&p, &mut story, settings, d, &rs, &hash, &mut rng);
        }
    }
    for rollout in 1..=ROLLOUTS {
        for step in 0..ds.iter().map(|d| d.replicas).max().unwrap() {
            for d in ds.iter().filter(|d| step < d.replicas) {
                let (new, hash) = rs_name(d, rollout);
                bind_one(&p, &mut story, settings, d, &new, &hash, &mut rng);
                let old = rs_uid(&rs_name(d, rollout - 1).0);
                let c = &mut story.cluster;
                let left = c.active_pods(&old).len() - 1;
                c.scale_down(&old, left);
            }
        }
    }
    story
}

/// Each final ReplicaSet holds ranks 0..n-1 in a zone of n pods (no pod of
/// another ReplicaSet or Deployment took a slot), and scaling it down one
/// pod at a time removes a pod from a zone holding the most pods every time.
fn assert_scale_down_trims_the_fullest_zone(c: &mut Cluster, ds: &[Deployment]) {
    for d in ds {
        let rs = rs_uid(&rs_name(d, ROLLOUTS).0);
        assert_eq!(c.active_pods(&rs).len(), d.replicas, "{rs}");
        let mut ranks: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for pod in c.active_pods(&rs) {
            let rank = pod.annotations[RANK_ANNOTATION].parse().unwrap();
            ranks
                .entry(pod.annotations[ZONE_ANNOTATION].clone())
                .or_default()
                .insert(rank);
        }
        for (zone, held) in &ranks {
            assert_eq!(held, &(0..held.len()).collect(), "{rs} zone {zone}");
        }
        for left in (1..d.replicas).rev() {
            let counts = c.per_zone(&rs, ZONE_KEY);
            let first = c.deletion_order(&rs)[0];
            let zone = zone_of_node(c, first.node_name.as_deref().unwrap());
            let fullest = *counts.values().max().unwrap();
            assert_eq!(
                counts[&zone], fullest,
                "{rs} down to {left}: removes from {zone} while {counts:?}"
            );
            c.scale_down(&rs, left);
        }
    }
}

fn pods_bound(ds: &[Deployment]) -> usize {
    ds.iter().map(|d| d.replicas * (ROLLOUTS + 1)).sum()
}

/// The list keys the policy should ask for: one per Deployment.
fn expected_keys(ds: &[Deployment]) -> BTreeSet<(String, Option<String>)> {
    ds.iter()
        .map(|d| {
            let labels: Vec<(&str, &str)> = d
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            (d.namespace.clone(), Some(selector(&labels)))
        })
        .collect()
}

fn asked_keys(c: &Cluster) -> BTreeSet<(String, Option<String>)> {
    c.list_keys
        .iter()
        .map(|k: &ListKey| (k.namespace.clone(), k.label_selector.clone()))
        .collect()
}

#[test]
fn twenty_deployments_rolled_out_five_times_use_one_list_per_deployment() {
    let ds = deployments();
    let settings = json!({"rules": [], "zones": {"balance": true}});
    let mut story = story(&settings, &ds);
    let c = &mut story.cluster;
    assert!(pods_bound(&ds) > 600);
    assert_eq!(c.list_keys.len(), 20, "{:#?}", c.list_keys);
    assert_eq!(asked_keys(c), expected_keys(&ds));
    assert!(c.list_keys.iter().all(|k| k.field_selector.is_none()
        && k.field_masks
            == [
                "spec.nodeName",
                "spec.priority",
                "spec.priorityClassName",
                "status.phase"
            ]));
    // With pod-template-hash in the selector: one list per ReplicaSet.
    assert_eq!(story.keys_with_the_hash.len(), 20 * (ROLLOUTS + 1));
    assert_scale_down_trims_the_fullest_zone(&mut story.cluster, &ds);
}

#[test]
fn sibling_labels_shared_by_two_deployments_stay_correct() {
    // d04 shares app=d00 with d00 in namespace team-0, on another track:
    // their default selectors differ, `siblingLabels: [app]` lists both
    // Deployments' pods together, and the owner filter keeps them apart.
    let mut ds = deployments();
    ds[4].labels[0].1 = "d00".into();
    ds[4].labels[2].1 = "canary".into();
    assert_eq!(ds[0].namespace, ds[4].namespace);
    assert_eq!(expected_keys(&ds).len(), 20);
    let settings = json!({"rules": [], "zones": {"balance": true, "siblingLabels": ["app"]}});
    let mut story = story(&settings, &ds);
    let keys = asked_keys(&story.cluster);
    let expected: BTreeSet<(String, Option<String>)> = ds
        .iter()
        .map(|d| (d.namespace.clone(), Some(format!("app={}", d.labels[0].1))))
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(keys.len(), 19);
    assert_scale_down_trims_the_fullest_zone(&mut story.cluster, &ds);
}

/// The size of a sibling list answer, from two pod shapes as policy-server
/// holds them (managedFields and last-applied-configuration dropped) and
/// pruned by the policy's field masks: the bundled ACK snapshot's minimal
/// web pod (two labels) with the policy's three annotations, and a pod of
/// a Helm chart (eight labels, eight annotations, a full spec and status).
/// docs/at-scale.md quotes these figures.
#[test]
fn sibling_answer_bytes_per_pod_with_the_field_masks() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |rel: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(root.join(rel)).unwrap()).unwrap()
    };
    let snapshot = read("../crates/kubectl-deletion-cost/snapshots/ack-zones/pods.json");
    let mut minimal = snapshot["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] == "web-58c9d7f6b4-zd89n")
        .unwrap()
        .clone();
    minimal["metadata"]["annotations"] = json!({
        "controller.kubernetes.io/pod-deletion-cost": "-2",
        "pod-deletion-cost.kubewarden.io/rank": "2",
        "pod-deletion-cost.kubewarden.io/zone": "k"
    });
    let helm = read("fixtures/pods/checkout-helm.json");
    let masks: Vec<String> = [
        "spec.nodeName",
        "spec.priority",
        "spec.priorityClassName",
        "status.phase",
    ]
    .map(String::from)
    .to_vec();
    let list_bytes = |pod: &Value, n: usize| -> usize {
        let masked = sim::apply_field_masks(pod, &masks);
        let items: Vec<Value> = (0..n)
            .map(|i| {
                let mut p = masked.clone();
                // Same length as the original five-character suffix.
                let name = p["metadata"]["name"].as_str().unwrap().to_string();
                p["metadata"]["name"] = json!(format!("{}{i:05}", &name[..name.len() - 5]));
                p
            })
            .collect();
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "48213977"}, "items": items})
            .to_string()
            .len()
    };
    let size = |v: &Value| v.to_string().len();
    let report: Vec<(usize, usize, usize, usize)> = [&minimal, &helm]
        .iter()
        .map(|p| {
            (
                size(p),
                size(&sim::apply_field_masks(p, &masks)),
                list_bytes(p, 1_000),
                list_bytes(p, 10_000),
            )
        })
        .collect();
    println!("(whole pod, masked pod, list of 1,000, list of 10,000): {report:?}");
    assert_eq!(
        report,
        [
            (2_523, 716, 717_088, 7_170_088),
            (4_858, 1_222, 1_223_088, 12_230_088)
        ]
    );
}
