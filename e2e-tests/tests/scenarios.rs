//! Whole stories through the real `policy.wasm`: pods are bound one by one
//! through the policy in a simulated cluster, then the ReplicaSet is scaled
//! down in the controller's order.

use cluster_sim::{self as sim, Cluster, RANK_ANNOTATION, ZONE_ANNOTATION};
use e2e_tests::Lcg;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use wasm_host::Policy;

fn policy() -> Policy {
    Policy::load(&wasm_host::default_policy_wasm()).unwrap_or_else(|e| panic!("{e:#}"))
}

const WEB: &[(&str, &str)] = &[("app", "web"), ("pod-template-hash", "6d9c7b8f5d")];
const WEB_RS: &str = "uid-rs-web-6d9c7b8f5d";

fn bind_new(p: &Policy, c: &mut Cluster, settings: &Value, node: &str) -> sim::BindOutcome {
    let pod = c.create_rs_pod("shop", "web-6d9c7b8f5d", WEB);
    let out = sim::bind(p, c, settings, "shop", &pod, node).unwrap();
    assert!(out.response.accepted, "{:?}", out.response);
    assert_eq!(out.response.warnings, None, "{:?}", out.response);
    out
}

#[test]
fn eks_bursting_scale_down_keeps_the_hybrid_node() {
    let p = policy();
    let mut c = Cluster::default();
    c.add_node(
        "mi-0ebe45e33a53e04f2",
        &[("eks.amazonaws.com/compute-type", "hybrid")],
    );
    for i in 0..3 {
        c.add_node(
            &format!("ip-10-42-0-{i}.us-west-2.compute.internal"),
            &[("eks.amazonaws.com/compute-type", "ec2")],
        );
    }
    let settings = json!({});
    for _ in 0..8 {
        let out = bind_new(&p, &mut c, &settings, "mi-0ebe45e33a53e04f2");
        assert_eq!(out.cost(), Some("1"));
        assert_eq!(out.exchanges.len(), 1, "only the node is read");
    }
    for i in 0..7 {
        let node = format!("ip-10-42-0-{}.us-west-2.compute.internal", i % 3);
        let out = bind_new(&p, &mut c, &settings, &node);
        assert_eq!(out.cost(), None);
    }
    assert_eq!(c.active_pods(WEB_RS).len(), 15);
    let removed = c.scale_down(WEB_RS, 3);
    assert_eq!(removed.len(), 12);
    let left: Vec<&str> = c
        .active_pods(WEB_RS)
        .iter()
        .filter_map(|p| p.node_name.as_deref())
        .collect();
    assert_eq!(left, ["mi-0ebe45e33a53e04f2"; 3]);
}

fn ack_cluster() -> Cluster {
    let mut c = Cluster::default();
    for (zone, ip) in [("i", 10), ("k", 17), ("h", 24)] {
        for n in 0..2 {
            c.add_node(
                &format!("cn-beijing.192.168.{ip}.{n}"),
                &[
                    ("available_zone", zone),
                    ("topology.kubernetes.io/zone", &format!("cn-beijing-{zone}")),
                ],
            );
        }
    }
    c
}

fn ack_settings() -> Value {
    json!({
        "rules": [],
        "zones": {"topologyKey": "available_zone", "balance": true},
        "placeholders": {
            "priorityClassNames": ["default-priority-class"],
            "podSelector": {"matchLabels": {"app": "ack-place-holder"}}
        }
    })
}

/// Adds a bound placeholder pod in each zone, with the web app's labels too,
/// so that the sibling list sees them and must leave them out.
fn add_placeholders(p: &Policy, c: &mut Cluster, settings: &Value) {
    for (i, node) in [
        "cn-beijing.192.168.10.0",
        "cn-beijing.192.168.17.0",
        "cn-beijing.192.168.24.0",
    ]
    .iter()
    .enumerate()
    {
        let name = c.create_rs_pod("shop", "ack-place-holder-i", &[("app", "ack-place-holder")]);
        let pod = c.pod_mut("shop", &name).unwrap();
        pod.priority_class_name = Some("default-priority-class".into());
        pod.priority = Some(-1);
        let out = sim::bind(p, c, settings, "shop", &name, node).unwrap();
        assert!(out.response.accepted);
        assert_eq!(
            out.response.mutated_object, None,
            "placeholder {i} annotated"
        );
    }
    // One placeholder carrying the web labels but the placeholder class.
    let name = c.create_rs_pod("shop", "web-6d9c7b8f5d", WEB);
    c.pod_mut("shop", &name).unwrap().priority_class_name = Some("default-priority-class".into());
    let out = sim::bind(p, c, settings, "shop", &name, "cn-beijing.192.168.10.1").unwrap();
    assert_eq!(out.response.mutated_object, None);
}

fn zone_of(c: &Cluster, node: &str) -> String {
    c.node(node).unwrap().labels["available_zone"].clone()
}

fn web_per_zone(c: &Cluster) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for pod in c.active_pods(WEB_RS) {
        if pod.priority_class_name.is_some() {
            continue;
        }
        let zone = zone_of(c, pod.node_name.as_deref().unwrap());
        *out.entry(zone).or_default() += 1;
    }
    out
}

/// Scales the web ReplicaSet to `replicas` real pods; placeholders of the
/// same ReplicaSet are not part of the count (they are not real replicas).
fn scale_web(c: &mut Cluster, replicas: usize) {
    let placeholders: Vec<String> = c
        .active_pods(WEB_RS)
        .iter()
        .filter(|p| p.priority_class_name.is_some())
        .map(|p| p.name.clone())
        .collect();
    let saved: Vec<sim::Pod> = c
        .pods()
        .iter()
        .filter(|p| placeholders.contains(&p.name))
        .cloned()
        .collect();
    c.pods_mut().retain(|p| !placeholders.contains(&p.name));
    c.scale_down(WEB_RS, replicas);
    c.pods_mut().extend(saved);
}

fn assert_ranks_unique(c: &Cluster) {
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for pod in c.active_pods(WEB_RS) {
        if pod.priority_class_name.is_some() {
            assert!(!pod.annotations.contains_key(RANK_ANNOTATION));
            continue;
        }
        let zone = pod.annotations[ZONE_ANNOTATION].clone();
        assert_eq!(zone, zone_of(c, pod.node_name.as_deref().unwrap()));
        let rank = pod.annotations[RANK_ANNOTATION].clone();
        assert!(seen.insert((zone, rank.clone())), "rank {rank} held twice");
    }
}

fn node_in(zone: &str, n: usize) -> String {
    let ip = match zone {
        "i" => 10,
        "k" => 17,
        _ => 24,
    };
    format!("cn-beijing.192.168.{ip}.{}", n % 2)
}

#[test]
fn ack_zones_balance_scale_down_leaves_one_per_zone() {
    let p = policy();
    let mut c = ack_cluster();
    let settings = ack_settings();
    add_placeholders(&p, &mut c, &settings);
    for (zone, count) in [("i", 5), ("k", 3), ("h", 1)] {
        for n in 0..count {
            let out = bind_new(&p, &mut c, &settings, &node_in(zone, n));
            let ann = &out.response.mutated_object.as_ref().unwrap()["metadata"]["annotations"];
            assert_eq!(ann[ZONE_ANNOTATION], zone);
            assert_eq!(ann[RANK_ANNOTATION], n.to_string());
            assert_eq!(out.cost(), Some((-(n as i64)).to_string().as_str()));
        }
    }
    assert_ranks_unique(&c);
    scale_web(&mut c, 3);
    assert_eq!(
        web_per_zone(&c),
        BTreeMap::from([("h".into(), 1), ("i".into(), 1), ("k".into(), 1)])
    );

    // Up again, unevenly as a scheduler might, then down step by step.
    for (n, zone) in ["i", "i", "k", "i", "h", "k"].iter().enumerate() {
        bind_new(&p, &mut c, &settings, &node_in(zone, n));
    }
    assert_ranks_unique(&c);
    assert_eq!(
        web_per_zone(&c),
        BTreeMap::from([("h".into(), 2), ("i".into(), 4), ("k".into(), 3)])
    );
    for replicas in (3..9).rev() {
        scale_web(&mut c, replicas);
        let counts = web_per_zone(&c);
        assert_eq!(counts.values().sum::<usize>(), replicas);
        let min = counts.values().min().copied().unwrap_or(0);
        let max = counts.values().max().copied().unwrap_or(0);
        assert!(max - min <= 1, "scaled to {replicas}: {counts:?}");
    }
    assert_eq!(
        web_per_zone(&c),
        BTreeMap::from([("h".into(), 1), ("i".into(), 1), ("k".into(), 1)])
    );
}

#[test]
fn churn_keeps_ranks_unique_and_scale_down_balanced() {
    let p = policy();
    let mut c = ack_cluster();
    let settings = ack_settings();
    add_placeholders(&p, &mut c, &settings);
    let zones = ["i", "k", "h"];
    let mut rng = Lcg(0x5eed);
    for n in 0..9 {
        bind_new(&p, &mut c, &settings, &node_in(zones[n % 3], n));
    }
    for round in 0..120 {
        // The ReplicaSet replaces a pod lost at random (eviction, node drain)
        // and the scheduler puts the replacement in any zone.
        let real: Vec<String> = c
            .active_pods(WEB_RS)
            .iter()
            .filter(|p| p.priority_class_name.is_none())
            .map(|p| p.name.clone())
            .collect();
        let victim = real[rng.next(real.len())].clone();
        c.pods_mut().retain(|p| p.name != victim);
        let zone = zones[rng.next(3)];
        bind_new(&p, &mut c, &settings, &node_in(zone, round));
        assert_ranks_unique(&c);
    }
    // Whatever the churn left, scaling down trims the fullest zones first:
    // a zone that lost pods never ends more than one below another zone,
    // give or take the free rank slots churn left in it.
    let mut before = web_per_zone(&c);
    let start_holes: BTreeMap<String, usize> = zones
        .iter()
        .map(|z| (z.to_string(), holes(&c, z)))
        .collect();
    for replicas in (3..before.values().sum::<usize>()).rev() {
        scale_web(&mut c, replicas);
        let after = web_per_zone(&c);
        for (za, a) in &after {
            if before.get(za) == Some(a) {
                continue;
            }
            for (zb, b) in &after {
                assert!(
                    a + 1 + start_holes[za] >= *b,
                    "scaled to {replicas}: zone {za} was trimmed to {a} while zone {zb} keeps {b} (before {before:?}, holes {start_holes:?})"
                );
            }
        }
        assert_eq!(after.values().sum::<usize>(), replicas);
        before = after;
    }
}

/// Free rank slots below the highest rank held in `zone`: each one lets the
/// zone look one pod fuller than it is until a new pod fills it.
fn holes(c: &Cluster, zone: &str) -> usize {
    let ranks: BTreeSet<usize> = c
        .active_pods(WEB_RS)
        .iter()
        .filter(|p| p.annotations.get(ZONE_ANNOTATION).map(String::as_str) == Some(zone))
        .filter_map(|p| p.annotations.get(RANK_ANNOTATION)?.parse().ok())
        .collect();
    ranks.iter().max().map_or(0, |m| m + 1 - ranks.len())
}
