//! The few fields of Node and Pod objects the policy reads, borrowed from
//! the host's answer.
//!
//! Deserialising full k8s-openapi `Node`/`Pod` types would pull hundreds of
//! KB of code into the module and spend most of the evaluation parsing and
//! allocating fields nobody looks at. These views hold only what is read
//! and borrow their strings from the answer bytes. `scan` fills them from
//! the cluster's answers; their serde implementations are the reference
//! that reader is tested against (`tests/properties.rs`).

use crate::selector::LabelLookup;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::fmt;

pub const COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";
pub const ZONE_ANNOTATION: &str = "pod-deletion-cost.kubewarden.io/zone";
pub const RANK_ANNOTATION: &str = "pod-deletion-cost.kubewarden.io/rank";

/// A JSON string borrowed from the input when it has no escapes.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text(Cow::Borrowed(s))
    }
}

impl From<String> for Text<'_> {
    fn from(s: String) -> Self {
        Text(Cow::Owned(s))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Labels as a short list: one allocation per object, looked up linearly,
/// which beats a map for the dozen labels objects carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSet<'a>(pub Vec<(Text<'a>, Text<'a>)>);

impl LabelSet<'_> {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl LabelLookup for LabelSet<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LabelSet<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LabelSet<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of labels")
            }
            fn visit_unit<E>(self) -> Result<LabelSet<'de>, E> {
                Ok(LabelSet::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelSet<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(entry) = map.next_entry::<Text<'de>, Text<'de>>()? {
                    out.push(entry);
                }
                Ok(LabelSet(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Node<'a> {
    #[serde(borrow, default)]
    pub metadata: NodeMeta<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NodeMeta<'a> {
    #[serde(borrow, default)]
    pub labels: LabelSet<'a>,
}

/// What the policy knows of a pod, from `get_resource` or a list item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Pod<'a> {
    #[serde(borrow, default)]
    pub metadata: PodMeta<'a>,
    #[serde(borrow, default, deserialize_with = "null_as_default")]
    pub spec: PodSpec<'a>,
    #[serde(borrow, default, deserialize_with = "null_as_default")]
    pub status: PodStatus<'a>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMeta<'a> {
    #[serde(borrow, default, deserialize_with = "null_as_default")]
    pub name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "null_as_default")]
    pub uid: Text<'a>,
    #[serde(borrow, default)]
    pub labels: LabelSet<'a>,
    #[serde(borrow, default)]
    pub annotations: OwnAnnotations<'a>,
    /// Only the reference marked `controller: true` matters.
    #[serde(borrow, default, rename = "ownerReferences")]
    pub controller: Controller<'a>,
    #[serde(default)]
    pub deletion_timestamp: Option<IgnoredAnyEq>,
    #[serde(borrow, default)]
    pub creation_timestamp: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub resource_version: Option<Text<'a>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference<'a> {
    #[serde(borrow, default)]
    pub kind: Text<'a>,
    #[serde(borrow, default)]
    pub uid: Text<'a>,
    #[serde(default)]
    pub controller: Option<bool>,
}

/// The controller among a pod's owner references, kept without building
/// the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Controller<'a>(pub Option<OwnerReference<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Controller<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Controller<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of owner references")
            }
            fn visit_unit<E>(self) -> Result<Controller<'de>, E> {
                Ok(Controller(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Controller<'de>, A::Error> {
                let mut found = None;
                while let Some(owner) = seq.next_element::<OwnerReference<'de>>()? {
                    if found.is_none() && owner.controller == Some(true) {
                        found = Some(owner);
                    }
                }
                Ok(Controller(found))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec<'a> {
    #[serde(borrow, default)]
    pub node_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub priority_class_name: Option<Text<'a>>,
    /// The pod's resolved priority (its PriorityClass's value, set at
    /// admission); see `Pod::priority` for a pod without one.
    #[serde(default)]
    pub priority: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PodStatus<'a> {
    #[serde(borrow, default)]
    pub phase: Option<Text<'a>>,
}

/// Presence marker: `deletionTimestamp` only matters as set or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgnoredAnyEq;

impl<'de> Deserialize<'de> for IgnoredAnyEq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| IgnoredAnyEq)
    }
}

/// The pod annotations this policy reads; the others are skipped unread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnAnnotations<'a> {
    pub cost: Option<Text<'a>>,
    pub zone: Option<Text<'a>>,
    pub rank: Option<Text<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for OwnAnnotations<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OwnAnnotations<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of annotations")
            }
            fn visit_unit<E>(self) -> Result<OwnAnnotations<'de>, E> {
                Ok(OwnAnnotations::default())
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OwnAnnotations<'de>, A::Error> {
                let mut out = OwnAnnotations::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    let slot = match key.as_str() {
                        COST_ANNOTATION => &mut out.cost,
                        ZONE_ANNOTATION => &mut out.zone,
                        RANK_ANNOTATION => &mut out.rank,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<Text<'de>>()?);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

impl Pod<'_> {
    /// The owner reference marked `controller: true`, if any.
    pub fn controller(&self) -> Option<&OwnerReference<'_>> {
        self.metadata.controller.0.as_ref()
    }

    pub fn node_name(&self) -> &str {
        self.spec.node_name.as_ref().map_or("", Text::as_str)
    }

    /// The priority the scheduler and preemption go by: a pod without
    /// `spec.priority` counts as 0, as the scheduler counts it.
    pub fn priority(&self) -> i32 {
        self.spec.priority.unwrap_or(0)
    }
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
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"shop","uid":"u1",
            "labels":{"app":"web"},"annotations":{"other":"x","controller.kubernetes.io/pod-deletion-cost":"5",
            "pod-deletion-cost.kubewarden.io/zone":"i","pod-deletion-cost.kubewarden.io/rank":"2"},
            "ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n","uid":"not-me"},
                               {"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-abc","uid":"rs1","controller":true}],
            "deletionTimestamp":"2026-01-01T00:00:00Z"},
            "spec":{"nodeName":"n1","priority":-1,"priorityClassName":"low","containers":[]},"status":{"phase":"Running"}}"#;
        let pod: Pod = serde_json::from_str(json).unwrap();
        assert_eq!(pod.metadata.name.as_str(), "web-1");
        assert_eq!(pod.metadata.labels.get("app"), Some("web"));
        assert_eq!(pod.metadata.annotations.cost, Some("5".into()));
        assert_eq!(pod.metadata.annotations.zone, Some("i".into()));
        assert_eq!(pod.metadata.annotations.rank, Some("2".into()));
        assert_eq!(pod.controller().map(|o| o.uid.as_str()), Some("rs1"));
        assert!(pod.metadata.deletion_timestamp.is_some());
        assert_eq!(pod.node_name(), "n1");
        assert_eq!(pod.spec.priority_class_name, Some("low".into()));
        assert_eq!(pod.spec.priority, Some(-1));
        assert_eq!(pod.status.phase, Some("Running".into()));
        // Strings without escapes are borrowed, not copied.
        assert!(matches!(pod.metadata.uid.0, Cow::Borrowed(_)));
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let pod: Pod =
            serde_json::from_str(r#"{"metadata":{"labels":{"a\u0062":"x\"y"}}}"#).unwrap();
        assert_eq!(pod.metadata.labels.get("ab"), Some("x\"y"));
    }

    #[test]
    fn nulls_and_absences_are_empty() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata":{"name":null,"labels":null,"annotations":null,"ownerReferences":null},"spec":null,"status":null}"#,
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
