//! Deployments in the cluster and what became of their pods: the
//! manifests the stories and the burst benchmark apply, scaling and waiting
//! for the ReplicaSet controller, and each pod's node, cost, zone and rank
//! as the API server stores them.

use crate::cluster::ControlPlane;
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

pub use pod_deletion_cost_policy::objects::{COST_ANNOTATION, RANK_ANNOTATION, ZONE_ANNOTATION};
/// Scaling 0 → 300 on two cores with a webhook in front has taken about a
/// minute; the bound leaves room for a loaded CI machine.
const SETTLE_WITHIN: Duration = Duration::from_secs(300);

/// A Deployment of pause containers; its pods are labelled `app=<name>`
/// unless `labels` says otherwise, and it selects them by all their labels.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub name: String,
    pub namespace: String,
    pub replicas: u32,
    /// Merged into the pod template's `spec`.
    pub pod_spec: Value,
    /// Merged into the Deployment's `spec` (strategy, for one).
    pub spec: Value,
    /// The pod template's labels, which are also the selector.
    pub labels: BTreeMap<String, String>,
}

impl Deployment {
    pub fn new(name: &str, replicas: u32) -> Deployment {
        Deployment {
            name: name.into(),
            namespace: "default".into(),
            replicas,
            pod_spec: json!({}),
            spec: json!({}),
            labels: BTreeMap::from([("app".to_string(), name.to_string())]),
        }
    }

    /// Preferred node affinity for nodes labelled `key=value`, as the EKS
    /// bursting setup writes it.
    pub fn preferring(mut self, key: &str, value: &str) -> Deployment {
        self.pod_spec["affinity"] = json!({"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "preference": {"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]},
            }],
        }});
        self
    }

    /// A hard zone spread of `maxSkew: 1` over nodes labelled `key`.
    pub fn spread_over(mut self, key: &str) -> Deployment {
        self.pod_spec["topologySpreadConstraints"] = json!([{
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": self.labels},
        }]);
        self
    }

    pub fn manifest(&self) -> Value {
        let mut pod_spec = json!({
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
        });
        merge(&mut pod_spec, &self.pod_spec);
        let mut spec = json!({
            "replicas": self.replicas,
            "selector": {"matchLabels": self.labels},
            "template": {"metadata": {"labels": self.labels}, "spec": pod_spec},
        });
        merge(&mut spec, &self.spec);
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        })
    }

    /// Its pods' label selector, `k=v,...`.
    pub fn selector(&self) -> String {
        let pairs: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join(",")
    }
}

fn merge(into: &mut Value, from: &Value) {
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in from {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// One pod as the API server has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub node: Option<String>,
    pub cost: Option<String>,
    pub zone: Option<String>,
    pub rank: Option<String>,
    /// The ReplicaSet that owns it.
    pub owner: Option<String>,
    pub ready: bool,
    pub terminating: bool,
}

impl Pod {
    fn from_json(pod: &Value) -> Pod {
        let annotation = |key: &str| {
            pod["metadata"]["annotations"][key]
                .as_str()
                .map(String::from)
        };
        Pod {
            name: pod["metadata"]["name"].as_str().unwrap_or_default().into(),
            node: pod["spec"]["nodeName"].as_str().map(String::from),
            cost: annotation(COST_ANNOTATION),
            zone: annotation(ZONE_ANNOTATION),
            rank: annotation(RANK_ANNOTATION),
            owner: pod["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["controller"] == true)
                .and_then(|o| o["name"].as_str())
                .map(String::from),
            ready: pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"),
            terminating: !pod["metadata"]["deletionTimestamp"].is_null(),
        }
    }
}

/// The Deployment's pods, sorted by name.
pub fn pods(plane: &ControlPlane, deployment: &Deployment) -> Result<Vec<Pod>> {
    let list = plane.get_json(&[
        "pods",
        "-n",
        &deployment.namespace,
        "-l",
        &deployment.selector(),
    ])?;
    let mut pods: Vec<Pod> = list["items"]
        .as_array()
        .context("a pod list without items")?
        .iter()
        .map(Pod::from_json)
        .collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pods)
}

/// Applies `deployment` and waits until it has settled.
pub fn apply(plane: &mut ControlPlane, deployment: &Deployment) -> Result<Vec<Pod>> {
    plane.apply(&deployment.manifest().to_string())?;
    settle(plane, deployment, deployment.replicas)
}

/// Scales `deployment` to `replicas` and waits until it has settled.
pub fn scale(plane: &mut ControlPlane, deployment: &Deployment, replicas: u32) -> Result<Vec<Pod>> {
    plane.kubectl_quiet(&[
        "scale",
        "deployment",
        &deployment.name,
        "-n",
        &deployment.namespace,
        &format!("--replicas={replicas}"),
    ])?;
    settle(plane, deployment, replicas)
}

/// Waits until exactly `replicas` pods of the Deployment exist, every one
/// bound, Running and Ready, and none terminating: the point where the
/// next scale-down sees every cost.
pub fn settle(
    plane: &mut ControlPlane,
    deployment: &Deployment,
    replicas: u32,
) -> Result<Vec<Pod>> {
    let mut last = Vec::new();
    let what = format!(
        "deployment {} settled at {replicas} ready pods",
        deployment.name
    );
    plane
        .wait_until(&what, SETTLE_WITHIN, |plane| {
            last = pods(plane, deployment)?;
            Ok(last.len() == replicas as usize
                && last
                    .iter()
                    .all(|p| p.ready && !p.terminating && p.node.is_some()))
        })
        .with_context(|| format!("its pods at the end: {last:?}"))?;
    Ok(last)
}

/// Deletes `deployment` and waits until its pods are gone.
pub fn delete(plane: &mut ControlPlane, deployment: &Deployment) -> Result<()> {
    plane.kubectl_quiet(&[
        "delete",
        "deployment",
        &deployment.name,
        "-n",
        &deployment.namespace,
    ])?;
    plane.wait_until(
        &format!("the pods of {} gone", deployment.name),
        SETTLE_WITHIN,
        |plane| Ok(pods(plane, deployment)?.is_empty()),
    )
}

/// How many of `pods` run on each node, by node name.
pub fn per_node(pods: &[Pod]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in pods {
        if let Some(node) = &p.node {
            *out.entry(node.clone()).or_default() += 1;
        }
    }
    out
}

/// Each zone's pods, the zone being the label `zone_key` of the pod's node
/// (`nodes`: node name → labels); pods on a node without it count under
/// `cluster_sim::NO_ZONE`.
pub fn per_zone<'a>(
    pods: &'a [Pod],
    zone_of_node: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<&'a Pod>> {
    let mut out: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for p in pods {
        let zone = p.node.as_ref().and_then(|n| zone_of_node.get(n)).cloned();
        out.entry(zone.unwrap_or_else(|| cluster_sim::NO_ZONE.into()))
            .or_default()
            .push(p);
    }
    out
}

/// How a zone's ranks stand: `duplicated` pods hold a rank another pod of
/// the zone holds too; `missing` ranks below the highest are held by none;
/// `unranked` pods carry no rank.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RankStats {
    pub pods: usize,
    pub duplicated: usize,
    pub missing: usize,
    pub unranked: usize,
}

pub fn rank_stats(pods: &[&Pod]) -> RankStats {
    let ranks: Vec<u32> = pods
        .iter()
        .filter_map(|p| p.rank.as_deref().and_then(|r| r.parse().ok()))
        .collect();
    let distinct: std::collections::BTreeSet<u32> = ranks.iter().copied().collect();
    let highest = distinct.last().map_or(0, |h| *h as usize + 1);
    RankStats {
        pods: pods.len(),
        duplicated: ranks.len() - distinct.len(),
        missing: highest - distinct.len(),
        unranked: pods.len() - ranks.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(rank: Option<&str>) -> Pod {
        Pod {
            name: String::new(),
            node: None,
            cost: None,
            zone: None,
            rank: rank.map(String::from),
            owner: None,
            ready: true,
            terminating: false,
        }
    }

    #[test]
    fn rank_stats_count_duplicates_gaps_and_unranked_pods() {
        let pods = [
            pod(Some("0")),
            pod(Some("0")),
            pod(Some("2")),
            pod(None),
            pod(Some("x")),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(
            rank_stats(&refs),
            RankStats {
                pods: 5,
                duplicated: 1,
                missing: 1,
                unranked: 2
            }
        );
        let clean = [pod(Some("1")), pod(Some("0"))];
        let refs: Vec<&Pod> = clean.iter().collect();
        assert_eq!(rank_stats(&refs).duplicated + rank_stats(&refs).missing, 0);
    }
}
