//! Label selectors of a policy manifest.

use pod_deletion_cost_policy::selector::LabelSelector;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A Kubernetes LabelSelector of a policy manifest: read here, with
/// messages naming the manifest's fields, and matched by the policy's own
/// `LabelSelector`.
#[derive(Debug, Clone, Default)]
pub struct Selector(LabelSelector);

impl Selector {
    /// Read as the policy reads the selectors of its settings (the same
    /// type, operators and label checks), with the manifest's path in front
    /// of every message.
    pub fn parse(v: &Value, at: &str) -> Result<Selector, String> {
        let selector: LabelSelector = serde_path_to_error::deserialize(v).map_err(|e| {
            match e.path().to_string().as_str() {
                "." => format!("{at}: {}", e.inner()),
                path => format!("{at}.{path}: {}", e.inner()),
            }
        })?;
        selector.validate(at)?;
        Ok(Selector(selector))
    }

    pub(crate) fn keys(&self) -> BTreeSet<&str> {
        self.0
            .match_labels
            .keys()
            .map(String::as_str)
            .chain(self.0.match_expressions.iter().map(|r| r.key.as_str()))
            .collect()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.matches(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_follow_label_selector_semantics() {
        let s = Selector::parse(
            &json!({"matchLabels": {"a": "1"}, "matchExpressions": [
                {"key": "b", "operator": "In", "values": ["x", "y"]},
                {"key": "c", "operator": "DoesNotExist"},
                {"key": "d", "operator": "NotIn", "values": ["z"]}]}),
            "sel",
        )
        .unwrap();
        let labels = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(s.matches(&labels(&[("a", "1"), ("b", "y")])));
        assert!(!s.matches(&labels(&[("a", "1"), ("b", "y"), ("c", "")])));
        assert!(!s.matches(&labels(&[("a", "1"), ("b", "y"), ("d", "z")])));
        assert!(!s.matches(&labels(&[("a", "2"), ("b", "y")])));
        assert!(Selector::default().matches(&BTreeMap::new()));
    }
}
