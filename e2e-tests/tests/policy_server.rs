//! End to end through the real policy-server and the real kube-apiserver:
//! the annotated `policy.wasm` served by policy-server on loopback, its
//! host calls answered by a kube-apiserver (with etcd; no scheduler,
//! controller or kubelet: the tests make every object through the API)
//! that policy-server reads as ServiceAccount `kubewarden/policy-server`
//! holding only the RBAC of `examples/rbac.yaml`; AdmissionReviews posted to
//! policy-server over HTTP, as the API server would post them.
//!
//! Run by `make e2e-policy-server`, which annotates the module, sets
//! `ANNOTATED_POLICY_WASM` and `KUBE_BIN_DIR` and passes `--ignored`; a
//! plain `cargo test` lists them as ignored. Run without policy-server,
//! the Kubernetes programs or that variable, a test fails saying which is
//! missing.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use cluster_sim::{self as sim, COST_ANNOTATION, Cluster, RANK_ANNOTATION, ZONE_ANNOTATION};
use control_plane::fixture::{self as fx, ACK_NODE_I, ACK_NODE_K, HYBRID_NODE};
use control_plane::http::Connection;
use control_plane::policy_server::{self, ApiRequest, Standalone};
use control_plane::webhook::{self, Policy};
use control_plane::{Binaries, ControlPlane};
use e2e_tests::cases::{self, Case};
use kubectl_deletion_cost::PolicyConfig;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wasm_host::replay::Recorded;
use wasm_host::{self as engine, Policy as InProcess};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The annotated module; policy-server must be on PATH.
fn annotated_wasm() -> Result<PathBuf> {
    if webhook::program().is_none() {
        bail!("policy-server is not on PATH: run these tests with `make e2e-policy-server`");
    }
    std::env::var_os("ANNOTATED_POLICY_WASM")
        .map(PathBuf::from)
        .context("ANNOTATED_POLICY_WASM is not set: run these tests with `make e2e-policy-server`")
}

/// etcd and kube-apiserver in a folder of their own (kept when the test
/// fails), with policy-server's account and the documented RBAC.
fn api_server(name: &str) -> Result<ControlPlane> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let bin = Binaries::locate()?;
    let dir = std::env::temp_dir().join(format!(
        "policy-server-e2e-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let plane = ControlPlane::start_api_server(bin, &dir, true)?;
    webhook::install_service_account(&plane, &repo().join("examples/rbac.yaml"))?;
    Ok(plane)
}

/// This policy as policy-server is given it: `settings`, and what
/// `metadata.yml` declares.
fn policy(name: &str, settings: Value) -> Result<Policy> {
    Policy::from_metadata(name, settings, &repo().join("metadata.yml"))
}

fn example_settings(file: &str) -> Result<Value> {
    let path = repo().join("examples").join(file);
    Ok(PolicyConfig::load(Some(&path))
        .map_err(anyhow::Error::msg)?
        .settings)
}

/// An AdmissionResponse, its patch decoded.
struct Reply {
    response: Value,
    allowed: bool,
    warnings: Vec<String>,
    /// The JSONPatch, base64-decoded; `None` when there is none.
    patch: Option<json_patch::Patch>,
}

impl Reply {
    fn from_response(response: Value) -> Result<Reply> {
        let allowed = response["allowed"]
            .as_bool()
            .with_context(|| format!("no `allowed` in the response: {response}"))?;
        let warnings = response["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        let patch = match response["patch"].as_str() {
            None => None,
            Some(encoded) => {
                if response["patchType"] != "JSONPatch" {
                    bail!("a patch whose patchType is not JSONPatch: {response}");
                }
                let bytes = base64::engine::general_purpose::STANDARD.decode(encoded)?;
                Some(
                    serde_json::from_slice(&bytes)
                        .context("the decoded patch is not a JSONPatch")?,
                )
            }
        };
        Ok(Reply {
            response,
            allowed,
            warnings,
            patch,
        })
    }

    /// `binding` with the patch applied (unchanged without a patch).
    fn patched(&self, binding: &Value) -> Result<Value> {
        let mut out = binding.clone();
        if let Some(patch) = &self.patch {
            json_patch::patch(&mut out, patch)?;
        }
        Ok(out)
    }

    /// The answer in the policy's own terms, the mutated object being
    /// `binding` with the patch applied, so the case table's checks apply.
    fn to_validation_response(&self, binding: &Value) -> Result<engine::ValidationResponse> {
        let status = &self.response["status"];
        Ok(engine::ValidationResponse {
            accepted: self.allowed,
            message: status["message"].as_str().map(String::from),
            code: status["code"].as_u64().and_then(|c| u16::try_from(c).ok()),
            mutated_object: match self.patch {
                Some(_) => Some(self.patched(binding)?),
                None => None,
            },
            audit_annotations: match &self.response["auditAnnotations"] {
                Value::Null => None,
                a => Some(serde_json::from_value(a.clone())?),
            },
            warnings: Some(self.warnings.clone()).filter(|w| !w.is_empty()),
        })
    }
}

fn review(
    server: &Standalone,
    connection: &mut Connection,
    id: &str,
    request: &Value,
) -> Result<Reply> {
    Reply::from_response(server.review(connection, id, request)?)
}

fn annotations(binding: &Value) -> BTreeMap<String, String> {
    binding
        .pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default()
}

fn in_process_policy() -> Result<InProcess> {
    InProcess::load(&wasm_host::default_policy_wasm()).context("policy.wasm (make policy.wasm)")
}

/// What the in-process engine (waPC in wasmtime) answers for the same
/// binding on the model of the same cluster: the reference for
/// policy-server's answer.
fn in_process_annotations(
    policy: &InProcess,
    cluster: &Cluster,
    settings: &Value,
    namespace: &str,
    pod: &str,
    node: &str,
) -> Result<BTreeMap<String, String>> {
    let outcome = sim::bind(policy, &mut cluster.clone(), settings, namespace, pod, node)?;
    Ok(outcome
        .response
        .mutated_object
        .as_ref()
        .map(annotations)
        .unwrap_or_default())
}

fn bind(
    server: &Standalone,
    id: &str,
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    node: &str,
) -> Result<(Reply, BTreeMap<String, String>)> {
    let request = cluster.binding_request(namespace, pod, node);
    let reply = review(server, &mut server.connect()?, id, &request)?;
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
#[ignore = "needs policy-server and the Kubernetes programs: make e2e-policy-server"]
fn eks_defaults_cost_hybrid_bindings_and_warn_on_a_missing_node() -> Result<()> {
    let wasm = annotated_wasm()?;
    let plane = api_server("eks")?;
    let cluster = fx::model();
    fx::create_model(&plane, &cluster)?;
    let eks = policy("eks", example_settings("eks-hybrid-bursting.yaml")?)?;
    let id = eks.id();
    let server = Standalone::start(&plane, "policy-server", &[(eks, wasm)])?;

    let (reply, hybrid) = bind(&server, &id, &cluster, "shop", "web-1", HYBRID_NODE)?;
    assert!(reply.allowed, "{}", reply.response);
    assert_eq!(
        hybrid,
        BTreeMap::from([(COST_ANNOTATION.to_string(), "1".to_string())])
    );

    let (reply, ec2) = bind(&server, &id, &cluster, "shop", "web-2", fx::EC2_NODE)?;
    assert!(
        reply.allowed && reply.patch.is_none() && ec2.is_empty(),
        "{}",
        reply.response
    );

    let (reply, _) = bind(&server, &id, &cluster, "shop", "web-3", "mi-gone")?;
    assert!(reply.allowed && reply.patch.is_none(), "{}", reply.response);
    let [warning] = reply.warnings.as_slice() else {
        bail!("one warning expected: {:?}", reply.warnings)
    };
    // policy-server's own words for a missing object, as docs/bad-input.md
    // shows them.
    assert_eq!(
        warning,
        "pod-deletion-cost: cannot read node \"mi-gone\": Cannot find v1/Node named 'mi-gone' inside of namespace 'None'; the binding is admitted without a deletion cost"
    );
    // policy-server reads a node with a GET of that one node, which the
    // API server answered NotFound.
    let requests = policy_server::api_requests(&plane)?;
    assert!(
        requests
            .iter()
            .any(|r| r.verb == "get" && r.path == "/api/v1/nodes/mi-gone" && r.code == Some(404)),
        "{requests:#?}"
    );
    Ok(())
}

/// Creates the Binding `reply` admitted, as the scheduler does once the
/// webhook answered: the API server sets the pod's node and copies the
/// Binding's annotations onto it.
fn create_binding(plane: &ControlPlane, request: &Value, reply: &Reply) -> Result<()> {
    let mut binding = reply.patched(&request["object"])?;
    if let Some(meta) = binding["metadata"].as_object_mut() {
        // Set by the server, not by the client that posts a Binding.
        meta.remove("uid");
        meta.remove("creationTimestamp");
    }
    let namespace = request["namespace"].as_str().unwrap_or_default();
    let pod = request["name"].as_str().unwrap_or_default();
    plane.kubectl_with_input(
        &[
            "create",
            "--raw",
            &format!("/api/v1/namespaces/{namespace}/pods/{pod}/binding"),
            "-f",
            "-",
        ],
        &binding.to_string(),
    )?;
    Ok(())
}

#[test]
#[ignore = "needs policy-server and the Kubernetes programs: make e2e-policy-server"]
fn ack_zones_rank_bindings_skip_placeholders_and_follow_the_watch() -> Result<()> {
    let wasm = annotated_wasm()?;
    let settings = example_settings("ack-zones-placeholders.yaml")?;
    let in_process = in_process_policy()?;
    let mut cluster = fx::model();
    // 10 pods over k, i, h in turn: k holds ranks 0..=3, i and h 0..=2.
    let pending = fx::ranked_workload(&mut cluster, "shop", "web", "web-6d9c", 10);
    let second = cluster.create_rs_pod(
        "shop",
        "web-6d9c",
        &[("app", "web"), ("pod-template-hash", "web-6d9c")],
    );
    let placeholder =
        cluster.create_rs_pod("shop", "place-holder-k", &[("app", "ack-place-holder")]);
    cluster.update_pod("shop", &placeholder, |p| {
        p.priority_class_name = Some("default-priority-class".into());
        p.priority = Some(-1);
    });
    let plane = api_server("ack")?;
    fx::create_model(&plane, &cluster)?;
    let ack = policy("ack", settings.clone())?;
    let id = ack.id();
    let server = Standalone::start(&plane, "policy-server", &[(ack, wasm)])?;

    let (reply, got) = bind(&server, &id, &cluster, "shop", &pending, ACK_NODE_K)?;
    assert!(reply.allowed, "{}", reply.response);
    assert_eq!(got, expected("-4", "k", "4"));
    assert_eq!(
        got,
        in_process_annotations(
            &in_process,
            &cluster,
            &settings,
            "shop",
            &pending,
            ACK_NODE_K
        )?
    );
    // Zone i costs 10 more; it holds ranks 0..=2.
    let (_, got) = bind(&server, &id, &cluster, "shop", &pending, ACK_NODE_I)?;
    assert_eq!(got, expected("7", "i", "3"));

    let (reply, got) = bind(&server, &id, &cluster, "shop", &placeholder, ACK_NODE_K)?;
    assert!(
        reply.allowed && reply.patch.is_none() && got.is_empty(),
        "{}",
        reply.response
    );

    // The pod is bound with the Binding policy-server answered; the API
    // server copies its annotations onto the pod, and policy-server's
    // pod-list cache learns it through its watch, so the next pod in zone
    // k takes rank 5. Bounded wait: the watch is asynchronous.
    let first = cluster.binding_request("shop", &pending, ACK_NODE_K);
    let reply = review(&server, &mut server.connect()?, &id, &first)?;
    create_binding(&plane, &first, &reply)?;
    cluster.complete_bind(
        "shop",
        &pending,
        ACK_NODE_K,
        Some(&reply.patched(&first["object"])?),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let (_, got) = bind(&server, &id, &cluster, "shop", &second, ACK_NODE_K)?;
        if got.get(RANK_ANNOTATION).map(String::as_str) != Some("4") || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(got, expected("-5", "k", "5"));
    assert_eq!(
        got,
        in_process_annotations(
            &in_process,
            &cluster,
            &settings,
            "shop",
            &second,
            ACK_NODE_K
        )?
    );

    // One LIST and one WATCH for the workload's selector (its labels but
    // pod-template-hash), however many bindings: policy-server keeps a
    // reflector per selector.
    let reads: Vec<ApiRequest> = policy_server::api_requests(&plane)?
        .into_iter()
        .filter(|r| r.is_collection_read("/api/v1/namespaces/shop/pods", "app=web"))
        .collect();
    let lists = reads.iter().filter(|r| r.verb == "list").count();
    let watches: Vec<&ApiRequest> = reads.iter().filter(|r| r.verb == "watch").collect();
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
#[ignore = "needs policy-server and the Kubernetes programs: make e2e-policy-server"]
fn a_balance_binding_with_1000_siblings_is_answered() -> Result<()> {
    let wasm = annotated_wasm()?;
    let settings = example_settings("ack-zones-placeholders.yaml")?;
    let in_process = in_process_policy()?;
    let mut cluster = fx::model();
    // 1,000 pods over k, i, h in turn: k holds 334 of them, ranks 0..=333.
    let pending = fx::ranked_workload(&mut cluster, "big", "api", "api-7f4b", 1000);
    let plane = api_server("siblings")?;
    fx::create_model(&plane, &cluster)?;
    let ack = policy("ack", settings.clone())?;
    let id = ack.id();
    let server = Standalone::start(&plane, "policy-server", &[(ack, wasm)])?;

    let (reply, got) = bind(&server, &id, &cluster, "big", &pending, ACK_NODE_K)?;
    assert!(
        reply.allowed && reply.warnings.is_empty(),
        "{}",
        reply.response
    );
    assert_eq!(got, expected("-334", "k", "334"));
    assert_eq!(
        got,
        in_process_annotations(
            &in_process,
            &cluster,
            &settings,
            "big",
            &pending,
            ACK_NODE_K
        )?
    );
    assert_eq!(reply.response["auditAnnotations"]["siblings"], "1000");
    // kube-rs lists in pages of 500: the API server's continue tokens
    // carried it through the 1,001 pods.
    let pages: Vec<ApiRequest> = policy_server::api_requests(&plane)?
        .into_iter()
        .filter(|r| {
            r.is_collection_read("/api/v1/namespaces/big/pods", "app=api") && r.verb == "list"
        })
        .collect();
    assert_eq!(pages.len(), 3, "{pages:#?}");
    assert!(
        pages[1..].iter().all(|p| p.query.contains_key("continue")),
        "{pages:#?}"
    );
    Ok(())
}

/// The objects a case's replay session describes: every object its
/// answers carry (a node, the pod, the listed pods), merged when the same
/// object comes back under different field masks. `None` when an exchange
/// answers an error: the API server words its errors as policy-server
/// passes them on, not as the session does.
fn objects_of_session(session: &[Recorded]) -> Option<BTreeMap<(String, String, String), Value>> {
    let mut objects = BTreeMap::new();
    for exchange in session {
        let payload: Value = serde_json::from_slice(exchange.response.as_ref().ok()?).ok()?;
        let found = match payload.get("items").and_then(Value::as_array) {
            Some(items) => items.clone(),
            None => vec![payload],
        };
        for mut object in found {
            let kind = if object["kind"] == "Node" {
                "Node"
            } else {
                "Pod"
            };
            object["apiVersion"] = json!("v1");
            object["kind"] = json!(kind);
            let text = |f: &str| object["metadata"][f].as_str().unwrap_or("").to_string();
            let key = (kind.to_string(), text("namespace"), text("name"));
            match objects.get_mut(&key) {
                Some(known) => merge(known, object),
                None => {
                    objects.insert(key, object);
                }
            }
        }
    }
    Some(objects)
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, other) => *slot = other,
    }
}

/// Why a case's cluster cannot be made in a real one, if it cannot: the
/// Priority admission plugin sets a pod's `spec.priority` from its
/// PriorityClass (0 without one) and refuses a pod that gives another.
fn unrealisable(objects: &BTreeMap<(String, String, String), Value>) -> Option<String> {
    // Unbound pods recorded in a creation order (their resourceVersions)
    // that the fixture, which sets no version and creates the pod being
    // bound after its siblings, does not reproduce.
    let unbound_versions: BTreeSet<&str> = objects
        .values()
        .filter(|o| o["kind"] == "Pod" && o["spec"]["nodeName"].as_str().unwrap_or("").is_empty())
        .filter_map(|o| o["metadata"]["resourceVersion"].as_str())
        .collect();
    if unbound_versions.len() > 1 {
        return Some(format!(
            "unbound pods recorded at resourceVersions {unbound_versions:?}: their creation order"
        ));
    }
    objects.values().find_map(|o| {
        let priority = o["spec"]["priority"].as_i64().unwrap_or(0);
        (o["kind"] == "Pod" && priority != 0 && o["spec"]["priorityClassName"].is_null()).then(
            || {
                format!(
                    "pod {}: spec.priority {priority} without a priorityClassName",
                    o["metadata"]["name"]
                )
            },
        )
    })
}

/// The cases whose recorded pods no real API server would store (see
/// [`unrealisable`]): the case table runs them in process and under kwctl.
const UNREALISABLE_CASES: &[&str] = &[
    "max-priority-zero-is-not-a-placeholder",
    "placeholder-by-pod-selector",
    "zones-balance-burst-pending-siblings",
];

/// Every case of the table whose host calls all succeed, with the objects
/// of its session created in a real API server: policy-server's answer,
/// its patch applied, passes the case's own checks. Cases whose objects
/// agree share an API server and a policy-server.
#[test]
#[ignore = "needs policy-server and the Kubernetes programs: make e2e-policy-server"]
fn the_case_table_through_policy_server() -> Result<()> {
    let wasm = annotated_wasm()?;
    type Objects = BTreeMap<(String, String, String), Value>;
    let mut groups: Vec<(Objects, Vec<Case>)> = Vec::new();
    let mut refused = Vec::new();
    for case in cases::load_all(&cases::default_dir())? {
        if !case.expect.settings_valid {
            continue;
        }
        let Some(objects) = objects_of_session(&case.session) else {
            continue;
        };
        if let Some(why) = unrealisable(&objects) {
            eprintln!("{}: not through the API server: {why}", case.name);
            refused.push(case.name.clone());
            continue;
        }
        let fits = |known: &Objects| {
            objects
                .iter()
                .all(|(key, o)| known.get(key).is_none_or(|k| k == o))
        };
        let index = match groups.iter().position(|(known, _)| fits(known)) {
            Some(i) => i,
            None => {
                groups.push((Objects::new(), Vec::new()));
                groups.len() - 1
            }
        };
        let (known, members) = &mut groups[index];
        known.extend(objects);
        members.push(case);
    }
    assert_eq!(refused, UNREALISABLE_CASES);
    let mut failures = Vec::new();
    let mut ran = 0;
    let clusters = groups.len();
    for (index, (objects, members)) in groups.into_iter().enumerate() {
        let plane = api_server(&format!("cases-{index}"))?;
        // The pods being bound are created last, so that a sibling the
        // session shows created with them does not come out newer.
        let bound: BTreeSet<(String, String)> = members
            .iter()
            .filter_map(|c| {
                let request = engine::admission_request(c.request.clone());
                let (ns, name) = (request["namespace"].as_str()?, request["name"].as_str()?);
                Some((ns.to_string(), name.to_string()))
            })
            .collect();
        let objects: Vec<Value> = objects.into_values().collect();
        fx::create(&plane, &objects, &bound)?;
        let policies = members
            .iter()
            .map(|c| Ok((policy(&c.name, c.settings.clone())?, wasm.clone())))
            .collect::<Result<Vec<_>>>()?;
        let server = Standalone::start(&plane, "policy-server", &policies)?;
        let mut connection = server.connect()?;
        for (case, (policy, _)) in members.iter().zip(&policies) {
            let request = engine::admission_request(case.request.clone());
            let reply = review(&server, &mut connection, &policy.id(), &request)
                .with_context(|| format!("case {}", case.name))?;
            let response = reply.to_validation_response(&request["object"])?;
            for problem in case.check(&response) {
                failures.push(format!("{}: {problem}", case.name));
            }
            ran += 1;
        }
    }
    eprintln!("{ran} cases through {clusters} API servers, each with its policy-server");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran >= 20, "only {ran} cases ran through policy-server");
    Ok(())
}

/// policy-server refuses to start with settings the policy refuses, and
/// prints the policy's own message: every invalid-settings case.
#[test]
#[ignore = "needs policy-server and the Kubernetes programs: make e2e-policy-server"]
fn refused_settings_stop_policy_server_with_the_policys_message() -> Result<()> {
    let wasm = annotated_wasm()?;
    let plane = api_server("refused")?;
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
        let refused = policy("refused", case.settings.clone())?;
        let error = match Standalone::start(
            &plane,
            &format!("policy-server-{}", case.name),
            &[(refused, wasm.clone())],
        ) {
            Ok(_) => bail!(
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
