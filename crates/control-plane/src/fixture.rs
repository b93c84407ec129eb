//! The cluster the policy-server end-to-end tests and load tools run
//! against, and how objects written for a model become objects of a real
//! API server: the EKS and ACK nodes of `e2e-tests/fixtures/nodes/` (as an
//! API server returns them), one more ACK node in each of the zones `i` and
//! `h`, and ReplicaSets of already bound, ranked pods, built on the
//! simulator's cluster model so that the same cluster can also answer the
//! in-process engine.

use crate::cluster::ControlPlane;
use anyhow::{Context, Result, bail};
use cluster_sim::{Cluster, RANK_ANNOTATION, ZONE_ANNOTATION};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const HYBRID_NODE: &str = "mi-0ebe45e33a53e04f2";
pub const EC2_NODE: &str = "ip-10-42-108-174.us-west-2.compute.internal";
/// The ACK fixture node, in zone `k`.
pub const ACK_NODE_K: &str = "cn-beijing.192.168.2.17";
pub const ACK_NODE_I: &str = "cn-beijing.192.168.0.21";
pub const ACK_NODE_H: &str = "cn-beijing.192.168.4.9";
pub const ZONE_KEY: &str = "available_zone";
/// The ACK zones and a node in each, in the order replicas are spread.
pub const ACK_ZONES: &[(&str, &str)] = &[("k", ACK_NODE_K), ("i", ACK_NODE_I), ("h", ACK_NODE_H)];
/// Holds a pod the tests mark as being deleted: without a kubelet to
/// confirm, a deleted pod that is not bound (or has finished) would be gone
/// at once instead of keeping its `deletionTimestamp`.
pub const HOLD_FINALIZER: &str = "pod-deletion-cost.kubewarden.io/test-hold";

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../e2e-tests/fixtures")
}

/// The nodes of the fixture cluster, in the model.
pub fn model() -> Cluster {
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
        let annotations =
            json!({"metadata": {"annotations": {ZONE_ANNOTATION: zone, RANK_ANNOTATION: rank}}});
        c.complete_bind(namespace, &name, node, Some(&annotations));
    }
    c.create_rs_pod(namespace, rs, &labels)
}

/// The model's nodes as objects, each replaced by its fixture file when
/// there is one (a real node's whole metadata).
pub fn node_objects(c: &Cluster) -> Result<Vec<Value>> {
    c.nodes
        .iter()
        .map(|node| {
            let path = fixtures_dir()
                .join("nodes")
                .join(format!("{}.json", node.name));
            if path.is_file() {
                read_json(&path)
            } else {
                Ok(json!({"apiVersion": "v1", "kind": "Node",
                          "metadata": {"name": node.name, "labels": node.labels}}))
            }
        })
        .collect()
}

/// Creates the model's nodes and pods in `plane` (see [`create`]).
pub fn create_model(plane: &ControlPlane, c: &Cluster) -> Result<()> {
    let mut objects = node_objects(c)?;
    objects.extend(c.pods().iter().map(|p| p.to_json()));
    create(plane, &objects, &BTreeSet::new())
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

/// Creates `objects` (Nodes and Pods, as an API server returned them or a
/// model wrote them) in `plane`, as close to them as a real API server
/// lets a client come:
/// - the fields the server sets itself (uid, resourceVersion,
///   creationTimestamp, …) are dropped and set afresh;
/// - a pod gets a container when it has none (a field mask left it out);
///   the namespaces and the PriorityClasses the pods name (with the
///   pod's priority as the class's value, so the Priority admission
///   plugin computes the same) are created first;
/// - a pod's `status.phase` other than Pending is written through the
///   status subresource, and a pod with a `deletionTimestamp` is deleted
///   (held by [`HOLD_FINALIZER`]), so the server sets its own;
/// - pods are created in the order of their `creationTimestamp`, and the
///   pods in `last` (namespace, name) after the others: a sibling the
///   policy should take for pending (created shortly before the pod being
///   bound) must not come out created after it.
pub fn create(
    plane: &ControlPlane,
    objects: &[Value],
    last: &BTreeSet<(String, String)>,
) -> Result<()> {
    let mut nodes = Vec::new();
    let mut pods = Vec::new();
    for object in objects {
        match object["kind"].as_str() {
            Some("Node") => nodes.push(creatable(object)),
            Some("Pod") => pods.push(object),
            other => bail!("cannot create a {other:?}: only Nodes and Pods"),
        }
    }
    let key = |p: &Value| {
        let text = |f: &str| p["metadata"][f].as_str().unwrap_or_default().to_string();
        (text("namespace"), text("name"))
    };
    pods.sort_by_key(|p| {
        (
            last.contains(&key(p)),
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    });
    for namespace in pods.iter().map(|p| key(p).0).collect::<BTreeSet<_>>() {
        plane.create_namespace(&namespace)?;
    }
    create_priority_classes(plane, &pods)?;
    let mut items = nodes;
    let mut phases: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut deleted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in &pods {
        let (namespace, name) = key(pod);
        let mut item = creatable(pod);
        if item["spec"]["containers"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            item["spec"]["containers"] =
                json!([{"name": "app", "image": "registry.k8s.io/pause:3.10"}]);
        }
        if pod["metadata"].get("deletionTimestamp").is_some() {
            item["metadata"]["finalizers"] = json!([HOLD_FINALIZER]);
            deleted
                .entry(namespace.clone())
                .or_default()
                .push(name.clone());
        }
        match pod["status"]["phase"].as_str() {
            None | Some("Pending") => {}
            Some(phase) => phases
                .entry((namespace, phase.to_string()))
                .or_default()
                .push(name),
        }
        items.push(item);
    }
    // One request stream for all: the order above is the creation order.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    plane.kubectl_with_input(&["create", "-f", "-"], &list.to_string())?;
    for ((namespace, phase), names) in phases {
        let patch = json!({"status": {"phase": phase}}).to_string();
        let mut args = vec!["patch", "pods", "-n", &namespace, "--subresource=status"];
        args.extend(names.iter().map(String::as_str));
        args.extend(["--type=merge", "-p", &patch]);
        plane.kubectl_quiet(&args)?;
    }
    for (namespace, names) in deleted {
        let mut args = vec!["delete", "pods", "-n", &namespace, "--wait=false"];
        args.extend(names.iter().map(String::as_str));
        plane.kubectl_quiet(&args)?;
    }
    Ok(())
}

/// The object without what the API server sets itself (or refuses on
/// create), and without `status`, which a create ignores for pods.
fn creatable(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
    }
    if out["kind"] == "Pod"
        && let Some(o) = out.as_object_mut()
    {
        o.remove("status");
    }
    out
}

/// One PriorityClass per class name the pods give, its value the pods'
/// priority (0 when they give none); two pods naming the same class with
/// different priorities cannot both exist, and fail here.
fn create_priority_classes(plane: &ControlPlane, pods: &[&Value]) -> Result<()> {
    let mut classes: BTreeMap<&str, i64> = BTreeMap::new();
    for pod in pods {
        let Some(class) = pod["spec"]["priorityClassName"].as_str() else {
            continue;
        };
        let value = pod["spec"]["priority"].as_i64().unwrap_or(0);
        if let Some(known) = classes.insert(class, value)
            && known != value
        {
            bail!("PriorityClass {class:?} would need the values {known} and {value}");
        }
    }
    if classes.is_empty() {
        return Ok(());
    }
    let items: Vec<Value> = classes
        .iter()
        .map(|(name, value)| {
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                   "metadata": {"name": name}, "value": value})
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    plane.apply(&list.to_string()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranked_workloads_spread_over_the_zones() {
        let mut c = model();
        let pending = ranked_workload(&mut c, "shop", "web", "web-1", 7);
        let pods = c.pods();
        assert_eq!(pods.len(), 8);
        let zone_rank: Vec<(&str, &str)> = pods[..7]
            .iter()
            .map(|p| {
                (
                    p.annotations[ZONE_ANNOTATION].as_str(),
                    p.annotations[RANK_ANNOTATION].as_str(),
                )
            })
            .collect();
        assert_eq!(
            zone_rank,
            [
                ("k", "0"),
                ("i", "0"),
                ("h", "0"),
                ("k", "1"),
                ("i", "1"),
                ("h", "1"),
                ("k", "2")
            ]
        );
        assert_eq!(pods[7].name, pending);
        assert_eq!(pods[7].node_name, None);
    }

    #[test]
    fn server_set_fields_are_dropped() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "1",
                         "creationTimestamp": "2026-11-20T10:00:00Z", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert_eq!(
            creatable(&pod),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "a", "namespace": "n", "labels": {"app": "web"}},
                   "spec": {"nodeName": "n1"}})
        );
    }

    #[test]
    fn fixture_nodes_are_read_from_their_files() {
        let nodes = node_objects(&model()).unwrap();
        assert_eq!(nodes.len(), 5);
        // The hybrid node's fixture carries a real node's whole metadata.
        assert_eq!(
            nodes[0]["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"],
            "0"
        );
        assert_eq!(nodes[3]["metadata"]["labels"][ZONE_KEY], "i");
    }
}
