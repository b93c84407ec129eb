//! The `simulate` command on the bundled kubectl snapshots: the decisions it
//! prints and its errors. That its predictions hold when the same bindings
//! are evaluated from kwctl replay sessions is checked beside the case
//! table, in `e2e-tests/tests/simulate_export.rs`.

mod common;

use common::{NOW, Run, root, run, snapshot};

use pod_deletion_cost_policy::decision::{Outcome, Skip};
use rstest::rstest;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn snap(rel: &str) -> String {
    snapshot(rel).display().to_string()
}

fn example(name: &str) -> String {
    root().join("examples").join(name).display().to_string()
}

fn simulate(args: &[&str]) -> Run {
    run("simulate", args)
}

/// The table printed for `args` (with the fixed clock), checked to hold
/// every line fragment of `wants`.
fn table_holds(args: &[String], wants: &[&str]) -> String {
    let mut all = refs(args);
    all.extend(["--now", NOW]);
    let r = simulate(&all);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for want in wants {
        assert!(r.stdout.contains(want), "missing {want:?} in\n{}", r.stdout);
    }
    r.stdout
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--output", "json", "--now", NOW];
    all.extend_from_slice(args);
    let r = simulate(&all);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).expect("JSON output")
}

fn eks(args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.push(snap("eks-hybrid/cluster.json"));
    v
}

fn ack(args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.push(snap("ack-zones/nodes.json"));
    v.push(snap("ack-zones/pods.json"));
    v
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn replica_set<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["replicaSets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no ReplicaSet {name} in {report:#}"))
}

fn pods(rs: &Value) -> &Vec<Value> {
    rs["pods"].as_array().unwrap()
}

fn counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect()
}

#[test]
fn eks_bursting_costs_order_and_scale_down() {
    let settings = example("eks-hybrid-bursting.yaml");
    let r = json(&refs(&eks(&[
        "--settings",
        &settings,
        "--scale",
        "shop/web=3",
    ])));
    assert_eq!(r["snapshot"]["nodes"], 3);
    assert_eq!(r["snapshot"]["pods"], 23);
    assert_eq!(r["snapshot"]["evaluated"], 15);
    // kube-system is outside the manifest's namespaceSelector.
    assert_eq!(r["snapshot"]["notSent"], 8);
    let web = replica_set(&r, "web-7d9f8c6b5d");
    assert_eq!(web["deployment"], "web");
    let order: Vec<(&str, Option<&str>, Option<Outcome>)> = pods(web)
        .iter()
        .map(|p| {
            (
                p["node"].as_str().unwrap(),
                p["cost"].as_str(),
                Outcome::parse(p["decision"].as_str().unwrap()),
            )
        })
        .collect();
    // The 7 burst pods (no cost) go before any of the 8 on the hybrid node
    // (cost 1); among the burst pods, the fuller EC2 node first.
    for (i, (node, cost, decision)) in order.iter().enumerate() {
        if i < 7 {
            assert!(node.starts_with("ip-10-42-"), "{order:?}");
            let nothing = Outcome::Unchanged(Skip::NothingApplies);
            assert_eq!((*cost, decision), (None, &Some(nothing)));
        } else {
            assert_eq!(*node, "mi-0ebe45e33a53e04f2");
            assert_eq!((*cost, decision), (Some("1"), &Some(Outcome::Annotated)));
        }
    }
    assert!(
        order[..4]
            .iter()
            .all(|o| o.0.starts_with("ip-10-42-108-174"))
    );
    let scale = &r["scale"][0];
    assert_eq!(
        (scale["from"].as_u64(), scale["to"].as_u64()),
        (Some(15), Some(3))
    );
    assert_eq!(scale["removed"].as_array().unwrap().len(), 12);
    assert_eq!(
        counts(&scale["zonesAfter"]),
        BTreeMap::from([
            ("onprem-rack-1".to_string(), 3),
            ("us-west-2a".to_string(), 0),
            ("us-west-2b".to_string(), 0)
        ])
    );
    assert_eq!(
        counts(&scale["zonesBefore"]),
        BTreeMap::from([
            ("onprem-rack-1".to_string(), 8),
            ("us-west-2a".to_string(), 4),
            ("us-west-2b".to_string(), 3)
        ])
    );
    let coredns = replica_set(&r, "coredns-6b9575c64c");
    assert!(
        pods(coredns).iter().all(
            |p| p["decision"] == "outside the policy's namespaceSelector" && p["cost"].is_null()
        )
    );
    assert_eq!(r["warnings"], serde_json::json!([]));
}

#[test]
fn eks_table_prints_each_decision() {
    let settings = example("eks-hybrid-bursting.yaml");
    let out = table_holds(
        &eks(&["--settings", &settings, "--scale", "shop/web=3"]),
        &[
            "Snapshot: ",
            "(3 nodes, 23 pods): 15 bindings evaluated, 8 not sent to the policy, 0 mirror pods, 0 pods not bound",
            "(ClusterAdmissionPolicy pod-deletion-cost-eks-hybrid), spec.settings",
            "Zones by node label topology.kubernetes.io/zone; deletion order as of 2026-11-22T00:00:00Z",
            "ReplicaSet shop/web-7d9f8c6b5d (Deployment web): 15 pods, deleted in this order on scale-down",
            "  ORDER  POD                   NODE                                         ZONE           COST  RANK  DECISION",
            "  15     web-7d9f8c6b5d-",
            "Scale shop/web (web-7d9f8c6b5d) 15 -> 3: removes web-7d9f8c6b5d-",
            "  onprem-rack-1  8       3",
            "  us-west-2a     4       0",
            "Notes:\n  8 bindings the API server would not send to the policy: kube-system/",
            "Warnings: none",
        ],
    );
    let hybrid_rows = out
        .lines()
        .filter(|l| {
            l.contains("mi-0ebe45e33a53e04f2") && l.contains("onprem-rack-1  1     -     annotated")
        })
        .count();
    assert_eq!(hybrid_rows, 8, "{out}");
}

#[test]
fn eks_default_settings_see_every_namespace() {
    let r = json(&refs(&eks(&[])));
    assert_eq!(r["snapshot"]["evaluated"], 23);
    assert_eq!(
        r["policy"]["source"],
        "no settings given: the policy's defaults"
    );
    // A DaemonSet pod on the hybrid node gets the cost too: the policy
    // annotates every pod bound there, whatever owns it.
    let hybrid_ds = r["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["namespace"] == "kube-system" && b["node"] == "mi-0ebe45e33a53e04f2")
        .collect::<Vec<_>>();
    assert_eq!(hybrid_ds.len(), 2);
    for b in hybrid_ds {
        assert_eq!(
            b["annotations"]["controller.kubernetes.io/pod-deletion-cost"],
            "1"
        );
    }
}

#[test]
fn ack_zones_placeholders_and_balance() {
    let settings = example("ack-zones-placeholders.yaml");
    let r = json(&refs(&ack(&[
        "--settings",
        &settings,
        "--scale",
        "shop/web=3",
        "--scale",
        "shop/api-6d4b8f7c9=3",
    ])));
    let s = &r["snapshot"];
    assert_eq!(
        (s["nodes"].as_u64(), s["pods"].as_u64()),
        (Some(4), Some(22))
    );
    assert_eq!(s["mirrorPods"], 1);
    assert_eq!(s["unbound"], 2);
    assert_eq!(s["evaluated"], 19);
    assert_eq!(r["policy"]["topologyKey"], "available_zone");
    // Placeholders: never annotated.
    for z in ["i", "k", "h"] {
        let rs = replica_set(&r, &format!("ack-place-holder-{z}-5f7d8b9c4"));
        for p in pods(rs) {
            assert!(p["cost"].is_null(), "{p}");
            let decision = p["decision"].as_str().unwrap_or_default();
            assert!(
                Outcome::parse(decision) == Some(Outcome::Unchanged(Skip::Placeholder))
                    || decision == "not bound yet",
                "{p}"
            );
        }
    }
    // shop/web was bound i,i,k,i,k,h,i,k,i: ranks 0.. per zone, cost = zone
    // cost (i 10, k 0, h none) - rank.
    let web = replica_set(&r, "web-58c9d7f6b4");
    let mut by_zone: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for p in pods(web) {
        let cost: i64 = p["cost"].as_str().unwrap().parse().unwrap();
        let rank: i64 = p["rank"].as_str().unwrap().parse().unwrap();
        by_zone
            .entry(p["zone"].as_str().unwrap().into())
            .or_default()
            .push((rank, cost));
    }
    for v in by_zone.values_mut() {
        v.sort();
    }
    assert_eq!(
        by_zone,
        BTreeMap::from([
            ("h".to_string(), vec![(0, 0)]),
            (
                "i".to_string(),
                vec![(0, 10), (1, 9), (2, 8), (3, 7), (4, 6)]
            ),
            ("k".to_string(), vec![(0, 0), (1, -1), (2, -2)]),
        ])
    );
    // Deletion order: ascending cost.
    let costs: Vec<i64> = pods(web)
        .iter()
        .map(|p| p["cost"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(costs.windows(2).all(|w| w[0] <= w[1]), "{costs:?}");
    let web_scale = &r["scale"][0];
    assert_eq!(
        counts(&web_scale["zonesAfter"]),
        BTreeMap::from([
            ("h".to_string(), 0),
            ("i".to_string(), 3),
            ("k".to_string(), 0)
        ])
    );
    let api_scale = &r["scale"][1];
    assert_eq!(api_scale["replicaSet"], "api-6d4b8f7c9");
    // api was bound h,k,i,h,k,i: the second pod of h and of k (cost -1) go
    // first, then one of the two at cost 0.
    assert_eq!(counts(&api_scale["zonesAfter"]).values().sum::<u64>(), 3);
    assert_eq!(counts(&api_scale["zonesAfter"])["i"], 2);
    assert_eq!(
        r["notes"],
        serde_json::json!([format!(
            "4 placeholder pods detected, left without a cost and not counted as replicas: {}",
            [
                "default/ack-place-holder-h-5f7d8b9c4-tvv98",
                "default/ack-place-holder-i-5f7d8b9c4-r2q86",
                "default/ack-place-holder-k-5f7d8b9c4-vvpv4",
                "default/ack-place-holder-h-5f7d8b9c4-hzl7t",
            ]
            .join(", ")
        )])
    );
    // The mirror pod is reported, never evaluated.
    assert!(
        !r["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["pod"].as_str().unwrap().starts_with("node-exporter"))
    );
}

#[test]
fn ack_table_prints_each_decision() {
    let settings = example("ack-zones-placeholders.yaml");
    table_holds(
        &ack(&["--settings", &settings, "--scale", "shop/web=3"]),
        &[
            "ReplicaSet default/ack-place-holder-i-5f7d8b9c4 (Deployment ack-place-holder-i): 2 pods, deleted in this order on scale-down",
            "  1      ack-place-holder-i-5f7d8b9c4-hwhkk  -                        -     -     -     not bound yet (Pending, not ready)",
            "  2      ack-place-holder-i-5f7d8b9c4-r2q86  cn-beijing.192.168.0.23  i     -     -     placeholder",
            "ReplicaSet shop/web-58c9d7f6b4 (Deployment web): 9 pods, deleted in this order on scale-down",
            "  1      web-58c9d7f6b4-kfjbv  cn-beijing.192.168.2.17  k     -2    2     annotated",
            "  9      web-58c9d7f6b4-zd89n  cn-beijing.192.168.0.23  i     10    0     annotated",
            "Scale shop/web (web-58c9d7f6b4) 9 -> 3: removes web-58c9d7f6b4-kfjbv, web-58c9d7f6b4-bs8gv,",
            "  ZONE  BEFORE  AFTER",
            "  h     1       0",
            "  i     5       3",
            "  k     3       0",
        ],
    );
}

/// What `simulate` must print on standard error.
enum Says {
    Exactly(&'static str),
    StartsWith(&'static str),
}

/// A bad input: `file`, under a temporary directory, is written with
/// `text` (when given); `FILE` in the arguments and the message stands for
/// its path, `EKS` for the bundled EKS snapshot.
#[rstest]
#[case::snapshot_field_of_the_wrong_type(
    "bad.json",
    Some(r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1","labels":{"zone":7}}}]}"#),
    &["FILE"],
    2,
    Says::Exactly("error: FILE: items[0] (Node n1): metadata.labels.zone: expected a string, found 7")
)]
#[case::snapshot_time_with_a_non_ascii_character(
    "bad-time.json",
    Some(r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p","namespace":"ns","creationTimestamp":"2026-11-30T12:00:00é1234"}}]}"#),
    &["FILE"],
    2,
    Says::Exactly("error: FILE: items[0] (Pod ns/p): metadata.creationTimestamp: \"2026-11-30T12:00:00é1234\" is not an RFC 3339 time such as 2026-11-20T08:15:02Z")
)]
#[case::cost_beyond_int32(
    "settings.yml",
    Some("rules:\n  - nodeSelector: {matchLabels: {a: b}}\n    deletionCost: 99999999999\n"),
    &["--settings", "FILE", "EKS"],
    2,
    Says::StartsWith("error: FILE: the policy refuses these settings: rules[0].deletionCost")
)]
#[case::two_policies_in_one_file(
    "two.yaml",
    Some("apiVersion: policies.kubewarden.io/v1\nkind: ClusterAdmissionPolicy\nmetadata: {name: a}\nspec: {}\n---\napiVersion: policies.kubewarden.io/v1\nkind: ClusterAdmissionPolicy\nmetadata: {name: b}\nspec: {}\n"),
    &["--settings", "FILE", "EKS"],
    2,
    Says::Exactly("error: FILE: 2 Kubewarden policies (a, b); keep the one to simulate")
)]
#[case::scale_target_without_pods(
    "",
    None,
    &["--scale", "shop/nope=2", "--now", NOW, "EKS"],
    2,
    Says::Exactly("error: --scale shop/nope: no ReplicaSet or Deployment of that name has pods; ReplicaSets with pods in shop: web-7d9f8c6b5d (Deployment web)")
)]
#[case::scale_without_namespace(
    "",
    None,
    &["--scale", "web=2", "x.json"],
    2,
    Says::StartsWith("error: invalid value 'web=2' for '--scale <NS/NAME=N>': --scale \"web=2\": expected <namespace>/<replicaset-or-deployment>=<replicas>, e.g. shop/web=3\n")
)]
#[case::no_snapshot_and_no_kubeconfig(
    "absent.kubeconfig",
    None,
    &["--kubeconfig", "FILE"],
    2,
    Says::StartsWith("error: --kubeconfig FILE: ")
)]
#[case::no_snapshot_and_no_api_server(
    "unreachable.kubeconfig",
    // Port 1 of loopback: nothing listens there, the connection is refused.
    Some("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}\ncontexts:\n- name: here\n  context: {cluster: c, user: u, namespace: shop}\ncurrent-context: here\nusers:\n- name: u\n  user: {token: t}\n"),
    &["--kubeconfig", "FILE"],
    2,
    Says::StartsWith("error: context here: cannot list nodes: the API server at https://127.0.0.1:1/ cannot be reached: ")
)]
#[case::unknown_context(
    "one.kubeconfig",
    Some("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: here\n  context: {cluster: c, user: u}\ncurrent-context: here\nusers:\n- name: u\n  user: {token: t}\n"),
    &["--kubeconfig", "FILE", "--context", "there"],
    2,
    Says::Exactly("error: context there: not in the kubeconfig (its contexts: here)")
)]
#[case::namespace_with_a_snapshot(
    "",
    None,
    &["-n", "shop", "EKS"],
    2,
    Says::Exactly("error: -n/--namespace and -A/--all-namespaces choose what is read from the cluster; a snapshot file is read whole (export one namespace with kubectl get -n NS instead)")
)]
#[case::snapshot_missing("missing.json", None, &["FILE"], 2, Says::StartsWith("error: FILE: cannot read: "))]
fn bad_inputs_name_the_file_and_field(
    #[case] file: &str,
    #[case] text: Option<&str>,
    #[case] args: &[&str],
    #[case] code: i32,
    #[case] says: Says,
) {
    let tmp = std::env::temp_dir().join(format!("simulate-bad-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let path = tmp.join(file).display().to_string();
    if let Some(text) = text {
        std::fs::write(&path, text).unwrap();
    }
    let eks = snap("eks-hybrid/cluster.json");
    let args: Vec<&str> = args
        .iter()
        .map(|a| match *a {
            "FILE" => path.as_str(),
            "EKS" => eks.as_str(),
            other => other,
        })
        .collect();
    let r = simulate(&args);
    if text.is_some() {
        std::fs::remove_file(&path).ok();
    }
    assert_eq!(r.code, code, "{}", r.stderr);
    match says {
        Says::Exactly(want) => assert_eq!(r.stderr.trim(), want.replace("FILE", &path)),
        Says::StartsWith(want) => assert!(
            r.stderr.starts_with(&want.replace("FILE", &path)),
            "{}",
            r.stderr
        ),
    }
}

#[test]
fn rbac_and_policy_manifests_in_one_file() {
    // The bundled examples are read as they are applied: policy manifest,
    // possibly alongside RBAC documents.
    let rbac = std::fs::read_to_string(root().join("examples/rbac.yaml")).unwrap();
    let cap = std::fs::read_to_string(root().join("examples/ack-zones-placeholders.yaml")).unwrap();
    let tmp = std::env::temp_dir().join(format!("simulate-multi-{}.yaml", std::process::id()));
    std::fs::write(&tmp, format!("{rbac}\n---\n{cap}")).unwrap();
    let t = tmp.display().to_string();
    let r = json(&refs(&ack(&["--settings", &t])));
    assert_eq!(r["policy"]["name"], "pod-deletion-cost-ack-zones");
    assert_eq!(r["policy"]["settings"]["zones"]["balance"], true);
    std::fs::remove_file(Path::new(&tmp)).ok();
}

#[test]
fn nodes_missing_from_the_snapshot_show_as_policy_warnings() {
    let text = std::fs::read_to_string(snap("eks-hybrid/cluster.json")).unwrap();
    let mut list: Value = serde_json::from_str(&text).unwrap();
    let gone = "ip-10-42-77-12.us-west-2.compute.internal";
    list["items"]
        .as_array_mut()
        .unwrap()
        .retain(|i| !(i["kind"] == "Node" && i["metadata"]["name"] == gone));
    let tmp = std::env::temp_dir().join(format!("simulate-gone-{}.json", std::process::id()));
    std::fs::write(&tmp, list.to_string()).unwrap();
    let settings = example("eks-hybrid-bursting.yaml");
    let r = json(&["--settings", &settings, &tmp.display().to_string()]);
    std::fs::remove_file(&tmp).ok();
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    // shop/web has 3 pods on that node; kube-system is not sent.
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    for w in warnings {
        assert!(w.starts_with("shop/web-7d9f8c6b5d-"), "{w}");
        assert!(
            w.ends_with(&format!(
                " → {gone}: pod-deletion-cost: cannot read node \"{gone}\": nodes \"{gone}\" not found; the binding is admitted without a deletion cost"
            )),
            "{w}"
        );
    }
}

/// A pod of `rs` (Deployment `web`, hash after the last `-`) on `node`,
/// ready since `ready`, as kubectl prints it (the fields the snapshot reads).
fn rollout_pod(name: &str, rs: &str, node: &str, ready: &str) -> Value {
    let hash = rs.rsplit('-').next().unwrap();
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "creationTimestamp": ready,
            "labels": {"app": "web", "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                 "uid": format!("uid-{rs}"), "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx:1.27"}]},
        "status": {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": ready},
            {"type": "Ready", "status": "True", "lastTransitionTime": ready}
        ]}
    })
}

#[test]
fn rollout_counts_every_replicaset_of_the_deployment_on_a_node() {
    // Mid-rollout: the old ReplicaSet keeps three pods on n1; the new one
    // has a pod on n1 and a more recently ready one on n2. Counted over the
    // new ReplicaSet alone, n1 and n2 hold one pod each and the newer pod
    // (n2) would go first; the controller counts related pods, four on n1.
    let node = |name: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
    };
    let (old, new) = ("web-7c9f8d6b5", "web-5f6d7c8b9");
    let mut items = vec![node("n1"), node("n2")];
    for i in 0..3 {
        items.push(rollout_pod(
            &format!("{old}-o{i}"),
            old,
            "n1",
            "2026-11-01T00:00:00Z",
        ));
    }
    items.push(rollout_pod(
        &format!("{new}-a"),
        new,
        "n1",
        "2026-11-21T00:00:00Z",
    ));
    items.push(rollout_pod(
        &format!("{new}-b"),
        new,
        "n2",
        "2026-11-21T23:59:00Z",
    ));
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rollout-snapshot.json");
    std::fs::write(&path, list.to_string()).unwrap();
    let path = path.display().to_string();

    let r = json(&["--scale", &format!("shop/{new}=1"), &path]);
    let order: Vec<&str> = pods(replica_set(&r, new))
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(order, [format!("{new}-a"), format!("{new}-b")]);
    assert_eq!(
        r["scale"][0]["removed"],
        serde_json::json!([format!("{new}-a")])
    );
    assert_eq!(replica_set(&r, new)["deployment"], "web");
    assert_eq!(replica_set(&r, old)["deployment"], "web");
    // The Deployment's name is ambiguous mid-rollout: the report says so.
    let run = simulate(&["--now", NOW, "--scale", "shop/web=1", &path]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("a rollout in progress"),
        "{}",
        run.stderr
    );
}
