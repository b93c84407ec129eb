//! A large cluster snapshot as `kubectl get nodes,pods -A -o json` prints
//! it: nodes over three zones, and Deployments whose pods were created one
//! after another in an interleaved order and spread over the nodes by a
//! scheduler. Deterministic: the same shape gives the same bytes.

use cluster_sim::snapshot::format_timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;

pub const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// 2026-11-20T08:00:00Z: the first pod's creation.
const T0: u64 = 1_795_161_600;

/// Nodes and Deployments of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub nodes: usize,
    /// (namespace, name, replicas), one ReplicaSet each.
    pub deployments: Vec<(String, String, usize)>,
}

impl Shape {
    /// 90 nodes; shop/web with 3,000 replicas and 70 Deployments of 100 in
    /// seven team namespaces, every count divided by `divisor` (at least
    /// one replica each).
    pub fn large(divisor: usize) -> Shape {
        let d = divisor.max(1);
        let mut deployments = vec![("shop".to_string(), "web".to_string(), (3000 / d).max(1))];
        for i in 0..70 {
            deployments.push((
                format!("team-{}", i % 7),
                format!("svc-{i:02}"),
                (100 / d).max(1),
            ));
        }
        Shape {
            nodes: 90,
            deployments,
        }
    }

    pub fn pods(&self) -> usize {
        self.deployments.iter().map(|d| d.2).sum()
    }
}

/// SplitMix64: a fixed, portable sequence for a given seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn word(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| ALPHABET[self.below(ALPHABET.len())] as char)
            .collect()
    }

    fn uid(&mut self) -> String {
        let h = format!("{:016x}{:016x}", self.next(), self.next());
        format!(
            "{}-{}-4{}-8{}-{}",
            &h[..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..]
        )
    }

    fn hex64(&mut self) -> String {
        (0..4).map(|_| format!("{:016x}", self.next())).collect()
    }
}

fn node_name(i: usize) -> String {
    format!("ip-10-0-{}-{}.ec2.internal", i % 3, 10 + i)
}

fn node(rng: &mut Rng, i: usize) -> Value {
    let name = node_name(i);
    let created = T0 - 86_400 * 7 + 60 * i as u64;
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            "creationTimestamp": format_timestamp(created),
            "labels": {
                "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type": "m5.4xlarge",
                "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m5.4xlarge",
                "topology.kubernetes.io/region": "us-east-1",
                "topology.kubernetes.io/zone": ZONES[i % ZONES.len()]},
            "name": name,
            "resourceVersion": (100_000 + rng.below(900_000)).to_string(),
            "uid": rng.uid(),
        },
        "spec": {"providerID": format!("aws:///{}/i-{:017x}", ZONES[i % ZONES.len()], rng.next() >> 4)},
        "status": {
            "addresses": [{"address": format!("10.0.{}.{}", i % 3, 10 + i), "type": "InternalIP"},
                          {"address": name, "type": "Hostname"}],
            "allocatable": {"cpu": "15890m", "memory": "62247Mi", "pods": "234"},
            "capacity": {"cpu": "16", "memory": "63410Mi", "pods": "234"},
            "conditions": [{"lastHeartbeatTime": format_timestamp(T0 + 86_400),
                            "lastTransitionTime": format_timestamp(created + 40),
                            "message": "kubelet is posting ready status", "reason": "KubeletReady",
                            "status": "True", "type": "Ready"}],
            "nodeInfo": {"architecture": "amd64", "containerRuntimeVersion": "containerd://1.7.27",
                         "kubeletVersion": "v1.32.3", "operatingSystem": "linux",
                         "osImage": "Amazon Linux 2023.7.20250414"},
        },
    })
}

/// One Deployment's ReplicaSet: its name, pod-template-hash and UID.
struct ReplicaSet {
    namespace: String,
    deployment: String,
    hash: String,
    uid: String,
}

fn condition(kind: &str, at: u64) -> Value {
    json!({"lastProbeTime": null, "lastTransitionTime": format_timestamp(at), "status": "True", "type": kind})
}

fn pod(rng: &mut Rng, rs: &ReplicaSet, node: &str, created: u64) -> Value {
    let name = format!("{}-{}-{}", rs.deployment, rs.hash, rng.word(5));
    let image = format!(
        "registry.example.com/{}/{}:1.14.2",
        rs.namespace, rs.deployment
    );
    let scheduled = created + 1;
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "creationTimestamp": format_timestamp(created),
            "generateName": format!("{}-{}-", rs.deployment, rs.hash),
            "labels": {"app": rs.deployment, "app.kubernetes.io/part-of": rs.namespace,
                       "pod-template-hash": rs.hash},
            "name": name,
            "namespace": rs.namespace,
            "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": true, "controller": true,
                                 "kind": "ReplicaSet", "name": format!("{}-{}", rs.deployment, rs.hash),
                                 "uid": rs.uid}],
            "resourceVersion": (100_000 + rng.below(900_000)).to_string(),
            "uid": rng.uid(),
        },
        "spec": {
            "containers": [{"image": image, "name": "app",
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
            "nodeName": node,
            "priority": 0,
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
        },
        "status": {
            "conditions": [condition("Ready", scheduled + 8),
                           condition("PodScheduled", scheduled)],
            "containerStatuses": [{"containerID": format!("containerd://{}", rng.hex64()),
                                   "image": image, "name": "app", "ready": true, "restartCount": 0,
                                   "started": true}],
            "phase": "Running",
            "podIP": format!("10.1.{}.{}", rng.below(250), 2 + rng.below(250)),
            "qosClass": "Burstable",
            "startTime": format_timestamp(scheduled + 1),
        },
    })
}

/// The snapshot's objects: nodes first, then pods in the API server's
/// list order (by namespace and name).
pub fn objects(shape: &Shape) -> Vec<Value> {
    let mut rng = Rng(17);
    let mut items: Vec<Value> = (0..shape.nodes).map(|i| node(&mut rng, i)).collect();
    let sets: Vec<ReplicaSet> = shape
        .deployments
        .iter()
        .map(|(namespace, deployment, _)| ReplicaSet {
            namespace: namespace.clone(),
            deployment: deployment.clone(),
            hash: rng.word(10),
            uid: rng.uid(),
        })
        .collect();
    // Every replica's slot, shuffled: the Deployments scale up together
    // and their bindings interleave.
    let mut slots: Vec<usize> = shape
        .deployments
        .iter()
        .enumerate()
        .flat_map(|(i, d)| std::iter::repeat_n(i, d.2))
        .collect();
    for i in (1..slots.len()).rev() {
        slots.swap(i, rng.below(i + 1));
    }
    let mut pods: Vec<Value> = slots
        .iter()
        .enumerate()
        .map(|(t, &set)| {
            let node = node_name(rng.below(shape.nodes.max(1)));
            pod(&mut rng, &sets[set], &node, T0 + t as u64)
        })
        .collect();
    let key = |p: &Value| {
        (
            p["metadata"]["namespace"].to_string(),
            p["metadata"]["name"].to_string(),
        )
    };
    pods.sort_by_key(key);
    items.extend(pods);
    items
}

/// Writes the snapshot (kubectl's four-space indentation) and returns its
/// size in bytes.
pub fn write(shape: &Shape, path: &Path) -> anyhow::Result<u64> {
    let list = json!({"apiVersion": "v1", "items": objects(shape), "kind": "List",
                      "metadata": {"resourceVersion": ""}});
    let file = std::fs::File::create(path)?;
    let mut out = std::io::BufWriter::new(file);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    list.serialize(&mut ser)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Settings that turn zone balance on over the snapshot's zones.
pub fn balance_settings() -> Value {
    json!({"rules": [], "zones": {"balance": true, "deletionCosts": {ZONES[0]: 10}}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_sim::snapshot::Snapshot;

    #[test]
    fn the_snapshot_reads_back_with_every_pod_bound_and_owned() {
        let shape = Shape::large(100);
        let text = serde_json::to_string(&json!({"apiVersion": "v1", "kind": "List",
            "items": objects(&shape)}))
        .unwrap();
        let mut s = Snapshot::default();
        s.add("large.json", &text).unwrap();
        s.check().unwrap();
        assert_eq!(s.nodes.len(), 90);
        assert_eq!(s.pods.len(), shape.pods());
        assert!(s.pods.iter().all(|p| p.pod.node_name.is_some()
            && p.pod.owner.as_ref().is_some_and(|o| o.kind == "ReplicaSet")
            && cluster_sim::deployment_of(&p.pod).is_some()));
        let zones: std::collections::BTreeSet<&str> = s
            .nodes
            .iter()
            .filter_map(|n| {
                n.labels
                    .get("topology.kubernetes.io/zone")
                    .map(String::as_str)
            })
            .collect();
        assert_eq!(zones.len(), 3);
    }

    #[test]
    fn the_same_shape_gives_the_same_objects() {
        let shape = Shape::large(50);
        assert_eq!(objects(&shape), objects(&shape));
        assert_eq!(Shape::large(1).pods(), 10_000);
    }
}
