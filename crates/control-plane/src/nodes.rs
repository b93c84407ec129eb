//! The nodes of the stories: Node objects created with labels and
//! capacity, as a kubelet registers itself, and marked for kwok, which
//! keeps them Ready and runs their pods.

use crate::cluster::{ControlPlane, KWOK_NODE_ANNOTATION};
use anyhow::Result;
use serde_json::{Value, json};
use std::time::Duration;

pub const HYBRID_LABEL: (&str, &str) = ("eks.amazonaws.com/compute-type", "hybrid");

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub labels: Vec<(String, String)>,
    /// How many pods the node takes (`status.capacity.pods`).
    pub pods: u32,
}

impl Node {
    pub fn new(name: &str, labels: &[(&str, &str)], pods: u32) -> Node {
        Node {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            pods,
        }
    }

    pub fn manifest(&self) -> Value {
        let mut labels = serde_json::Map::new();
        labels.insert("kubernetes.io/hostname".into(), json!(self.name));
        labels.insert("kubernetes.io/os".into(), json!("linux"));
        for (k, v) in &self.labels {
            labels.insert(k.clone(), json!(v));
        }
        let capacity = json!({"cpu": "16", "memory": "64Gi", "pods": self.pods.to_string()});
        let (key, value) = KWOK_NODE_ANNOTATION;
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels, "annotations": {key: value}},
            "status": {"capacity": capacity, "allocatable": capacity},
        })
    }
}

/// EKS Hybrid Nodes bursting: one hybrid node with room for `hybrid_pods`,
/// and three EC2 nodes, one per zone.
pub fn eks(hybrid_pods: u32) -> Vec<Node> {
    let mut nodes = vec![Node::new(
        "mi-0ebe45e33a53e04f2",
        &[HYBRID_LABEL, ("topology.kubernetes.io/zone", "onprem-1")],
        hybrid_pods,
    )];
    for (i, zone) in ["us-west-2a", "us-west-2b", "us-west-2c"]
        .iter()
        .enumerate()
    {
        nodes.push(Node::new(
            &format!("ip-10-42-10{i}-174.us-west-2.compute.internal"),
            &[
                ("eks.amazonaws.com/capacityType", "ON_DEMAND"),
                ("topology.kubernetes.io/zone", zone),
            ],
            110,
        ));
    }
    nodes
}

/// ACK zones: `per_zone` nodes in each of `zones`, labelled `zone_key`.
pub fn zones(zone_key: &str, zones: &[&str], per_zone: usize) -> Vec<Node> {
    let mut nodes = Vec::new();
    for zone in zones {
        for i in 0..per_zone {
            nodes.push(Node::new(
                &format!("cn-beijing.zone-{zone}-{i}"),
                &[(zone_key, zone)],
                110,
            ));
        }
    }
    nodes
}

/// Creates `nodes` and waits until kwok has made each Ready.
pub fn create(plane: &mut ControlPlane, nodes: &[Node]) -> Result<()> {
    let list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": nodes.iter().map(Node::manifest).collect::<Vec<_>>(),
    });
    plane.apply(&list.to_string())?;
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    plane.wait_until("the nodes are Ready", Duration::from_secs(60), |plane| {
        let list = plane.get_json(&["nodes"])?;
        let ready = |name: &str| {
            list["items"].as_array().into_iter().flatten().any(|n| {
                n["metadata"]["name"] == name
                    && n["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        };
        Ok(names.iter().all(|n| ready(n)))
    })
}

/// Node name → the value of its label `key`, for the nodes that carry it.
pub fn zone_of(nodes: &[Node], key: &str) -> std::collections::BTreeMap<String, String> {
    nodes
        .iter()
        .filter_map(|n| {
            n.labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, zone)| (n.name.clone(), zone.clone()))
        })
        .collect()
}
