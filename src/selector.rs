//! Kubernetes label syntax and `LabelSelector` semantics.
//!
//! Hand-written rather than taken from kube-core: the matching rules are a
//! few lines, while validation has to report the settings path of every bad
//! key, value and operator, which kube-core's `Selector` conversion does not
//! do; it would also bring its own dependency tree into the wasm module.

use serde::Deserialize;
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

/// Anything labels can be read from: settings maps, and the borrowed label
/// lists of objects from the cluster.
pub trait LabelLookup {
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelLookup for Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A `metav1.LabelSelector` as written in the settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Labels,
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub key: String,
    // Kept as text so that a wrong operator gets a message naming the field
    // and the accepted values, instead of serde's "unknown variant".
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Operator {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "In" => Some(Self::In),
            "NotIn" => Some(Self::NotIn),
            "Exists" => Some(Self::Exists),
            "DoesNotExist" => Some(Self::DoesNotExist),
            _ => None,
        }
    }
}

impl LabelSelector {
    /// Checks the selector; `path` is where it sits in the settings.
    pub fn validate(&self, path: &str) -> Result<(), String> {
        for (key, value) in &self.match_labels {
            validate_label_key(key)
                .map_err(|e| format!("{path}.matchLabels: invalid label key {key:?}: {e}"))?;
            validate_label_value(value).map_err(|e| {
                format!("{path}.matchLabels[{key:?}]: invalid label value {value:?}: {e}")
            })?;
        }
        for (i, req) in self.match_expressions.iter().enumerate() {
            let here = format!("{path}.matchExpressions[{i}]");
            validate_label_key(&req.key)
                .map_err(|e| format!("{here}.key: invalid label key {:?}: {e}", req.key))?;
            let op = Operator::parse(&req.operator).ok_or_else(|| {
                format!(
                    "{here}.operator: {:?} is not a valid operator (expected In, NotIn, Exists or DoesNotExist)",
                    req.operator
                )
            })?;
            match op {
                Operator::In | Operator::NotIn if req.values.is_empty() => {
                    return Err(format!(
                        "{here}.values: must be non-empty when operator is {}",
                        req.operator
                    ));
                }
                Operator::Exists | Operator::DoesNotExist if !req.values.is_empty() => {
                    return Err(format!(
                        "{here}.values: must be empty when operator is {}",
                        req.operator
                    ));
                }
                _ => {}
            }
            for (j, value) in req.values.iter().enumerate() {
                validate_label_value(value).map_err(|e| {
                    format!("{here}.values[{j}]: invalid label value {value:?}: {e}")
                })?;
            }
        }
        Ok(())
    }

    /// Kubernetes semantics: every `matchLabels` pair and every expression
    /// must hold; an empty selector matches everything. Operators were
    /// checked by `validate`; an unknown one never matches.
    pub fn matches(&self, labels: &impl LabelLookup) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.label(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|req| {
                let have = labels.label(&req.key);
                let listed = |v: &str| req.values.iter().any(|x| x == v);
                match Operator::parse(&req.operator) {
                    Some(Operator::In) => have.is_some_and(listed),
                    Some(Operator::NotIn) => have.is_none_or(|v| !listed(v)),
                    Some(Operator::Exists) => have.is_some(),
                    Some(Operator::DoesNotExist) => have.is_none(),
                    None => false,
                }
            })
    }
}

const NAME_CHARS: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// RFC 1123 subdomain, as Kubernetes checks object names and key prefixes.
pub fn validate_dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!(
            "must be no more than 253 characters, got {}",
            s.len()
        ));
    }
    let ok = s.split('.').all(|part| {
        let b = part.as_bytes();
        match (b.first(), b.last()) {
            (Some(f), Some(l)) => {
                (f.is_ascii_lowercase() || f.is_ascii_digit())
                    && (l.is_ascii_lowercase() || l.is_ascii_digit())
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            }
            _ => false,
        }
    });
    if ok {
        Ok(())
    } else {
        Err("must be a lowercase RFC 1123 subdomain: lowercase alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character".into())
    }
}

pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        validate_dns_subdomain(p).map_err(|e| format!("prefix part {e}"))?;
    }
    if name.is_empty() {
        return Err("name part must not be empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "name part must be no more than 63 characters, got {}",
            name.len()
        ));
    }
    if !is_name(name) {
        return Err(format!("name part {NAME_CHARS}"));
    }
    Ok(())
}

pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.len() > 63 {
        return Err(format!(
            "must be no more than 63 characters, got {}",
            value.len()
        ));
    }
    if !value.is_empty() && !is_name(value) {
        return Err(NAME_CHARS.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        let sel = LabelSelector::default();
        assert!(sel.matches(&Labels::new()));
        assert!(sel.matches(&labels(&[("a", "b")])));
    }

    #[rstest]
    #[case::every_pair_and_more(&[("a", "1"), ("b", "2"), ("c", "3")], true)]
    #[case::one_pair_missing(&[("a", "1")], false)]
    #[case::one_value_differs(&[("a", "1"), ("b", "3")], false)]
    fn match_labels_need_every_pair(#[case] node: &[(&str, &str)], #[case] matches: bool) {
        let sel = LabelSelector {
            match_labels: labels(&[("a", "1"), ("b", "2")]),
            ..Default::default()
        };
        assert_eq!(sel.matches(&labels(node)), matches);
    }

    #[rstest]
    #[case::in_listed("zone", "In", &["i", "k"], true)]
    #[case::in_not_listed("zone", "In", &["h"], false)]
    #[case::in_missing_key("missing", "In", &["h"], false)]
    #[case::not_in_not_listed("zone", "NotIn", &["h"], true)]
    #[case::not_in_listed("zone", "NotIn", &["i"], false)]
    // NotIn is satisfied by a missing key, as in Kubernetes.
    #[case::not_in_missing_key("missing", "NotIn", &["i"], true)]
    #[case::exists("tier", "Exists", &[], true)]
    #[case::exists_missing_key("missing", "Exists", &[], false)]
    #[case::does_not_exist_missing_key("missing", "DoesNotExist", &[], true)]
    #[case::does_not_exist_present("tier", "DoesNotExist", &[], false)]
    #[case::unknown_operator("tier", "Bogus", &[], false)]
    fn operators(
        #[case] key: &str,
        #[case] op: &str,
        #[case] values: &[&str],
        #[case] matches: bool,
    ) {
        let l = labels(&[("zone", "i"), ("tier", "web")]);
        let sel = LabelSelector {
            match_expressions: vec![req(key, op, values)],
            ..Default::default()
        };
        assert_eq!(sel.matches(&l), matches);
    }

    #[rstest]
    #[case::prefixed("eks.amazonaws.com/compute-type")]
    #[case::underscore("available_zone")]
    #[case::one_letter("a")]
    fn label_keys_accepted(#[case] key: &str) {
        assert_eq!(validate_label_key(key), Ok(()));
    }

    #[rstest]
    #[case::upper_case_prefix(
        "Upper.Case/x",
        "prefix part must be a lowercase RFC 1123 subdomain: lowercase alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character"
    )]
    #[case::empty_name("example.com/", "name part must not be empty")]
    #[case::name_too_long(&"a".repeat(64), "name part must be no more than 63 characters, got 64")]
    #[case::leading_dash("-bad", &format!("name part {NAME_CHARS}"))]
    fn label_keys_refused(#[case] key: &str, #[case] message: &str) {
        assert_eq!(validate_label_key(key).unwrap_err(), message);
    }

    #[rstest]
    #[case::prefix_too_long(&format!("{}/x", "a".repeat(254)))]
    #[case::two_slashes("a/b/c")]
    fn label_keys_refused_whatever_the_message(#[case] key: &str) {
        assert!(validate_label_key(key).is_err());
    }

    #[rstest]
    #[case::empty("")]
    #[case::word("hybrid")]
    #[case::dots_underscores_dashes("v1.2_3-x")]
    fn label_values_accepted(#[case] value: &str) {
        assert_eq!(validate_label_value(value), Ok(()));
    }

    #[rstest]
    #[case::space("a b", NAME_CHARS)]
    #[case::too_long(&"a".repeat(64), "must be no more than 63 characters, got 64")]
    fn label_values_refused(#[case] value: &str, #[case] message: &str) {
        assert_eq!(validate_label_value(value).unwrap_err(), message);
    }

    fn expressions(requirements: Vec<Requirement>) -> LabelSelector {
        LabelSelector {
            match_expressions: requirements,
            ..Default::default()
        }
    }

    #[rstest]
    #[case::unknown_operator(
        expressions(vec![req("a", "Exists", &[]), req("b", "Inn", &["x"])]),
        "rules[1].nodeSelector.matchExpressions[1].operator: \"Inn\" is not a valid operator (expected In, NotIn, Exists or DoesNotExist)"
    )]
    #[case::in_without_values(
        expressions(vec![req("a", "In", &[])]),
        "rules[1].nodeSelector.matchExpressions[0].values: must be non-empty when operator is In"
    )]
    #[case::does_not_exist_with_values(
        expressions(vec![req("a", "DoesNotExist", &["x"])]),
        "rules[1].nodeSelector.matchExpressions[0].values: must be empty when operator is DoesNotExist"
    )]
    #[case::bad_label_value(
        LabelSelector { match_labels: labels(&[("ok", "bad value")]), ..Default::default() },
        &format!("rules[1].nodeSelector.matchLabels[\"ok\"]: invalid label value \"bad value\": {NAME_CHARS}")
    )]
    fn selector_validation_names_the_path(#[case] sel: LabelSelector, #[case] message: &str) {
        assert_eq!(sel.validate("rules[1].nodeSelector").unwrap_err(), message);
    }
}
