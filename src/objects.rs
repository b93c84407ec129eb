//! The few fields of Node and Pod objects the policy reads.
//!
//! Deserialising full k8s-openapi `Node`/`Pod` types would pull hundreds of
//! KB of code into the module and spend most of the evaluation parsing
//! fields nobody looks at; these views skip everything else unread.

use crate::selector::Labels;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;

pub const COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";
pub const ZONE_ANNOTATION: &str = "pod-deletion-cost.kubewarden.io/zone";
pub const RANK_ANNOTATION: &str = "pod-deletion-cost.kubewarden.io/rank";

#[derive(Debug, Default, Deserialize)]
pub struct Node {
    #[serde(default)]
    pub metadata: NodeMeta,
}

#[derive(Debug, Default, Deserialize)]
pub struct NodeMeta {
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: Labels,
}

/// What the policy knows of a pod, from `get_resource` or a list item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Pod {
    #[serde(default)]
    pub metadata: PodMeta,
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: PodSpec,
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: PodStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMeta {
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub uid: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: OwnAnnotations,
    #[serde(default, deserialize_with = "null_as_default")]
    pub owner_references: Vec<OwnerReference>,
    #[serde(default)]
    pub deletion_timestamp: Option<IgnoredAnyEq>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub controller: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default)]
    pub priority_class_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PodStatus {
    #[serde(default)]
    pub phase: Option<String>,
}

/// Presence marker: `deletionTimestamp` only matters as set or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgnoredAnyEq;

impl<'de> Deserialize<'de> for IgnoredAnyEq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| IgnoredAnyEq)
    }
}

/// The pod annotations this policy reads; the others are skipped while
/// parsing, which matters when listing thousands of siblings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnAnnotations {
    pub cost: Option<String>,
    pub zone: Option<String>,
    pub rank: Option<String>,
}

impl<'de> Deserialize<'de> for OwnAnnotations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OwnAnnotations;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of annotations")
            }
            fn visit_unit<E>(self) -> Result<OwnAnnotations, E> {
                Ok(OwnAnnotations::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OwnAnnotations, A::Error> {
                let mut out = OwnAnnotations::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        COST_ANNOTATION => &mut out.cost,
                        ZONE_ANNOTATION => &mut out.zone,
                        RANK_ANNOTATION => &mut out.rank,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<String>()?);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

impl Pod {
    /// The owner reference marked `controller: true`, if any.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.metadata
            .owner_references
            .iter()
            .find(|o| o.controller == Some(true))
    }

    pub fn node_name(&self) -> &str {
        self.spec.node_name.as_deref().unwrap_or("")
    }
}

/// A list answer: only `items` is read.
#[derive(Debug, Default, Deserialize)]
pub struct PodList {
    #[serde(default, deserialize_with = "null_as_default")]
    pub items: Vec<Pod>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_view_reads_only_what_it_needs() {
        let pod: Pod = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"shop","uid":"u1",
            "labels":{"app":"web"},"annotations":{"other":"x","controller.kubernetes.io/pod-deletion-cost":"5",
            "pod-deletion-cost.kubewarden.io/zone":"i","pod-deletion-cost.kubewarden.io/rank":"2"},
            "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-abc","uid":"rs1","controller":true}],
            "deletionTimestamp":"2026-01-01T00:00:00Z"},
            "spec":{"nodeName":"n1","priority":-1,"priorityClassName":"low","containers":[]},"status":{"phase":"Running"}}"#,
        )
        .unwrap();
        assert_eq!(pod.metadata.name, "web-1");
        assert_eq!(pod.metadata.annotations.cost.as_deref(), Some("5"));
        assert_eq!(pod.metadata.annotations.zone.as_deref(), Some("i"));
        assert_eq!(pod.metadata.annotations.rank.as_deref(), Some("2"));
        assert_eq!(pod.controller().map(|o| o.uid.as_str()), Some("rs1"));
        assert!(pod.metadata.deletion_timestamp.is_some());
        assert_eq!(pod.node_name(), "n1");
        assert_eq!(pod.spec.priority_class_name.as_deref(), Some("low"));
        assert_eq!(pod.status.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn nulls_and_absences_are_empty() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata":{"labels":null,"annotations":null,"ownerReferences":null},"spec":null,"status":null}"#,
        )
        .unwrap();
        assert_eq!(pod, Pod::default());
        let node: Node = serde_json::from_str(r#"{"metadata":{"labels":null}}"#).unwrap();
        assert!(node.metadata.labels.is_empty());
    }

    #[test]
    fn non_string_label_values_are_errors() {
        assert!(serde_json::from_str::<Node>(r#"{"metadata":{"labels":{"a":1}}}"#).is_err());
        assert!(
            serde_json::from_str::<Pod>(
                r#"{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":1}}}"#
            )
            .is_err()
        );
    }
}
