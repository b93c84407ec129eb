//! End to end through the real policy-server: the annotated `policy.wasm`
//! served on loopback, its host calls answered by the Kubernetes API
//! stand-in (`policy_server_rig::kube_api`), AdmissionReviews posted over HTTP.
//!
//! Run by `make e2e-policy-server`, which annotates the module, sets
//! `ANNOTATED_POLICY_WASM` and passes `--ignored`; a plain `cargo test`
//! lists them as ignored. Run without policy-server or that variable, a
//! test fails saying which is missing.

use anyhow::{Context, Result};
use cluster_sim::{self as sim, COST_ANNOTATION, Cluster, RANK_ANNOTATION, ZONE_ANNOTATION};
use e2e_tests::cases::{self, Case};
use kubectl_deletion_cost::PolicyConfig;
use policy_server_rig::kube_api::{KubeApi, Store};
use policy_server_rig::policy_server::{self, PolicyEntry, Reply, Rig};
use policy_server_rig::rig_cluster::{self as rc, ACK_NODE_I, ACK_NODE_K, HYBRID_NODE};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasm_host::{self as engine, Policy};

/// The annotated module; policy-server must be on PATH.
fn annotated_wasm() -> Result<PathBuf> {
    if policy_server::program().is_none() {
        anyhow::bail!(
            "policy-server is not on PATH: run these tests with `make e2e-policy-server`"
        );
    }
    std::env::var_os("ANNOTATED_POLICY_WASM")
        .map(PathBuf::from)
        .context("ANNOTATED_POLICY_WASM is not set: run these tests with `make e2e-policy-server`")
}

fn example_settings(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(file);
    PolicyConfig::load(Some(&path))
        .expect("example manifest")
        .settings
}

fn annotations(binding: &Value) -> BTreeMap<String, String> {
    binding
        .pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default()
}

fn in_process_policy() -> Policy {
    Policy::load(&wasm_host::default_policy_wasm()).expect("policy.wasm (make policy.wasm)")
}

/// What the in-process engine (waPC in wasmtime) answers for the same
/// binding on the same cluster: the reference for policy-server's answer.
fn in_process_annotations(
    policy: &Policy,
    cluster: &Cluster,
    settings: &Value,
    namespace: &str,
    pod: &str,
    node: &str,
) -> BTreeMap<String, String> {
    let outcome = sim::bind(policy, &mut cluster.clone(), settings, namespace, pod, node)
        .expect("in-process bind");
    outcome
        .response
        .mutated_object
        .as_ref()
        .map(annotations)
        .unwrap_or_default()
}

fn bind(
    rig: &Rig,
    id: &str,
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    node: &str,
) -> Result<(Reply, BTreeMap<String, String>)> {
    let request = cluster.binding_request(namespace, pod, node);
    let reply = rig.review(&mut rig.connect()?, id, &request)?;
    let patched = reply.patched(&request["object"])?;
    Ok((reply, annotations(&patched)))
}

fn expected(cost: &str, zone: &str, rank: &str) -> BTreeMap<String, String> {
    [
        (COST_ANNOTATION, cost),
        (ZONE_ANNOTATION, zone),
        (RANK_ANNOTATION, rank),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
#[ignore = "needs policy-server: make e2e-policy-server"]
fn eks_defaults_cost_hybrid_bindings_and_warn_on_a_missing_node() -> Result<()> {
    let wasm = annotated_wasm()?;
    let cluster = rc::cluster();
    let api = KubeApi::start(rc::store(&cluster)?)?;
    let eks =
        PolicyEntry::pod_deletion_cost("eks", &wasm, example_settings("eks-hybrid-bursting.yaml"));
    let rig = Rig::start(&[eks], api)?;

    let (reply, hybrid) = bind(&rig, "eks", &cluster, "shop", "web-1", HYBRID_NODE)?;
    assert!(reply.allowed);
    assert_eq!(
        hybrid,
        BTreeMap::from([(COST_ANNOTATION.to_string(), "1".to_string())])
    );

    let (reply, ec2) = bind(&rig, "eks", &cluster, "shop", "web-2", rc::EC2_NODE)?;
    assert!(
        reply.allowed && reply.patch.is_none() && ec2.is_empty(),
        "{:?}",
        reply.response
    );

    let (reply, _) = bind(&rig, "eks", &cluster, "shop", "web-3", "mi-gone")?;
    assert!(
        reply.allowed && reply.patch.is_none(),
        "{:?}",
        reply.response
    );
    let [warning] = reply.warnings.as_slice() else {
        panic!("one warning expected: {:?}", reply.warnings)
    };
    // policy-server's own words for a missing object, as docs/bad-input.md
    // shows them.
    assert_eq!(
        warning,
        "pod-deletion-cost: cannot read node \"mi-gone\": Cannot find v1/Node named 'mi-gone' inside of namespace 'None'; the binding is admitted without a deletion cost"
    );
    // policy-server reads nodes with a GET of that one node, and the
    // stand-in answered it with a NotFound Status.
    assert!(
        rig.api
            .served()
            .iter()
            .any(|s| s.path == "/api/v1/nodes/mi-gone")
    );
    Ok(())
}

#[test]
#[ignore = "needs policy-server: make e2e-policy-server"]
fn ack_zones_rank_bindings_skip_placeholders_and_follow_the_watch() -> Result<()> {
    let wasm = annotated_wasm()?;
    let settings = example_settings("ack-zones-placeholders.yaml");
    let policy = in_process_policy();
    let mut cluster = rc::cluster();
    // 10 pods over k, i, h in turn: k holds ranks 0..=3, i and h 0..=2.
    let pending = rc::ranked_workload(&mut cluster, "shop", "web", "web-6d9c", 10);
    let second = cluster.create_rs_pod(
        "shop",
        "web-6d9c",
        &[("app", "web"), ("pod-template-hash", "web-6d9c")],
    );
    let placeholder =
        cluster.create_rs_pod("shop", "place-holder-k", &[("app", "ack-place-holder")]);
    if let Some(p) = cluster.pod_mut("shop", &placeholder) {
        p.priority_class_name = Some("default-priority-class".into());
        p.priority = Some(-1);
    }
    let api = KubeApi::start(rc::store(&cluster)?)?;
    let rig = Rig::start(
        &[PolicyEntry::pod_deletion_cost(
            "ack",
            &wasm,
            settings.clone(),
        )],
        api,
    )?;

    let (reply, got) = bind(&rig, "ack", &cluster, "shop", &pending, ACK_NODE_K)?;
    assert!(reply.allowed, "{:?}", reply.response);
    assert_eq!(got, expected("-4", "k", "4"));
    assert_eq!(
        got,
        in_process_annotations(&policy, &cluster, &settings, "shop", &pending, ACK_NODE_K)
    );
    // Zone i costs 10 more; it holds ranks 0..=2.
    let (_, got) = bind(&rig, "ack", &cluster, "shop", &pending, ACK_NODE_I)?;
    assert_eq!(got, expected("7", "i", "3"));

    let (reply, got) = bind(&rig, "ack", &cluster, "shop", &placeholder, ACK_NODE_K)?;
    assert!(
        reply.allowed && reply.patch.is_none() && got.is_empty(),
        "{:?}",
        reply.response
    );

    // The API server copies the first Binding's annotations onto the pod;
    // the policy's pod-list cache learns it through its watch, so the next
    // pod in zone k takes rank 5. Bounded wait: the watch is asynchronous.
    let first = cluster.binding_request("shop", &pending, ACK_NODE_K);
    let mutated = rig
        .review(&mut rig.connect()?, "ack", &first)?
        .patched(&first["object"])?;
    cluster.complete_bind("shop", &pending, ACK_NODE_K, Some(&mutated));
    let bound = cluster
        .pod("shop", &pending)
        .context("the bound pod")?
        .to_json();
    rig.api
        .update(|store| store.put("pods", bound))
        .map_err(anyhow::Error::msg)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let (_, got) = bind(&rig, "ack", &cluster, "shop", &second, ACK_NODE_K)?;
        if got.get(RANK_ANNOTATION).map(String::as_str) != Some("4") || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(got, expected("-5", "k", "5"));
    assert_eq!(
        got,
        in_process_annotations(&policy, &cluster, &settings, "shop", &second, ACK_NODE_K)
    );

    // One LIST and one WATCH for the workload's selector (its labels but
    // pod-template-hash), however many bindings: policy-server keeps a
    // reflector per selector.
    let served = rig.api.served();
    let path = "/api/v1/namespaces/shop/pods";
    let selector = "app=web";
    let reads: Vec<_> = served
        .iter()
        .filter(|s| s.is_collection_read(path, selector))
        .collect();
    let lists = reads.iter().filter(|s| !s.is_watch()).count();
    let watches: Vec<_> = reads.iter().filter(|s| s.is_watch()).collect();
    assert_eq!(lists, 1, "{reads:#?}");
    assert_eq!(watches.len(), 1, "{reads:#?}");
    assert_eq!(
        watches[0]
            .query
            .get("allowWatchBookmarks")
            .map(String::as_str),
        Some("true")
    );
    Ok(())
}

#[test]
#[ignore = "needs policy-server: make e2e-policy-server"]
fn a_balance_binding_with_1000_siblings_is_answered() -> Result<()> {
    let wasm = annotated_wasm()?;
    let settings = example_settings("ack-zones-placeholders.yaml");
    let policy = in_process_policy();
    let mut cluster = rc::cluster();
    // 1,000 pods over k, i, h in turn: k holds 334 of them, ranks 0..=333.
    let pending = rc::ranked_workload(&mut cluster, "big", "api", "api-7f4b", 1000);
    let api = KubeApi::start(rc::store(&cluster)?)?;
    let rig = Rig::start(
        &[PolicyEntry::pod_deletion_cost(
            "ack",
            &wasm,
            settings.clone(),
        )],
        api,
    )?;

    let (reply, got) = bind(&rig, "ack", &cluster, "big", &pending, ACK_NODE_K)?;
    assert!(
        reply.allowed && reply.warnings.is_empty(),
        "{:?}",
        reply.response
    );
    assert_eq!(got, expected("-334", "k", "334"));
    assert_eq!(
        got,
        in_process_annotations(&policy, &cluster, &settings, "big", &pending, ACK_NODE_K)
    );
    assert_eq!(reply.response["auditAnnotations"]["siblings"], "1000");
    // kube-rs lists in pages of 500: the stand-in's continue tokens carried it.
    let pages: Vec<_> = rig
        .api
        .served()
        .into_iter()
        .filter(|s| s.is_collection_read("/api/v1/namespaces/big/pods", "app=api") && !s.is_watch())
        .collect();
    assert_eq!(pages.len(), 3, "{pages:#?}");
    assert!(
        pages[1..].iter().all(|p| p.query.contains_key("continue")),
        "{pages:#?}"
    );
    Ok(())
}

/// Every case of the table whose host calls all succeed, with its cluster
/// served by the stand-in: policy-server's answer, its patch applied,
/// passes the case's own checks.
#[test]
#[ignore = "needs policy-server: make e2e-policy-server"]
fn the_case_table_through_policy_server() -> Result<()> {
    let wasm = annotated_wasm()?;
    let mut groups: Vec<(Store, Vec<Case>)> = Vec::new();
    for case in cases::load_all(&cases::default_dir())? {
        if !case.expect.settings_valid {
            continue;
        }
        let Some(objects) = rc::objects_of_session(&case.session) else {
            continue;
        };
        // Cases share a policy-server when their clusters agree.
        let fits = |store: &Store| {
            objects.iter().all(|((r, ns, n), o)| {
                store
                    .get(r, ns, n)
                    .is_none_or(|known| same_object(known, o))
            })
        };
        let index = match groups.iter().position(|(store, _)| fits(store)) {
            Some(i) => i,
            None => {
                groups.push((Store::default(), Vec::new()));
                groups.len() - 1
            }
        };
        let (store, members) = &mut groups[index];
        for ((resource, _, _), object) in objects {
            store.put(&resource, object).map_err(anyhow::Error::msg)?;
        }
        members.push(case);
    }
    let mut failures = Vec::new();
    let mut ran = 0;
    let policy_servers = groups.len();
    for (store, members) in groups {
        let entries: Vec<PolicyEntry> = members
            .iter()
            .map(|c| PolicyEntry::pod_deletion_cost(&c.name, &wasm, c.settings.clone()))
            .collect();
        let rig = Rig::start(&entries, KubeApi::start(store)?)?;
        let mut connection = rig.connect()?;
        for case in &members {
            let request = engine::admission_request(case.request.clone());
            let reply = rig
                .review(&mut connection, &case.name, &request)
                .with_context(|| format!("case {}", case.name))?;
            let response = reply.to_validation_response(&request["object"])?;
            for problem in case.check(&response) {
                failures.push(format!("{}: {problem}", case.name));
            }
            ran += 1;
        }
    }
    eprintln!("{ran} cases through {policy_servers} policy-server runs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran >= 20, "only {ran} cases ran through policy-server");
    Ok(())
}

/// Equal but for the stand-in's own stamps.
fn same_object(known: &Value, object: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        v
    };
    let (mut a, b) = (strip(known), strip(object));
    // What the stand-in added when the object had none.
    for field in ["uid", "creationTimestamp"] {
        if b.pointer(&format!("/metadata/{field}")).is_none()
            && let Some(meta) = a.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove(field);
        }
    }
    a == b
}

/// policy-server refuses to start with settings the policy refuses, and
/// prints the policy's own message: every invalid-settings case.
#[test]
#[ignore = "needs policy-server: make e2e-policy-server"]
fn refused_settings_stop_policy_server_with_the_policys_message() -> Result<()> {
    let wasm = annotated_wasm()?;
    let mut checked = 0;
    for case in cases::load_all(&cases::default_dir())? {
        let Some(message) = case
            .expect
            .settings_message
            .as_ref()
            .filter(|_| !case.expect.settings_valid)
        else {
            continue;
        };
        let api = KubeApi::start(Store::default())?;
        let entry = PolicyEntry::pod_deletion_cost("refused", &wasm, case.settings.clone());
        let error = match Rig::start(&[entry], api) {
            Ok(_) => panic!(
                "{}: policy-server started with settings the policy refuses",
                case.name
            ),
            Err(e) => format!("{e:#}"),
        };
        assert!(error.contains("exited"), "{}: {error}", case.name);
        assert!(
            error.contains(message.as_str()),
            "{}: the output does not contain {message:?}:\n{error}",
            case.name
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} invalid-settings cases");
    Ok(())
}
