//! The fixture cluster the policy-server rig serves: the EKS and ACK nodes
//! of `e2e-tests/fixtures/nodes/` (as the API server returns them), one more ACK node
//! in each of the zones `i` and `h`, and ReplicaSets of already bound,
//! ranked pods built on the simulator's cluster model, so the same cluster
//! can also answer the in-process engine.

use crate::kube_api::Store;
use anyhow::{Context, Result};
use cluster_sim::{Cluster, RANK_ANNOTATION, ZONE_ANNOTATION};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wasm_host::replay::Recorded;

pub const HYBRID_NODE: &str = "mi-0ebe45e33a53e04f2";
pub const EC2_NODE: &str = "ip-10-42-108-174.us-west-2.compute.internal";
/// The ACK fixture node, in zone `k`.
pub const ACK_NODE_K: &str = "cn-beijing.192.168.2.17";
pub const ACK_NODE_I: &str = "cn-beijing.192.168.0.21";
pub const ACK_NODE_H: &str = "cn-beijing.192.168.4.9";
pub const ZONE_KEY: &str = "available_zone";
/// The ACK zones and a node in each, in the order replicas are spread.
pub const ACK_ZONES: &[(&str, &str)] = &[("k", ACK_NODE_K), ("i", ACK_NODE_I), ("h", ACK_NODE_H)];

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../e2e-tests/fixtures")
}

/// The nodes of the rig's cluster, in the model.
pub fn cluster() -> Cluster {
    let mut c = Cluster::default();
    c.add_node(HYBRID_NODE, &[("eks.amazonaws.com/compute-type", "hybrid")]);
    c.add_node(EC2_NODE, &[("eks.amazonaws.com/capacityType", "ON_DEMAND")]);
    for (zone, node) in ACK_ZONES {
        c.add_node(node, &[(ZONE_KEY, zone)]);
    }
    c
}

/// Adds `replicas` bound pods of ReplicaSet `rs` (labels `app=<app>`,
/// `pod-template-hash=<rs>`), spread over the ACK zones in turn, each
/// carrying the zone and rank annotations the policy gave it; and one more
/// pod, pending, whose name is returned: the one to bind next.
pub fn ranked_workload(
    c: &mut Cluster,
    namespace: &str,
    app: &str,
    rs: &str,
    replicas: usize,
) -> String {
    let labels = [("app", app), ("pod-template-hash", rs)];
    for i in 0..replicas {
        let (zone, node) = ACK_ZONES[i % ACK_ZONES.len()];
        let name = c.create_rs_pod(namespace, rs, &labels);
        let rank = (i / ACK_ZONES.len()).to_string();
        let annotations = serde_json::json!({"metadata": {"annotations": {ZONE_ANNOTATION: zone, RANK_ANNOTATION: rank}}});
        c.complete_bind(namespace, &name, node, Some(&annotations));
    }
    c.create_rs_pod(namespace, rs, &labels)
}

/// The model as the stand-in's store, with each node replaced by its
/// fixture file when there is one (full metadata, spec and status).
pub fn store(c: &Cluster) -> Result<Store> {
    let mut store = Store::from_cluster(c).map_err(anyhow::Error::msg)?;
    for node in &c.nodes {
        let path = fixtures_dir()
            .join("nodes")
            .join(format!("{}.json", node.name));
        if path.is_file() {
            store
                .put("nodes", read_json(&path)?)
                .map_err(anyhow::Error::msg)?;
        }
    }
    Ok(store)
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

/// The cluster a case's replay session describes: every object its
/// answers carry (a node, the pod, the listed pods), merged when the same
/// object comes back under different field masks. `None` when an exchange
/// answers an error: the stand-in words its errors as policy-server does,
/// not as the session does.
pub fn objects_of_session(
    session: &[Recorded],
) -> Option<BTreeMap<(String, String, String), Value>> {
    let mut objects = BTreeMap::new();
    for exchange in session {
        let payload: Value = serde_json::from_slice(exchange.response.as_ref().ok()?).ok()?;
        let found = match payload.get("items").and_then(Value::as_array) {
            Some(items) => items.clone(),
            None => vec![payload],
        };
        for mut object in found {
            let kind = object.get("kind").and_then(Value::as_str).unwrap_or("Pod");
            let resource = if kind == "Node" { "nodes" } else { "pods" };
            object["apiVersion"] = json!("v1");
            object["kind"] = json!(if resource == "nodes" { "Node" } else { "Pod" });
            let text = |f: &str| {
                object
                    .pointer(&format!("/metadata/{f}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let key = (resource.to_string(), text("namespace"), text("name"));
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
